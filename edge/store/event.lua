-- One event, one round trip: dedupe, create-or-update the profile, apply the
-- aggregate updates, append to the stream, and return the profile snapshot.
-- Also serves reads (mode "read"): the snapshot without any change.
--
-- Every key but the stream shares the profile's hash tag {p:<id>}.
-- KEYS: 1 profile hash, 2 seen message ids (zset), 3 recent products (list),
--       4 recent categories (list), 5 identifiers (set), 6 traits (hash),
--       7 cart (hash), 8 stream, 9.. one hash per aggregate
-- ARGV: 1 mode ("event" | "read"), 2 identifier the profile would be created for,
--       ("" when the key came from a cache and must already exist), 3 now ms, 4 event time ms, 5 message id, 6 stream payload,
--       7 traits to set (flat field/json list joined by \0), 8 traits to set once,
--       9 trait names to unset (\0-joined), 10 recent product, 11 recent category,
--       12 cart op ("add" | "remove" | "clear" | ""), 13 cart product id,
--       14 cart item json, 15 cart quantity, 16 limits (comma-separated),
--       17 unverified identity claim, 18 number of aggregates,
--       then per aggregate two values: "kind:bucket_ms:n_buckets", update value or ""
local prof, seen, rp, rc, ids, traits, cart, stream =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local mode, primary = ARGV[1], ARGV[2]
local now, ts = tonumber(ARGV[3]), tonumber(ARGV[4])

local moved = redis.call('HGET', prof, '->')
if moved then return {'moved', moved} end

local exists = redis.call('HEXISTS', prof, 'id') == 1
if not exists then
  if mode == 'read' then return {'missing'} end
  -- The caller resolved this identifier from a cache, but the profile is gone
  -- (erased): let it start over from the event's own identifier.
  if primary == '' then return {'stale'} end
end

