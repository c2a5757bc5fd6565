-- One event, one round trip: dedupe, create-or-update the profile, apply the
-- aggregate updates, append to the stream, and return the profile snapshot.
-- Also serves reads (mode "read"): the snapshot without any change; and
-- tries (mode "try"): the snapshot as this event would leave it, changing
-- nothing, for /v1/explain. A try copies the profile's keys to scratch keys in
-- the same slot, applies the event to the copies with the code below (all but
-- the dedupe and the stream), and deletes them before it answers, so what
-- explain shows is what the event script does, not a second copy of it.
--
-- Every key but the stream shares the profile's hash tag {p:<id>}.
-- KEYS: 1 profile hash, 2 seen message ids (zset), 3 recent products (list),
--       4 recent categories (list), 5 identifiers (set), 6 traits (hash),
--       7 cart (hash), 8 stream, 9.. one hash per aggregate; a try adds the
--       scratch keys for 1-7 and the aggregates, in that order
-- ARGV (EventArgv in edge/store/scripts.py, which declares every positional
-- array below with names; tests/test_script_contracts.py holds this script to
-- it): 1 this event (EventArgs, msgpack), 2 its aggregate updates (flat
-- AggregateUpdate groups, msgpack), 3 the limits (Limits), 4 the aggregates in
-- KEYS order (AggregateList; unpacked only when a value must be recounted),
-- 5 the signature of that list of aggregates (see "windowed values").
-- Numbers that are command arguments travel as text (now, event time,
-- anon_ttl, stream_max, key time to live): Lua formats a number given to
-- redis.call with sprintf("%.14g"), a measurable share of this script's cost.
-- Returns {"moved", id} | {"missing"} | {"stale"} | the Snapshot: {status
--   ("ok" | "dup"), profile fields (ProfileFields; "" when absent), traits
--   (flat), cart (flat), recent products, recent categories, the windowed
--   values (msgpack, see below)}
--
-- Windowed values. Summing every bucket of every aggregate on every event
-- was most of this script's cost, so the profile hash keeps each aggregate's
-- value in field "g", with how long it holds. "g" is a msgpack array
--   {signature, lo, hi, position, value, until, position, value, until, ...}
-- with an entry for each aggregate (position in KEYS order from 1) whose value
-- is not 0 for ever: the value holds at every `now` with lo <= now < until.
-- A value stops holding when its oldest counted bucket leaves the window, when
-- a future bucket enters it, or when the key expires; values may start holding
-- no earlier than lo, the newest counted bucket's start (clocks of several
-- workers need not agree; before lo everything is recounted). hi is the
-- smallest until, so one comparison usually answers for all. A value that does
-- not hold is recounted from its hash, evicting stale buckets, which is what
-- this script used to do for every aggregate on every event; where a value
-- holds, its hash has no stale bucket to evict. The buckets are therefore
-- exactly what they were before "g" existed. Sums are recounted whenever they
-- change, so their floating-point total adds up the buckets as before. An
-- empty value is 0 for every kind (a "last" with nothing to show too).
-- merge.lua drops "g" (the next event recounts); a "g" written for another
-- list of aggregates is ignored. The reply carries "g" as it stands after the
-- event.

-- The elements of a msgpack array, as separate values. cmsgpack.unpack grows
-- an array's table one element at a time, rehashing as it goes, which for a
-- few dozen elements costs more than all else this script decodes; unpacked
-- as values, they fill a table constructor sized once.
local function elements(packed)
  local first = string.byte(packed)
  return cmsgpack.unpack(string.sub(packed, first == 0xdc and 4 or first == 0xdd and 6 or 2))
end

local event, updates, limits, aggregates, signature = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local mode, primary, now_text, ts_text, message_id, payload, traits_set, traits_set_once,
      traits_unset, recent_product, recent_category, cart_op, cart_product, cart_item,
      cart_quantity, unverified_claim, location = elements(event)
local trying = mode == 'try'
-- the keys this script works on: the profile's own, or a try's scratch copies
local K = KEYS
local naggs = #KEYS - 8
if trying then
  naggs = (naggs - 7) / 2
  K = {}
  for i = 1, 7 do K[i] = KEYS[8 + naggs + i] end
  K[8] = KEYS[8]
  for i = 1, naggs do K[8 + i] = KEYS[15 + naggs + i] end
end
local prof, seen, rp, rc, ids, traits, cart, stream = K[1], K[2], K[3], K[4], K[5], K[6], K[7], K[8]
local AGGREGATE_UPDATE_WIDTH = 6  -- fields of one AggregateUpdate

local now, ts = tonumber(now_text), tonumber(ts_text)
local min, max, floor = math.min, math.max, math.floor
local FOREVER = 2 ^ 52

