-- Move a lease's expiry, only while the caller still holds it: the lease is
-- the one it was given and has not expired (past its expiry, a claim may take
-- it over at any moment, so renewing it then could leave two holders).
-- KEYS: 1 the shard's lease zset; ARGV: TimerExtendArgs (edge/store/scripts.py)
-- Reply: 1 extended, 0 not held, nothing changed.
local lease = KEYS[1]
local member, lease_until, now, new_lease_until = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local held = redis.call('ZSCORE', lease, member)
if held and tonumber(held) == tonumber(lease_until) and tonumber(held) > tonumber(now) then
  redis.call('ZADD', lease, 'XX', new_lease_until, member)
  return 1
end
return 0
