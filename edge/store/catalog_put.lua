-- Upsert one product, keep its category index, and announce a price drop or a
-- return to stock. One script, so two concurrent updates of the same product
-- are ordered by Redis: a drop is announced once, never twice, never missed.
--
-- KEYS: 1 product hash, 2 the new category's index (the product key when the
--       product has no category), 3 the index of the category the caller read
--       as stored (same placeholder rule), 4 the event stream
-- ARGV: CatalogPutArgs (edge/store/scripts.py): product id, product JSON,
--       effective price, stock ("" = unknown), currency, category path ("" =
--       none), category path the caller read as stored, the price-drop and the
--       back-in-stock event JSON (each without the old value, which only this
--       script knows; see CatalogChange in edge/store/streams.py), stream max length
--
-- Every key is declared, as Redis Cluster requires: the caller passes the
-- stored category it read, and if that changed in between the script changes
-- nothing and answers {'recat', stored} so the caller retries with the right key.
local product, new_index, old_index, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local product_id, product_json, price, stock, currency, path, read_path, price_drop_event,
      back_in_stock_event, stream_max =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]

local old = redis.call('HMGET', product, 'ep', 'st', 'cur', 'cat')
local old_path = old[4] or ''
if old_path ~= read_path then return {'recat', old_path} end

if old_path ~= '' and old_path ~= path then redis.call('ZREM', old_index, product_id) end
if path ~= '' then redis.call('ZADD', new_index, price, product_id) end
redis.call('HSET', product, 'j', product_json, 'ep', price, 'st', stock, 'cur', currency, 'cat', path)

local function announce(event_json, name, value)
  local event = cjson.decode(event_json)
  event.properties[name] = value
  redis.call('XADD', stream, 'MAXLEN', '~', stream_max, '*', 'p', '', 'e', cjson.encode(event),
             'k', 'catalog')
end

-- A drop compares prices in one currency only: 100 USD after 95 EUR is no drop.
local dropped = 0
if old[1] and old[3] == currency and tonumber(price) < tonumber(old[1]) then
  announce(price_drop_event, 'old_price', tonumber(old[1]))
  dropped = 1
end
-- Back in stock means known sold out before and known available now; an
-- unknown stock on either side says nothing.
local back = 0
if old[2] == '0' and stock ~= '' and tonumber(stock) > 0 then
  announce(back_in_stock_event, 'old_stock', 0)
  back = 1
end
return {'ok', dropped, back}