-- every field of the profile hash this script uses, in one read
local f = redis.call('HMGET', KEYS[1], '->', 'id', 'fs', 'ls', 'v', 'n', 'uid', 'sg', 'tg',
                     'cu', 'claim', 'dl', 'xp', 'g', 'loc')
if f[1] then return {'moved', f[1]} end
local exists = f[2] ~= false
if not exists then
  if mode ~= 'event' then return {'missing'} end
  -- The caller resolved this identifier from a cache, but the profile is gone
  -- (erased): let it start over from the event's own identifier.
  if primary == '' then return {'stale'} end
end

if trying then
  -- copies of what exists, and nothing left over from a try that failed midway
  redis.call('DEL', unpack(K, 1, 7))
  if naggs > 0 then redis.call('DEL', unpack(K, 9)) end
  for i = 1, 8 + naggs do
    if i ~= 8 then redis.call('COPY', KEYS[i], K[i]) end
  end
end

local anon_ttl, max_traits, rp_cap, rc_cap, cart_cap, distinct_cap,
      dedupe_ms, dedupe_max, gap_ms, stream_max = elements(limits)

-- the windowed values as stored, or all to be recounted (lo = FOREVER)
local g = f[14] and {elements(f[14])}
local g_changed = false
if not g or g[1] ~= signature then
  -- a new profile usually has no aggregate keys at all: one EXISTS saves
  -- recounting every one of them
  local none = naggs == 0 or redis.call('EXISTS', unpack(K, 9)) == 0
  g = {signature, none and 0 or FOREVER, FOREVER}
  g_changed = true
end
local at = {}  -- aggregate position -> index of its value in g
for j = 5, #g, 3 do at[g[j - 1]] = j end
local function entry(i)  -- index of aggregate i's value, a new entry if it has none
  local j = at[i]
  if not j then
    j = #g + 2
    g[j - 1], g[j], g[j + 1] = i, 0, FOREVER
    at[i] = j
  end
  return j
end

-- Message ids seen: a retry within dedupe_ms, among the newest dedupe_max ids,
-- is a duplicate. Ids past either bound are pruned every 32nd event of the
-- profile rather than on every event, so an id found is checked against both.
local status = 'ok'
if mode == 'event' and message_id ~= '' then
  if redis.call('ZADD', seen, 'NX', now_text, message_id) == 0 then
    local first_seen = tonumber(redis.call('ZSCORE', seen, message_id))
    if first_seen > now - dedupe_ms and redis.call('ZREVRANK', seen, message_id) < dedupe_max then
      status = 'dup'
    else
      redis.call('ZADD', seen, now_text, message_id)  -- seen again, as if for the first time
    end
  end
  if status == 'ok' and exists and (tonumber(f[6]) or 0) % 32 == 0 then
    redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - dedupe_ms)
    local over = redis.call('ZCARD', seen) - dedupe_max
    if over > 0 then redis.call('ZREMRANGEBYRANK', seen, 0, over - 1) end
  end
end

-- the profile fields as they will be after this event; written with one HSET
local id, fs, ls, visits, events, uid, cu, claim, xp, loc =
  f[2], f[3], f[4], f[5], f[6], f[7], f[10], f[11], f[13], f[15]
