-- Remove a pointer {p:<identifier>} -> profile, but only if it still points
-- where the caller saw it point (the profile it names no longer exists).
-- KEYS: 1 the pointer; ARGV: DropPointerArgs (edge/store/scripts.py)
local profile_id = ARGV[1]
if redis.call('HGET', KEYS[1], '->') == profile_id and redis.call('HLEN', KEYS[1]) == 1 then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
