-- One event, one round trip: dedupe, create-or-update the profile, apply the
-- aggregate updates, append to the stream, and return the profile snapshot.
-- Also serves reads (mode "read"): the snapshot without any change.
--
-- Every key but the stream shares the profile's hash tag {p:<id>}.
-- KEYS: 1 profile hash, 2 seen message ids (zset), 3 recent products (list),
--       4 recent categories (list), 5 identifiers (set), 6 traits (hash),
--       7 cart (hash), 8 stream, 9.. one hash per aggregate
-- ARGV[1], msgpack array, this event:
--   1 mode ("event" | "read"), 2 identifier the profile would be created for
--   ("" when the key came from a cache and must already exist), 3 now ms,
--   4 event time ms, 5 message id, 6 stream payload, 7 traits to set (flat
--   name, json, ...), 8 traits to set once (same), 9 trait names to unset,
--   10 recent product, 11 recent category, 12 cart op ("add" | "remove" |
--   "clear" | ""), 13 cart product id, 14 cart item json, 15 cart quantity,
--   16 unverified identity claim, 17 aggregate updates (flat index, value, ...)
-- ARGV[2], msgpack array, the same for every event of one ruleset:
--   1 limits {anon_ttl, max_traits, rp_cap, rc_cap, cart_cap, distinct_cap,
--   dedupe_ms, dedupe_max, gap_ms, stream_max}, 2 aggregate kinds,
--   3 their bucket sizes (ms), 4 their numbers of buckets
local prof, seen, rp, rc, ids, traits, cart, stream =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local e = cmsgpack.unpack(ARGV[1])
local layout = cmsgpack.unpack(ARGV[2])
local mode, primary, now, ts = e[1], e[2], e[3], e[4]

local moved = redis.call('HGET', prof, '->')
if moved then return {'moved', moved} end

local exists = redis.call('HEXISTS', prof, 'id') == 1
if not exists then
  if mode == 'read' then return {'missing'} end
  -- The caller resolved this identifier from a cache, but the profile is gone
  -- (erased): let it start over from the event's own identifier.
  if primary == '' then return {'stale'} end
end

local anon_ttl, max_traits, rp_cap, rc_cap, cart_cap, distinct_cap,
      dedupe_ms, dedupe_max, gap_ms, stream_max = unpack(layout[1])
local kinds, buckets, ns = layout[2], layout[3], layout[4]
local naggs = #kinds

local status = 'ok'
if mode == 'event' and e[5] ~= '' then
  local seen_key = seen
  if redis.call('ZADD', seen_key, 'NX', now, e[5]) == 0 then status = 'dup' end
  redis.call('ZREMRANGEBYSCORE', seen_key, '-inf', now - dedupe_ms)
  local over = redis.call('ZCARD', seen_key) - dedupe_max
  if over > 0 then redis.call('ZREMRANGEBYRANK', seen_key, 0, over - 1) end
end

