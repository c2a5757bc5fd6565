-- What a decision leaves behind, in one round trip: changed segments, tags and
-- traits; deliveries checked against their frequency caps and recorded; the
-- experiment variants given; consent answers; engagement; the edge's own records
-- (exposures, segment changes), appended to the event stream; and the outbound messages, to the outbox (never
-- trimmed: see edge/store/streams.py).
--
-- Delivery state lives in one field "dl" of the profile hash, msgpack (older
-- profiles may still hold it as JSON, which is read the same and rewritten as
-- msgpack: cjson formats every number with sprintf, several times slower):
--   c: cap key -> delivery times (ms), pruned to the longest cap window
--   x: experiment id -> variant (first assignment stays)
--   k: consent name -> [granted, time ms, source] (newest answer wins)
--   h: 24 counts of engagement by local hour;  l: [channel, time ms] last opened or clicked
-- A journey step (edge/worker/runner.py) commits through the same script, so that its
-- sends count against the same caps as the edge's: ARGV[4] then holds a JourneyCommit,
-- and the person's journey state (KEYS[5]) changes only if it is still the version the
-- step was computed from and the stimulus was not applied before (at least once in,
-- never twice in effect); its deliveries must all fit their caps, or nothing is written.
-- KEYS: 1 profile hash, 2 traits, 3 event stream, 4 outbox, 5 journey state
-- ARGV (EffectsArgv in edge/store/scripts.py; tests/test_script_contracts.py
-- holds this script to it): 1 what the decision changes (EffectsArgs,
-- msgpack), 2 the deliveries (msgpack, flat), each: the number of caps to
-- check, that many CapChecks, the number of keys to record times under, that
-- many CapRecords; 3 the limits (Limits); 4 a JourneyCommit (msgpack) or ""
-- Returns {"ok", accepted flags per delivery} | {"moved", id} | {"missing"}
--   | {"dup"} | {"stale"} | {"capped"} (journey commits only)
local prof, traits, stream, outbox, journeys = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local outcome, deliveries, limits, commit = ARGV[1], ARGV[2], ARGV[3], ARGV[4] or ''
local CAP_CHECK_WIDTH, CAP_RECORD_WIDTH = 4, 2  -- fields of one CapCheck, one CapRecord

-- the array's elements as values: see elements() in event.lua
local function elements(packed)
  local first = string.byte(packed)
  return cmsgpack.unpack(string.sub(packed, first == 0xdc and 4 or first == 0xdd and 6 or 2))
end
local f = redis.call('HMGET', prof, '->', 'id', 'dl', 'uid')
if f[1] then return {'moved', f[1]} end
if not f[2] then return {'missing'} end
local now, segments, tags, traits_set, horizon_ms, variants, consent, engagement, records,
      messages = elements(outcome)
local anon_ttl, max_traits, rp_cap, rc_cap, cart_cap, distinct_cap, dedupe_ms, dedupe_max,
      gap_ms, stream_max = elements(limits)
local d = {elements(deliveries)}

local expected, stimulus, applied_max, run_writes, run_deletes, state_version, applied
if commit ~= '' then
  expected, stimulus, applied_max, run_writes, run_deletes = elements(commit)
  local j = redis.call('HMGET', journeys, 'v', 'a')
  state_version = tonumber(j[1] or '0')
  applied = j[2] and cmsgpack.unpack(j[2]) or {}
  for _, seen in ipairs(applied) do
    if seen == stimulus then return {'dup'} end
  end
  if state_version ~= expected then return {'stale'} end
end

local dl = {}
if #d > 0 or #variants > 0 or #consent > 0 or #engagement > 0 then
  local raw = f[3]
  if raw then
    if string.byte(raw) == 123 then dl = cjson.decode(raw) else dl = cmsgpack.unpack(raw) end  -- 123: '{'
  end
  dl.c = dl.c or {}
  dl.x = dl.x or {}
  dl.k = dl.k or {}
end

