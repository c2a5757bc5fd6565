-- Delete one product and its entry in its category's index.
-- KEYS: 1 product hash, 2 the index of the category the caller read as stored
--       (the product key when none), 3 the product's cross-sell counts
-- ARGV: CatalogDeleteArgs (edge/store/scripts.py): the product id, the category
--       path the caller read as stored
-- As in catalog_put.lua, a stale read answers {'recat', stored} and changes nothing.
local product_id, read_path = ARGV[1], ARGV[2]
local old_path = redis.call('HGET', KEYS[1], 'cat')
if not old_path then return {'missing'} end
if old_path ~= read_path then return {'recat', old_path} end
if old_path ~= '' then redis.call('ZREM', KEYS[2], product_id) end
redis.call('DEL', KEYS[1], KEYS[3])
return {'ok'}
