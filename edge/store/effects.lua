-- What a decision leaves behind, in one round trip: changed segments, tags and
-- traits; deliveries checked against their frequency caps and recorded; the
-- experiment variants given; consent answers; engagement; and the stream
-- entries for exposures and outbound messages.
--
-- Delivery state lives in one field "dl" of the profile hash, msgpack (older
-- profiles may still hold it as JSON, which is read the same and rewritten as
-- msgpack: cjson formats every number with sprintf, several times slower):
--   c: cap key -> delivery times (ms), pruned to the longest cap window
--   x: experiment id -> variant (first assignment stays)
--   k: consent name -> [granted, time ms, source] (newest answer wins)
--   h: 24 counts of engagement by local hour;  l: [channel, time ms] last opened or clicked
-- KEYS: 1 profile hash, 2 traits, 3 stream
-- ARGV[1] msgpack array: 1 now, 2 segments json or "", 3 tags json or "",
--   4 traits (flat name, json), 5 max traits, 6 horizon ms, 7 variants (flat id, variant),
--   8 consent (flat name, granted 0|1, time, source), 9 engagement
--   {hour, channel, engaged 0|1, time} or {}, 10 stream entries (flat delivery
--   index or 0, payload), 11 stream max length, 12 anonymous profile time to
--   live ms (both as text: command arguments), 13.. the deliveries,
--   each: the number of caps to check, then per cap its key, window ms, max and
--   how many deliveries it counts; the number of keys to record times under,
--   then per key the key and how many times (two caps on one key check one
--   delivery twice, add it once)
-- Returns {"ok", accepted flags per delivery} | {"moved", id} | {"missing"}
local prof, traits, stream = KEYS[1], KEYS[2], KEYS[3]
-- the array's elements as values: see elements() in event.lua
local first = string.byte(ARGV[1])
local a = {cmsgpack.unpack(string.sub(ARGV[1], first == 0xdc and 4 or first == 0xdd and 6 or 2))}
local f = redis.call('HMGET', prof, '->', 'id', 'dl', 'uid')
if f[1] then return {'moved', f[1]} end
if not f[2] then return {'missing'} end
local now = a[1]

-- profile fields changed here, written with one HSET at the end
local writes = {}
if a[2] ~= '' then writes[#writes + 1], writes[#writes + 2] = 'sg', a[2] end
if a[3] ~= '' then writes[#writes + 1], writes[#writes + 2] = 'tg', a[3] end
local set = a[4]
for i = 1, #set, 2 do
  if redis.call('HEXISTS', traits, set[i]) == 1 then
    redis.call('HSET', traits, set[i], set[i + 1])
  else
    local count = redis.call('HLEN', traits)
    if count < a[5] then
      redis.call('HSET', traits, set[i], set[i + 1])
      -- a new key of an anonymous profile expires with it (see event.lua)
      if count == 0 and not f[4] then redis.call('PEXPIRE', traits, a[12]) end
    end
  end
end

local variants, consent, engagement = a[7], a[8], a[9]
local accepted = {}
if #a > 12 or #variants > 0 or #consent > 0 or #engagement > 0 then
  local raw, dl = f[3], {}
  if raw then
    if string.byte(raw) == 123 then dl = cjson.decode(raw) else dl = cmsgpack.unpack(raw) end  -- 123: '{'
  end
  dl.c = dl.c or {}
  dl.x = dl.x or {}
  dl.k = dl.k or {}

  -- a delivery is all or nothing: every cap it counts towards must have room.
  -- From a[13] on, each delivery is laid out as described at the top.
  local none, k = {}, 13
  while k <= #a do
    local caps = k + 1               -- where its caps start
    local records = caps + 4 * a[k]  -- where its number of records is
    local ok = true
    for j = caps, records - 1, 4 do
      local used, since = 0, now - a[j + 1]
      for _, t in ipairs(dl.c[a[j]] or none) do if t > since then used = used + 1 end end
      if used + a[j + 3] > a[j + 2] then ok = false end
    end
    k = records + 1 + 2 * a[records]
    if ok then
      for j = records + 1, k - 1, 2 do
        local list = dl.c[a[j]] or {}
        for _ = 1, a[j + 1] do list[#list + 1] = now end
        dl.c[a[j]] = list
      end
    end
    accepted[#accepted + 1] = ok and 1 or 0
  end
  -- drop times older than the longest window; most lists have none to drop
  local horizon = now - a[6]
  for key, list in pairs(dl.c) do
    for _, old in ipairs(list) do
      if old <= horizon then
        local kept = {}
        for _, t in ipairs(list) do if t > horizon then kept[#kept + 1] = t end end
        if #kept == 0 then dl.c[key] = nil else dl.c[key] = kept end
        break
      end
    end
  end

  for i = 1, #variants, 2 do
    if not dl.x[variants[i]] then dl.x[variants[i]] = variants[i + 1] end
  end
  for i = 1, #consent, 4 do
    local old = dl.k[consent[i]]
    if not old or old[2] <= consent[i + 2] then
      dl.k[consent[i]] = {consent[i + 1] == 1, consent[i + 2], consent[i + 3]}
    end
  end
  if #engagement > 0 then
    local hours = dl.h or {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
    hours[engagement[1] + 1] = hours[engagement[1] + 1] + 1
    dl.h = hours
    if engagement[3] == 1 and (not dl.l or dl.l[2] <= engagement[4]) then
      dl.l = {engagement[2], engagement[4]}
    end
  end
  -- an empty table would be written as an array: keep the maps as maps by dropping them when empty
  if next(dl.c) == nil then dl.c = nil end
  if next(dl.x) == nil then dl.x = nil end
  if next(dl.k) == nil then dl.k = nil end
  writes[#writes + 1], writes[#writes + 2] = 'dl', cmsgpack.pack(dl)
end
if #writes > 0 then redis.call('HSET', prof, unpack(writes)) end

local entries = a[10]
for i = 1, #entries, 2 do
  local needs = entries[i]
  if needs == 0 or accepted[needs] == 1 then
    redis.call('XADD', stream, 'MAXLEN', '~', a[11], '*', 'p', f[2], 'e', entries[i + 1])
  end
end
return {'ok', accepted}