-- a delivery is all or nothing: every cap it counts towards must have room.
-- Each delivery is laid out as described at the top.
-- Checked before anything is written; an accepted delivery counts towards the next ones.
local accepted, added, none, k = {}, {}, {}, 1
while k <= #d do
  local caps = k + 1                             -- where its caps start
  local records = caps + CAP_CHECK_WIDTH * d[k]  -- where its number of records is
  local after = records + 1 + CAP_RECORD_WIDTH * d[records]
  local ok = true
  for j = caps, records - 1, CAP_CHECK_WIDTH do
    local key, window_ms, most, count = d[j], d[j + 1], d[j + 2], d[j + 3]
    local used, since = added[key] or 0, now - window_ms
    for _, t in ipairs(dl.c[key] or none) do if t > since then used = used + 1 end end
    if used + count > most then ok = false end
  end
  if ok then
    for j = records + 1, after - 1, CAP_RECORD_WIDTH do
      local key, times = d[j], d[j + 1]
      added[key] = (added[key] or 0) + times
    end
  end
  accepted[#accepted + 1] = ok and 1 or 0
  if commit ~= '' and not ok then return {'capped'} end
  k = after
end

-- profile fields changed here, written with one HSET at the end
local writes = {}
if segments ~= '' then writes[#writes + 1], writes[#writes + 2] = 'sg', segments end
if tags ~= '' then writes[#writes + 1], writes[#writes + 2] = 'tg', tags end
local set = traits_set
for i = 1, #set, 2 do
  if redis.call('HEXISTS', traits, set[i]) == 1 then
    redis.call('HSET', traits, set[i], set[i + 1])
  else
    local count = redis.call('HLEN', traits)
    if count < max_traits then
      redis.call('HSET', traits, set[i], set[i + 1])
      -- a new key of an anonymous profile expires with it (see event.lua)
      if count == 0 and not f[4] then redis.call('PEXPIRE', traits, anon_ttl) end
    end
  end
end

if #d > 0 or #variants > 0 or #consent > 0 or #engagement > 0 then
  local n = 1
  k = 1
  while k <= #d do
    local records = k + 1 + CAP_CHECK_WIDTH * d[k]
    local after = records + 1 + CAP_RECORD_WIDTH * d[records]
    if accepted[n] == 1 then
      for j = records + 1, after - 1, CAP_RECORD_WIDTH do
        local key, times = d[j], d[j + 1]
        local list = dl.c[key] or {}
        for _ = 1, times do list[#list + 1] = now end
        dl.c[key] = list
      end
    end
    k, n = after, n + 1
  end
  -- drop times older than the longest window; most lists have none to drop
  local horizon = now - horizon_ms
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
  -- and with nothing left at all, no state: an empty table would pack as an empty array
  if next(dl) == nil then
    redis.call('HDEL', prof, 'dl')
  else
    writes[#writes + 1], writes[#writes + 2] = 'dl', cmsgpack.pack(dl)
  end
end
if #writes > 0 then redis.call('HSET', prof, unpack(writes)) end

-- each entry goes out only if the delivery it belongs to (if any) was accepted
for i = 1, #records, 3 do
  local needs = records[i]
  if needs == 0 or accepted[needs] == 1 then
    redis.call('XADD', stream, 'MAXLEN', '~', stream_max, '*', 'p', f[2], 'e', records[i + 2],
               'k', records[i + 1])
  end
end
-- the outbox is never trimmed: a message not yet delivered must not be lost
for i = 1, #messages, 2 do
  local needs = messages[i]
  if needs == 0 or accepted[needs] == 1 then
    redis.call('XADD', outbox, '*', 'p', f[2], 'e', messages[i + 1], 'k', 'message')
  end
end

if stimulus then
  for i = 1, #run_writes, 2 do redis.call('HSET', journeys, run_writes[i], run_writes[i + 1]) end
  if #run_deletes > 0 then redis.call('HDEL', journeys, unpack(run_deletes)) end
  applied[#applied + 1] = stimulus
  while #applied > applied_max do table.remove(applied, 1) end
  redis.call('HSET', journeys, 'v', state_version + 1, 'a', cmsgpack.pack(applied))
end
return {'ok', accepted}