local limits = {}
for v in string.gmatch(ARGV[16], '[^,]+') do limits[#limits + 1] = tonumber(v) end
local anon_ttl, max_traits, rp_cap, rc_cap, cart_cap, distinct_cap,
      dedupe_ms, dedupe_max, gap_ms, stream_max = unpack(limits)

local function split0(s)
  local out = {}
  if s == '' then return out end
  for part in string.gmatch(s .. '\0', '([^%z]*)%z') do out[#out + 1] = part end
  return out
end

local naggs = tonumber(ARGV[18])
local function spec_of(i)
  local kind, bucket, n = string.match(ARGV[19 + 2 * (i - 1)], '^(%a+):(%d+):(%d+)$')
  return kind, tonumber(bucket), tonumber(n)
end

local status = 'ok'
if mode == 'event' then
  local msgid = ARGV[5]
  if msgid ~= '' then
    if redis.call('ZADD', seen, 'NX', now, msgid) == 0 then status = 'dup' end
    redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - dedupe_ms)
    local over = redis.call('ZCARD', seen) - dedupe_max
    if over > 0 then redis.call('ZREMRANGEBYRANK', seen, 0, over - 1) end
    redis.call('PEXPIRE', seen, dedupe_ms)
  end
end

if mode == 'event' and status == 'ok' then
  if not exists then
    redis.call('HSET', prof, 'id', primary, 'fs', ts, 'ls', ts, 'v', 1, 'n', 0)
    redis.call('SADD', ids, primary)
  else
    local fs = tonumber(redis.call('HGET', prof, 'fs'))
    local ls = tonumber(redis.call('HGET', prof, 'ls'))
    if ts < fs then redis.call('HSET', prof, 'fs', ts) end
    if ts - ls > gap_ms then redis.call('HINCRBY', prof, 'v', 1) end
    if ts > ls then redis.call('HSET', prof, 'ls', ts) end
  end
  redis.call('HINCRBY', prof, 'n', 1)

  -- traits: set, set once, unset; the count of traits is capped
  local set, once = split0(ARGV[7]), split0(ARGV[8])
  for i = 1, #set, 2 do
    if redis.call('HEXISTS', traits, set[i]) == 1 or redis.call('HLEN', traits) < max_traits then
      redis.call('HSET', traits, set[i], set[i + 1])
    end
  end
  for i = 1, #once, 2 do
    if redis.call('HLEN', traits) < max_traits then redis.call('HSETNX', traits, once[i], once[i + 1]) end
  end
  for _, name in ipairs(split0(ARGV[9])) do redis.call('HDEL', traits, name) end
  if ARGV[17] ~= '' then redis.call('HSET', prof, 'claim', ARGV[17]) end

  -- recently viewed, newest first, without repeats
  if ARGV[10] ~= '' then
    redis.call('LREM', rp, 0, ARGV[10]); redis.call('LPUSH', rp, ARGV[10]); redis.call('LTRIM', rp, 0, rp_cap - 1)
  end
  if ARGV[11] ~= '' then
    redis.call('LREM', rc, 0, ARGV[11]); redis.call('LPUSH', rc, ARGV[11]); redis.call('LTRIM', rc, 0, rc_cap - 1)
  end

  -- cart: item json under the product id, quantity under "q:" .. product id
  local op, pid = ARGV[12], ARGV[13]
  if op == 'add' then
    if redis.call('HEXISTS', cart, pid) == 1 or redis.call('HLEN', cart) < 2 * cart_cap then
      redis.call('HSET', cart, pid, ARGV[14])
      redis.call('HINCRBY', cart, 'q:' .. pid, tonumber(ARGV[15]))
    end
  elseif op == 'remove' then
    local left = 0
    if redis.call('HEXISTS', cart, pid) == 1 then
      left = redis.call('HINCRBY', cart, 'q:' .. pid, -tonumber(ARGV[15]))
    end
    if left <= 0 then redis.call('HDEL', cart, pid, 'q:' .. pid) end
  elseif op == 'clear' then
    redis.call('DEL', cart)
  end
  if op ~= '' then redis.call('HSET', prof, 'cu', ts) end

  -- windowed aggregates: one hash per aggregate; count and sum keep a value per
  -- time bucket, distinct keeps the newest bucket per value, last keeps t and v
  for i = 1, naggs do
    local update = ARGV[20 + 2 * (i - 1)]
    if update ~= '' then
      local key = KEYS[8 + i]
      local kind, bucket, n = spec_of(i)
      local b = math.floor(ts / bucket)
      if b > math.floor(now / bucket) - n then
        if kind == 'count' then
          redis.call('HINCRBY', key, b, 1)
        elseif kind == 'sum' then
          redis.call('HINCRBYFLOAT', key, b, update)
        elseif kind == 'distinct' then
          local old = redis.call('HGET', key, update)
          if old then
            if tonumber(old) < b then redis.call('HSET', key, update, b) end
          elseif redis.call('HLEN', key) < distinct_cap then
            redis.call('HSET', key, update, b)
          end
        elseif kind == 'last' then
          local t = redis.call('HGET', key, 't')
          if not t or tonumber(t) <= ts then redis.call('HSET', key, 't', ts, 'v', update) end
        end
        redis.call('PEXPIRE', key, (n + 1) * bucket)
      end
    end
  end

  local canonical = redis.call('HGET', prof, 'id')
  redis.call('XADD', stream, 'MAXLEN', '~', stream_max, '*', 'p', canonical, 'e', ARGV[6])

  if redis.call('HEXISTS', prof, 'uid') == 0 then
    for i = 1, 7 do redis.call('PEXPIRE', KEYS[i], i == 2 and dedupe_ms or anon_ttl) end
  end
end

-- snapshot
local values = {}
for i = 1, naggs do
  local key = KEYS[8 + i]
  local kind, bucket, n = spec_of(i)
  local cutoff = math.floor(now / bucket) - n
  local current = math.floor(now / bucket)
  local evict = mode == 'event'
  local value
  if kind == 'last' then
    local t = redis.call('HGET', key, 't')
    value = ''
    if t and math.floor(tonumber(t) / bucket) > cutoff then value = redis.call('HGET', key, 'v') end
  else
    local flat = redis.call('HGETALL', key)
    local acc, stale = 0, {}
    for j = 1, #flat, 2 do
      local b
      if kind == 'distinct' then b = tonumber(flat[j + 1]) else b = tonumber(flat[j]) end
      if b <= cutoff then
        stale[#stale + 1] = flat[j]
      elseif b <= current then
        if kind == 'count' then acc = acc + tonumber(flat[j + 1])
        elseif kind == 'sum' then acc = acc + tonumber(flat[j + 1])
        else acc = acc + 1 end
      end
    end
    if evict and #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
    if kind == 'sum' then value = string.format('%.17g', acc) else value = tostring(acc) end
  end
  values[i] = value
end

local p = redis.call('HMGET', prof, 'id', 'fs', 'ls', 'v', 'n', 'uid', 'sg', 'tg', 'cu', 'claim')
for i = 1, 10 do if not p[i] then p[i] = '' end end
return {
  status, p,
  redis.call('HGETALL', traits),
  redis.call('HGETALL', cart),
  redis.call('LRANGE', rp, 0, -1),
  redis.call('LRANGE', rc, 0, -1),
  values,
}
