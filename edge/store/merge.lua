-- Merge profile S into profile T atomically. Nothing counted is lost or counted
-- twice: per-bucket counts and sums add up, distinct values keep their newest
-- bucket, "last" keeps the newer value, and S becomes a pointer to T.
-- KEYS: S then T, each: profile hash, seen, recent products, recent categories,
--       identifiers, traits, cart, then its aggregate hashes (n of each).
-- ARGV: MergeArgs (edge/store/scripts.py): S id, T id, the limits (Limits,
--       msgpack, as event.lua gets them), the aggregates (AggregateList, msgpack)
-- Returns {"merged"} | {"moved", which ("S"|"T"), target} | {"missing", which}
local merged_id, survivor_id, limits, aggregates = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
-- the array's elements as values: see elements() in event.lua
local function elements(packed)
  local first = string.byte(packed)
  return cmsgpack.unpack(string.sub(packed, first == 0xdc and 4 or first == 0xdd and 6 or 2))
end
local kinds, bucket_sizes, bucket_counts = elements(aggregates)
local n = #kinds
local width = 7 + n
local function keys_of(offset)
  local k = {}
  for i = 1, width do k[i] = KEYS[offset + i] end
  return k
end
local S, T = keys_of(0), keys_of(width)
local s_id, t_id = merged_id, survivor_id
if s_id == t_id then return {'merged'} end

for label, k in pairs({S = S, T = T}) do
  local moved = redis.call('HGET', k[1], '->')
  if moved then return {'moved', label, moved} end
  if redis.call('HEXISTS', k[1], 'id') == 0 then return {'missing', label} end
end

local anon_ttl, max_traits, rp_cap, rc_cap, cart_cap, distinct_cap, dedupe_ms, dedupe_max,
      gap_ms, stream_max = elements(limits)

-- profile fields
local s = redis.call('HMGET', S[1], 'fs', 'ls', 'v', 'n', 'uid', 'cu', 'tg', 'claim')
local t = redis.call('HMGET', T[1], 'fs', 'ls', 'v', 'n', 'uid', 'cu', 'tg', 'claim')
local function num(x) return tonumber(x) or 0 end
redis.call('HSET', T[1], 'fs', math.min(num(s[1]), num(t[1])), 'ls', math.max(num(s[2]), num(t[2])),
  'v', num(s[3]) + num(t[3]), 'n', num(s[4]) + num(t[4]))
if not t[5] and s[5] then redis.call('HSET', T[1], 'uid', s[5]) end
if s[6] and num(s[6]) > num(t[6]) then redis.call('HSET', T[1], 'cu', s[6]) end
if s[8] and not t[8] then redis.call('HSET', T[1], 'claim', s[8]) end
-- the newer location stays (edge/ingest/location.py)
local s_loc, t_loc = redis.call('HGET', S[1], 'loc'), redis.call('HGET', T[1], 'loc')
if s_loc and (not t_loc or cjson.decode(s_loc).at > cjson.decode(t_loc).at) then
  redis.call('HSET', T[1], 'loc', s_loc)
