-- Drop a lease, but only the one the caller was given: once a lease expires
-- another worker may take the member over, and its lease has another expiry.
-- The due zset is left alone, so a member the holder rescheduled stays scheduled.
-- KEYS: 1 the shard's lease zset; ARGV: TimerReleaseArgs (edge/store/scripts.py)
-- Reply: 1 released, 0 not held (taken over or cancelled), nothing changed.
local lease = KEYS[1]
local member, lease_until = ARGV[1], ARGV[2]
local held = redis.call('ZSCORE', lease, member)
if held and tonumber(held) == tonumber(lease_until) then
  redis.call('ZREM', lease, member)
  return 1
end
return 0
