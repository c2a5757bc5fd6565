-- Lease up to `limit` timers of one shard: first the leases that expired (their
-- holder died or overran), then due timers, earliest first. A lease is the
-- member's score in the lease zset; its value is the lease's identity, which
-- release and extend compare against.
--
-- KEYS: 1 the shard's due zset (member -> due ms), 2 its lease zset (member ->
--       lease expiry ms)
-- ARGV: TimerClaimArgs (edge/store/scripts.py): now (due times), lease_now (lease
--       expiries), the new leases' expiry, limit
-- Reply: {'ok', more, taken}: `taken` is flat, a ClaimedTimer per timer (member,
-- due, reclaimed 0|1; a reclaimed timer's due is its expired lease's score, the
-- original due time is gone); `more` is 1 when another timer could have been
-- taken past the limit, so the caller knows where leftover room is useful.
--
-- A member that is due while it is leased (rescheduled by its holder) waits in
-- the due zset until the lease is released or expires: one holder at a time.
local due, lease = KEYS[1], KEYS[2]
local now, lease_now, lease_until, limit = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local room = tonumber(limit)
local taken = {}
local more = 0

local function take(member, due_score, reclaimed)
  taken[#taken + 1] = member
  taken[#taken + 1] = due_score
  taken[#taken + 1] = reclaimed
  room = room - 1
end

-- One past the room, to learn whether more is waiting without a second call.
local expired = redis.call('ZRANGEBYSCORE', lease, '-inf', lease_now, 'WITHSCORES', 'LIMIT', 0, room + 1)
for i = 1, #expired, 2 do
  if room == 0 then
    more = 1
    break
  end
  redis.call('ZADD', lease, lease_until, expired[i])
  take(expired[i], expired[i + 1], 1)
end

if more == 0 then
  -- Leased members are skipped in place; everything taken leaves the due zset,
  -- so the next page starts after the skipped ones.
  local skipped = 0
  while true do
    local asked = room + 1
    local page = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'WITHSCORES', 'LIMIT', skipped, asked)
    for i = 1, #page, 2 do
      local member = page[i]
      if redis.call('ZSCORE', lease, member) then
        skipped = skipped + 1
      elseif room == 0 then
        more = 1
        break
      else
        redis.call('ZREM', due, member)
        redis.call('ZADD', lease, lease_until, member)
        take(member, page[i + 1], 0)
      end
    end
    if more == 1 or #page < 2 * asked then break end
  end
end

return {'ok', more, taken}
