-- Attach an identifier to a profile: {p:<identifier>} becomes a pointer to it.
-- KEYS: 1 the identifier's own key {p:<identifier>}, then the profile's keys:
--       2 profile hash, 3 seen, 4 recent products, 5 recent categories,
--       6 identifiers, 7 traits, 8 cart
-- ARGV: LinkArgs (edge/store/scripts.py): the identifier, the profile id, the user
--       id to record ("" if the identifier is not one), a pointer value the caller
--       found to lead to this same profile (through merges since), which may be
--       shortened to point straight at it, or ""
-- Returns {"linked"} | {"moved", target} | {"missing"} | {"conflict", other profile id}
--         | {"other_user", user id the profile already has}
local stub, prof, ids = KEYS[1], KEYS[2], KEYS[6]
local identifier, profile_id, user_id, same_pointer = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local moved = redis.call('HGET', prof, '->')
if moved then return {'moved', moved} end
if redis.call('HEXISTS', prof, 'id') == 0 then return {'missing'} end
if user_id ~= '' then
  local existing = redis.call('HGET', prof, 'uid')
  if existing and existing ~= user_id then return {'other_user', existing} end
end

if stub ~= prof then
  local current = redis.call('HGET', stub, '->')
  if current and current ~= profile_id and current ~= same_pointer then return {'conflict', current} end
  if not current and redis.call('HEXISTS', stub, 'id') == 1 then return {'conflict', identifier} end
  redis.call('HSET', stub, '->', profile_id)
end
redis.call('SADD', ids, identifier)
if user_id ~= '' then redis.call('HSET', prof, 'uid', user_id) end
if redis.call('HEXISTS', prof, 'uid') == 1 then
  -- a known customer's profile no longer expires like an anonymous one
  for i = 2, 8 do redis.call('PERSIST', KEYS[i]) end
end
return {'linked'}