local writes = {}
local made = {}  -- keys this event brought into being (they need the profile's expiry)

if mode ~= 'read' and status == 'ok' then
  if not exists then
    id, fs, ls, visits, events = primary, ts_text, ts_text, '1', '1'
    writes = {'id', id, 'fs', fs, 'ls', ls, 'v', visits, 'n', events}
    redis.call('SADD', ids, primary)
  else
    events = string.format('%d', (tonumber(events) or 0) + 1)
    writes = {'n', events}
    if ts - tonumber(ls) > gap_ms then
      visits = string.format('%d', (tonumber(visits) or 0) + 1)
      writes[3], writes[4] = 'v', visits
    end
    if ts < tonumber(fs) then fs = ts_text; writes[#writes + 1], writes[#writes + 2] = 'fs', fs end
    if ts > tonumber(ls) then ls = ts_text; writes[#writes + 1], writes[#writes + 2] = 'ls', ls end
  end

  -- traits: set, set once, unset; the count of traits is capped
  local set, once = traits_set, traits_set_once
  for i = 1, #set, 2 do
    if redis.call('HEXISTS', traits, set[i]) == 1 then
      redis.call('HSET', traits, set[i], set[i + 1])
    else
      local count = redis.call('HLEN', traits)
      if count < max_traits then
        redis.call('HSET', traits, set[i], set[i + 1])
        if count == 0 then made[traits] = true end
      end
    end
  end
  for i = 1, #once, 2 do
    local count = redis.call('HLEN', traits)
    if count < max_traits then
      redis.call('HSETNX', traits, once[i], once[i + 1])
      if count == 0 then made[traits] = true end
    end
  end
  for _, name in ipairs(traits_unset) do redis.call('HDEL', traits, name) end
  if unverified_claim ~= '' then
    claim = unverified_claim
    writes[#writes + 1], writes[#writes + 2] = 'claim', claim
  end
  -- the newest location by event time: a late (replayed, batched) event's older
  -- location does not replace it; its "at" is the event's time
  if location ~= '' and (not loc or cjson.decode(loc).at <= ts) then
    loc = location
    writes[#writes + 1], writes[#writes + 2] = 'loc', loc
  end

  -- recently viewed, newest first, without repeats
  if recent_product ~= '' then
    redis.call('LREM', rp, '0', recent_product)
    local length = redis.call('LPUSH', rp, recent_product)
    if length == 1 then made[rp] = true end
    if length > rp_cap then redis.call('LTRIM', rp, '0', rp_cap - 1) end
  end
  if recent_category ~= '' then
    redis.call('LREM', rc, '0', recent_category)
    local length = redis.call('LPUSH', rc, recent_category)
    if length == 1 then made[rc] = true end
    if length > rc_cap then redis.call('LTRIM', rc, '0', rc_cap - 1) end
  end

  -- cart: item json under the product id, quantity under "q:" .. product id
  local op, pid = cart_op, cart_product
  if op == 'add' then
    local count = redis.call('HEXISTS', cart, pid) == 0 and redis.call('HLEN', cart)
    if not count or count < 2 * cart_cap then
      redis.call('HSET', cart, pid, cart_item)
      redis.call('HINCRBY', cart, 'q:' .. pid, cart_quantity)
      if count == 0 then made[cart] = true end
    end
  elseif op == 'remove' then
    local left = 0
    if redis.call('HEXISTS', cart, pid) == 1 then left = redis.call('HINCRBY', cart, 'q:' .. pid, -cart_quantity) end
    if left <= 0 then redis.call('HDEL', cart, pid, 'q:' .. pid) end
  elseif op == 'clear' then
    redis.call('DEL', cart)
  end
  if op ~= '' then
    cu = ts_text
    writes[#writes + 1], writes[#writes + 2] = 'cu', cu
  end

  -- windowed aggregates: one hash per aggregate; count and sum keep a value per
  -- time bucket, distinct keeps the newest bucket per value, last keeps t and v.
  -- Each change also keeps the aggregate's value in g true (see the header).
  local u = {elements(updates)}
  for k = 1, #u, AGGREGATE_UPDATE_WIDTH do
    local position, kind, bucket_ms, n_buckets, ttl_text, value =
      u[k], u[k + 1], u[k + 2], u[k + 3], u[k + 4], u[k + 5]
    local key = K[8 + position]
    local b = floor(ts / bucket_ms)
    if b > floor(now / bucket_ms) - n_buckets then
      local field = string.format('%d', b)  -- cheaper than redis.call's own formatting
      -- bucket b counts from `enters` until `leaves`; the key lives one window
      -- past its newest bucket: extend it only when a bucket is new
      local enters, leaves, expires = b * bucket_ms, (b + n_buckets) * bucket_ms, now + ttl_text
      local changed, extend, moved_from = false, false, nil
      if kind == 'count' then
        extend = redis.call('HINCRBY', key, field, '1') == 1
        changed = true
      elseif kind == 'sum' then
        extend = tonumber(redis.call('HINCRBYFLOAT', key, field, value)) == tonumber(value)
        changed = true
      elseif kind == 'distinct' then
        local old = redis.call('HGET', key, value)
        if old then
          if tonumber(old) < b then
            redis.call('HSET', key, value, field)
            extend, changed, moved_from = true, true, tonumber(old)
          end
        elseif redis.call('HLEN', key) < distinct_cap then
          redis.call('HSET', key, value, field)
          extend, changed = true, true
        end
      elseif kind == 'last' then
        local t = redis.call('HGET', key, 't')
        if not t or tonumber(t) <= ts then
          redis.call('HSET', key, 't', ts_text, 'v', value)
          extend, changed = true, true
        end
      end
      if extend then redis.call('PEXPIRE', key, ttl_text) end

      if changed then
        local j = entry(position)
        if kind == 'last' then
          -- shown until its bucket leaves the window or the key expires
          g[j], g[j + 1] = value, min(leaves, expires)
        elseif kind == 'sum' or not (g[2] <= now and now < g[j + 1]) then
          g[j + 1] = 0  -- recounted below
        else
          -- where a value holds, every bucket in its hash counts or lies ahead
          if moved_from and moved_from * bucket_ms <= now and moved_from > floor(now / bucket_ms) - n_buckets then
            g[j] = g[j] - 1
          end
          if enters <= now then
            g[j], g[2], g[j + 1] = g[j] + 1, max(g[2], enters), min(g[j + 1], leaves, expires)
          else
            g[j + 1] = min(g[j + 1], enters, expires)
          end
        end
        g[3] = min(g[3], g[j + 1])
        g_changed = true
      end
    end
  end

  if not trying then
    redis.call('XADD', stream, 'MAXLEN', '~', stream_max, '*', 'p', id, 'e', payload)
  end
end

-- snapshot: every value must hold at `now`; those that do not are recounted
local evict = mode ~= 'read'
local kinds, bucket_sizes, bucket_counts
local function recount(i)  -- value of aggregate i at `now`, from when and until when it holds
  if not kinds then kinds, bucket_sizes, bucket_counts = elements(aggregates) end
  local key, kind, bucket, n = K[8 + i], kinds[i], bucket_sizes[i], bucket_counts[i]
  local current = floor(now / bucket)
  local cutoff = current - n
  local function expires()
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then return FOREVER end
    return now + ttl
  end
  if kind == 'last' then
    local last = redis.call('HMGET', key, 't', 'v')
    if not last[1] then return 0, 0, FOREVER end
    local shown = min((floor(tonumber(last[1]) / bucket) + n) * bucket, expires())
    if now < shown then return last[2], 0, shown end
    return 0, shown, FOREVER
  end
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return 0, 0, FOREVER end
  local acc, from, till, stale = 0, 0, expires(), {}
  for j = 1, #flat, 2 do
    local b
    if kind == 'distinct' then b = tonumber(flat[j + 1]) else b = tonumber(flat[j]) end
    if b <= cutoff then
      stale[#stale + 1] = flat[j]
    elseif b <= current then
      if kind == 'distinct' then acc = acc + 1 else acc = acc + tonumber(flat[j + 1]) end
      from, till = max(from, b * bucket), min(till, (b + n) * bucket)
    else
      till = min(till, b * bucket)
    end
  end
  if evict and #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  return acc, from, till
end
if not (g[2] <= now and now < g[3]) then
  -- before lo (an earlier clock than the last writer's) nothing is known to hold
  local all = now < g[2]
  local lo, hi = all and 0 or g[2], FOREVER
  if all then for i = 1, naggs do entry(i) end end
  for j = 5, #g, 3 do
    if all or now >= g[j + 1] then
      local from
      g[j], from, g[j + 1] = recount(g[j - 1])
      lo = max(lo, from)
    end
    hi = min(hi, g[j + 1])
  end
  g[2], g[3] = lo, hi
  g_changed = true
end
local windowed = f[14]
if g_changed then
  -- an entry whose value is 0 for ever is left out
  local kept = {g[1], g[2], g[3]}
  for j = 5, #g, 3 do
    if g[j] ~= 0 or g[j + 1] ~= FOREVER then
      kept[#kept + 1], kept[#kept + 2], kept[#kept + 3] = g[j - 1], g[j], g[j + 1]
    end
  end
  windowed = cmsgpack.pack(kept)
  -- a read changes nothing; nor does a duplicate create the profile
  if evict and (exists or status == 'ok') then writes[#writes + 1], writes[#writes + 2] = 'g', windowed end
end

-- An anonymous profile expires anon_ttl after its last event. Refreshing the
-- expiry of its seven keys on every event is wasted work: once a hundredth of
-- the TTL is plenty (the profile may then live up to 1% longer). A key this
-- event created gets the expiry at once, or it would never expire if the
-- visitor never came back; a new profile has no other keys to refresh.
local anonymous = mode ~= 'read' and status == 'ok' and not uid
local refresh = anonymous and (not xp or now - tonumber(xp) > anon_ttl / 100)
if refresh then writes[#writes + 1], writes[#writes + 2] = 'xp', now_text end
if #writes > 0 then redis.call('HSET', prof, unpack(writes)) end
if refresh and exists then
  for i = 1, 7 do redis.call('PEXPIRE', K[i], anon_ttl) end
elseif anonymous then
  if not exists then
    made[prof], made[ids] = true, true
    if message_id ~= '' then made[seen] = true end
  end
  for key in pairs(made) do redis.call('PEXPIRE', key, anon_ttl) end
end

local sg, tg, dl = f[8], f[9], f[12]
local profile = {id or '', fs or '', ls or '', visits or '', events or '', uid or '', sg or '',
                 tg or '', cu or '', claim or '', dl or '', loc or ''}
local traits_flat, cart_flat = redis.call('HGETALL', traits), redis.call('HGETALL', cart)
local recent_products = redis.call('LRANGE', rp, '0', '-1')
local recent_categories = redis.call('LRANGE', rc, '0', '-1')
if trying then
  redis.call('DEL', unpack(K, 1, 7))
  if naggs > 0 then redis.call('DEL', unpack(K, 9)) end
end
return {status, profile, traits_flat, cart_flat, recent_products, recent_categories, windowed}