end
if s[7] then
  local tags, seen_tag = {}, {}
  for _, list in ipairs({t[7] or '[]', s[7]}) do
    for _, tag in ipairs(cjson.decode(list)) do
      if not seen_tag[tag] then seen_tag[tag] = true; tags[#tags + 1] = tag end
    end
  end
  if #tags > 0 then redis.call('HSET', T[1], 'tg', cjson.encode(tags)) end
end
-- segments are recomputed on the next event, and so are the windowed values
-- event.lua keeps in "g", since T's aggregates change below
redis.call('HDEL', T[1], 'sg', 'g')

-- delivery state (see effects.lua; msgpack, or JSON where not rewritten since):
-- both histories of deliveries count against the caps; the survivor's
-- experiment variants stay; the newer consent answer and last engagement win;
-- engagement hours add up
local function decode(raw)
  if string.byte(raw) == 123 then return cjson.decode(raw) end  -- 123: '{'
  return cmsgpack.unpack(raw)
end
local s_dl, t_dl = redis.call('HGET', S[1], 'dl'), redis.call('HGET', T[1], 'dl')
if s_dl then
  local sd, td = decode(s_dl), t_dl and decode(t_dl) or {}
  for _, name in ipairs({'c', 'x', 'k'}) do td[name] = td[name] or {} end
  for key, list in pairs(sd.c or {}) do
    local merged = td.c[key] or {}
    for _, t in ipairs(list) do merged[#merged + 1] = t end
    table.sort(merged)
    td.c[key] = merged
  end
  for id, variant in pairs(sd.x or {}) do if not td.x[id] then td.x[id] = variant end end
  for name, answer in pairs(sd.k or {}) do
    local mine = td.k[name]
    if not mine or mine[2] < answer[2] then td.k[name] = answer end
  end
  if sd.h then
    if not td.h then td.h = sd.h else for i = 1, 24 do td.h[i] = (td.h[i] or 0) + (sd.h[i] or 0) end end
  end
  if sd.l and (not td.l or td.l[2] < sd.l[2]) then td.l = sd.l end
  for _, name in ipairs({'c', 'x', 'k'}) do if next(td[name]) == nil then td[name] = nil end end
  redis.call('HSET', T[1], 'dl', cmsgpack.pack(td))
end

-- message ids seen, so a retry after the merge is still recognised
redis.call('ZUNIONSTORE', T[2], 2, T[2], S[2], 'AGGREGATE', 'MAX')
local over = redis.call('ZCARD', T[2]) - dedupe_max
if over > 0 then redis.call('ZREMRANGEBYRANK', T[2], 0, over - 1) end

-- recent lists: the survivor's order first, then the other's new entries
for idx, cap in pairs({[3] = rp_cap, [4] = rc_cap}) do
  local have = {}
  for _, x in ipairs(redis.call('LRANGE', T[idx], 0, -1)) do have[x] = true end
  for _, x in ipairs(redis.call('LRANGE', S[idx], 0, -1)) do
    if not have[x] then redis.call('RPUSH', T[idx], x); have[x] = true end
  end
  redis.call('LTRIM', T[idx], 0, cap - 1)
end

-- identifiers: the survivor answers for all of them, S's own id included
redis.call('SUNIONSTORE', T[5], T[5], S[5])
redis.call('SADD', T[5], s_id)

-- traits: the survivor's values win, the other's fill the gaps
local st = redis.call('HGETALL', S[6])
for i = 1, #st, 2 do
  if redis.call('HLEN', T[6]) < max_traits then redis.call('HSETNX', T[6], st[i], st[i + 1]) end
end

-- cart: items only S has are carried over with their quantity
local sc = redis.call('HGETALL', S[7])
for i = 1, #sc, 2 do
  local field = sc[i]
  if string.sub(field, 1, 2) ~= 'q:' and redis.call('HEXISTS', T[7], field) == 0
     and redis.call('HLEN', T[7]) < 2 * cart_cap then
    redis.call('HSET', T[7], field, sc[i + 1], 'q:' .. field, redis.call('HGET', S[7], 'q:' .. field) or 1)
  end
end

-- aggregates
for i = 1, n do
  local kind, bucket, nb = kinds[i], bucket_sizes[i], bucket_counts[i]
  local sk, tk = S[7 + i], T[7 + i]
  local flat = redis.call('HGETALL', sk)
  if #flat > 0 then
    if kind == 'count' then
      for j = 1, #flat, 2 do redis.call('HINCRBY', tk, flat[j], flat[j + 1]) end
    elseif kind == 'sum' then
      for j = 1, #flat, 2 do redis.call('HINCRBYFLOAT', tk, flat[j], flat[j + 1]) end
    elseif kind == 'distinct' then
      for j = 1, #flat, 2 do
        local old = redis.call('HGET', tk, flat[j])
        if old then
          if tonumber(old) < tonumber(flat[j + 1]) then redis.call('HSET', tk, flat[j], flat[j + 1]) end
        elseif redis.call('HLEN', tk) < distinct_cap then
          redis.call('HSET', tk, flat[j], flat[j + 1])
        end
      end
    elseif kind == 'last' then
      local st_, sv = redis.call('HGET', sk, 't'), redis.call('HGET', sk, 'v')
      local tt = redis.call('HGET', tk, 't')
      if st_ and (not tt or tonumber(tt) < tonumber(st_)) then redis.call('HSET', tk, 't', st_, 'v', sv) end
    end
    redis.call('PEXPIRE', tk, (tonumber(nb) + 1) * tonumber(bucket))
  end
end

-- S becomes a pointer to T
for i = 1, width do redis.call('DEL', S[i]) end
redis.call('HSET', S[1], '->', t_id)

if redis.call('HEXISTS', T[1], 'uid') == 1 then
  for i = 1, 7 do redis.call('PERSIST', T[i]) end
else
  for i = 1, 7 do
    if redis.call('EXISTS', T[i]) == 1 then redis.call('PEXPIRE', T[i], anon_ttl) end
  end
end
return {'merged'}