if mode == 'event' and status == 'ok' then
  if not exists then
    redis.call('HSET', prof, 'id', primary, 'fs', ts, 'ls', ts, 'v', 1, 'n', 0)
    redis.call('SADD', ids, primary)
  else
    local times = redis.call('HMGET', prof, 'fs', 'ls')
    local fs, ls = tonumber(times[1]), tonumber(times[2])
    if ts < fs then redis.call('HSET', prof, 'fs', ts) end
    if ts - ls > gap_ms then redis.call('HINCRBY', prof, 'v', 1) end
    if ts > ls then redis.call('HSET', prof, 'ls', ts) end
  end
  redis.call('HINCRBY', prof, 'n', 1)

  -- traits: set, set once, unset; the count of traits is capped
  local set, once = e[7], e[8]
  for i = 1, #set, 2 do
    if redis.call('HEXISTS', traits, set[i]) == 1 or redis.call('HLEN', traits) < max_traits then
      redis.call('HSET', traits, set[i], set[i + 1])
    end
  end
  for i = 1, #once, 2 do
    if redis.call('HLEN', traits) < max_traits then redis.call('HSETNX', traits, once[i], once[i + 1]) end
  end
  for _, name in ipairs(e[9]) do redis.call('HDEL', traits, name) end
  if e[16] ~= '' then redis.call('HSET', prof, 'claim', e[16]) end

  -- recently viewed, newest first, without repeats
  if e[10] ~= '' then
    redis.call('LREM', rp, 0, e[10]); redis.call('LPUSH', rp, e[10]); redis.call('LTRIM', rp, 0, rp_cap - 1)
  end
  if e[11] ~= '' then
    redis.call('LREM', rc, 0, e[11]); redis.call('LPUSH', rc, e[11]); redis.call('LTRIM', rc, 0, rc_cap - 1)
  end

  -- cart: item json under the product id, quantity under "q:" .. product id
  local op, pid = e[12], e[13]
  if op == 'add' then
    if redis.call('HEXISTS', cart, pid) == 1 or redis.call('HLEN', cart) < 2 * cart_cap then
      redis.call('HSET', cart, pid, e[14])
      redis.call('HINCRBY', cart, 'q:' .. pid, e[15])
    end
  elseif op == 'remove' then
    local left = 0
    if redis.call('HEXISTS', cart, pid) == 1 then left = redis.call('HINCRBY', cart, 'q:' .. pid, -e[15]) end
    if left <= 0 then redis.call('HDEL', cart, pid, 'q:' .. pid) end
  elseif op == 'clear' then
    redis.call('DEL', cart)
  end
  if op ~= '' then redis.call('HSET', prof, 'cu', ts) end

  -- windowed aggregates: one hash per aggregate; count and sum keep a value per
  -- time bucket, distinct keeps the newest bucket per value, last keeps t and v
  local updates = e[17]
  for j = 1, #updates, 2 do
    local i, update = updates[j], updates[j + 1]
    local key, kind, bucket, n = KEYS[8 + i], kinds[i], buckets[i], ns[i]
    local b = math.floor(ts / bucket)
    if b > math.floor(now / bucket) - n then
      -- the key lives one window past its newest bucket: extend it only when a bucket is new
      local extend = false
      if kind == 'count' then
        extend = redis.call('HINCRBY', key, b, 1) == 1
      elseif kind == 'sum' then
        extend = tonumber(redis.call('HINCRBYFLOAT', key, b, update)) == tonumber(update)
      elseif kind == 'distinct' then
        local old = redis.call('HGET', key, update)
        if old then
          if tonumber(old) < b then redis.call('HSET', key, update, b); extend = true end
        elseif redis.call('HLEN', key) < distinct_cap then
          redis.call('HSET', key, update, b); extend = true
        end
      elseif kind == 'last' then
        local t = redis.call('HGET', key, 't')
        if not t or tonumber(t) <= ts then redis.call('HSET', key, 't', ts, 'v', update); extend = true end
      end
      if extend then redis.call('PEXPIRE', key, (n + 1) * bucket) end
    end
  end

  local canonical = redis.call('HGET', prof, 'id')
  redis.call('XADD', stream, 'MAXLEN', '~', stream_max, '*', 'p', canonical, 'e', e[6])

  -- An anonymous profile expires anon_ttl after its last event. Refreshing the
  -- expiry of seven keys on every event is wasted work: once a hundredth of the
  -- TTL is plenty (the profile may then live up to 1% longer).
  local refreshed = redis.call('HMGET', prof, 'uid', 'xp')
  if not refreshed[1] and (not refreshed[2] or now - tonumber(refreshed[2]) > anon_ttl / 100) then
    redis.call('HSET', prof, 'xp', now)
    for i = 1, 7 do redis.call('PEXPIRE', KEYS[i], anon_ttl) end
  end
end

-- snapshot: each aggregate's value over its window at `now`
local values = {}
local evict = mode == 'event'
for i = 1, naggs do
  local key, kind, bucket, n = KEYS[8 + i], kinds[i], buckets[i], ns[i]
  local current = math.floor(now / bucket)
  local cutoff = current - n
  if kind == 'last' then
    local last = redis.call('HMGET', key, 't', 'v')
    values[i] = ''
    if last[1] and math.floor(tonumber(last[1]) / bucket) > cutoff then values[i] = last[2] end
  else
    local flat = redis.call('HGETALL', key)
    local acc, stale = 0, {}
    for j = 1, #flat, 2 do
      local b
      if kind == 'distinct' then b = tonumber(flat[j + 1]) else b = tonumber(flat[j]) end
      if b <= cutoff then
        stale[#stale + 1] = flat[j]
      elseif b <= current then
        if kind == 'distinct' then acc = acc + 1 else acc = acc + tonumber(flat[j + 1]) end
      end
    end
    if evict and #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
    -- counts travel as integers; sums as text, since a Lua number reply is truncated
    if kind == 'sum' then values[i] = string.format('%.17g', acc) else values[i] = acc end
  end
end

local p = redis.call('HMGET', prof, 'id', 'fs', 'ls', 'v', 'n', 'uid', 'sg', 'tg', 'cu', 'claim', 'dl')
for i = 1, 11 do if not p[i] then p[i] = '' end end
return {
  status, p,
  redis.call('HGETALL', traits),
  redis.call('HGETALL', cart),
  redis.call('LRANGE', rp, 0, -1),
  redis.call('LRANGE', rc, 0, -1),
  values,
}
