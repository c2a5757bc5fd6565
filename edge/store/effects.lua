-- What a decision leaves behind, in one round trip: changed segments, tags and
-- traits; deliveries checked against their frequency caps and recorded; the
-- experiment variants given; consent answers; engagement; and the stream
-- entries for exposures and outbound messages.
--
-- Delivery state lives in one JSON field "dl" of the profile hash:
--   c: cap key -> delivery times (ms), pruned to the longest cap window
--   x: experiment id -> variant (first assignment stays)
--   k: consent name -> [granted, time ms, source] (newest answer wins)
--   h: 24 counts of engagement by local hour;  l: [channel, time ms] last opened or clicked
-- KEYS: 1 profile hash, 2 traits, 3 stream
-- ARGV[1] msgpack array: 1 now, 2 segments json or "", 3 tags json or "",
--   4 traits (flat name, json), 5 max traits, 6 deliveries (see below),
--   7 horizon ms, 8 variants (flat id, variant),
--   9 consent (flat name, granted 0|1, time, source), 10 engagement
--   {hour, channel, engaged 0|1, time} or {}, 11 stream entries (flat delivery
--   index or 0, payload), 12 stream max length
-- Returns {"ok", accepted flags per delivery} | {"moved", id} | {"missing"}
local prof, traits, stream = KEYS[1], KEYS[2], KEYS[3]
local a = cmsgpack.unpack(ARGV[1])
local moved = redis.call('HGET', prof, '->')
if moved then return {'moved', moved} end
if redis.call('HEXISTS', prof, 'id') == 0 then return {'missing'} end
local now = a[1]

if a[2] ~= '' then redis.call('HSET', prof, 'sg', a[2]) end
if a[3] ~= '' then redis.call('HSET', prof, 'tg', a[3]) end
local set = a[4]
for i = 1, #set, 2 do
  if redis.call('HEXISTS', traits, set[i]) == 1 or redis.call('HLEN', traits) < a[5] then
    redis.call('HSET', traits, set[i], set[i + 1])
  end
end

local deliveries, variants, consent, engagement = a[6], a[8], a[9], a[10]
local accepted = {}
if #deliveries > 0 or #variants > 0 or #consent > 0 or #engagement > 0 then
  local raw = redis.call('HGET', prof, 'dl')
  local dl = raw and cjson.decode(raw) or {}
  dl.c = dl.c or {}
  dl.x = dl.x or {}
  dl.k = dl.k or {}

  -- a delivery is all or nothing: every cap it counts towards must have room.
  -- Each is {checks, records}: checks {key, window ms, max, deliveries}, records
  -- {key, times to add} (two caps on one key check one delivery twice, add it once)
  for i, delivery in ipairs(deliveries) do
    local ok = true
    for _, c in ipairs(delivery[1]) do
      local used = 0
      for _, t in ipairs(dl.c[c[1]] or {}) do if t > now - c[2] then used = used + 1 end end
      if used + c[4] > c[3] then ok = false end
    end
    if ok then
      for _, r in ipairs(delivery[2]) do
        local list = dl.c[r[1]] or {}
        for _ = 1, r[2] do list[#list + 1] = now end
        dl.c[r[1]] = list
      end
    end
    accepted[i] = ok and 1 or 0
  end
  for key, list in pairs(dl.c) do
    local kept = {}
    for _, t in ipairs(list) do if t > now - a[7] then kept[#kept + 1] = t end end
    if #kept == 0 then dl.c[key] = nil else dl.c[key] = kept end
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
  -- cjson writes an empty table as {}: keep the maps as maps by dropping them when empty
  for _, name in ipairs({'c', 'x', 'k'}) do if next(dl[name]) == nil then dl[name] = nil end end
  redis.call('HSET', prof, 'dl', cjson.encode(dl))
end

local entries = a[11]
local id = redis.call('HGET', prof, 'id')
for i = 1, #entries, 2 do
  local needs = entries[i]
  if needs == 0 or accepted[needs] == 1 then
    redis.call('XADD', stream, 'MAXLEN', '~', a[12], '*', 'p', id, 'e', entries[i + 1])
  end
end
return {'ok', accepted}
