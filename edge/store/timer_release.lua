-- Drop leases, but only the ones the caller was given: once a lease expires
-- another worker may take the member over, and its lease has another expiry.
-- The due zset is left alone, so a member the holder rescheduled stays scheduled.
-- Every timer of one claim shares its lease expiry, so a claim's timers of one
-- shard are released in one call.
-- KEYS: 1 the shard's lease zset; ARGV: TimerReleaseArgs (edge/store/scripts.py)
-- Reply: per member, 1 released or 0 not held (taken over or cancelled: then
-- nothing changed for it).
local lease = KEYS[1]
local lease_until, members = ARGV[1], ARGV[2]
local RELEASED_TIMER_WIDTH = 1

-- the array's elements as values: see elements() in event.lua
local function elements(packed)
  local first = string.byte(packed)
  return cmsgpack.unpack(string.sub(packed, first == 0xdc and 4 or first == 0xdd and 6 or 2))
end

local held_members = {elements(members)}
local expiry = tonumber(lease_until)
local released = {}
for i = 1, #held_members, RELEASED_TIMER_WIDTH do
  local member = held_members[i]
  local held = redis.call('ZSCORE', lease, member)
  if held and tonumber(held) == expiry then
    redis.call('ZREM', lease, member)
    released[#released + 1] = 1
  else
    released[#released + 1] = 0
  end
end
return released
