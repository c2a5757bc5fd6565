"""The product catalog: validation, the store on a real Redis, HTTP with key scopes, the import command."""

from __future__ import annotations

import asyncio
import gzip
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Awaitable, Callable

import orjson
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings, strategies as st

from edge.catalog.products import Product, check_csv_columns, csv_row_to_raw, validate_product
from edge.cli import main
from edge.runtime.clock import FakeClock
from edge.runtime.config import CatalogSettings, Settings
from edge.store import streams
from edge.store.catalog import BACK_IN_STOCK, PRICE_DROPPED, CatalogStore
from edge.store.embedded import EmbeddedRedis
from edge.ingest.wire import InputError
from tests.support import PUBLIC_KEY, SECRET_KEY, SETTINGS_YAML, LiveEdge, basic, write_config

ROOT = Path(__file__).resolve().parent.parent
STREAM = "kairos:events"
WRITE_KEY = "sk-catalog"
READ_KEY = "sk-catalog-read"
CATALOG_SETTINGS_YAML = SETTINGS_YAML.replace("secret_keys:\n", f"""secret_keys:
  {WRITE_KEY}:
    site: shop
    scopes: [catalog:write]
  {READ_KEY}:
    site: shop
    scopes: [catalog:read]
""", 1)
# The catalog needs no rules; an empty rule file keeps these tests about the catalog.
NO_RULES = "rules: []\n"


def item(product_id: str, price: float, **fields: Any) -> dict[str, Any]:
    return {"id": product_id, "price": price, "currency": "EUR", **fields}


def product(product_id: str, price: float, **fields: Any) -> Product:
    return validate_product(item(product_id, price, **fields))


def with_store(redis_url: str, scenario: Callable[[CatalogStore], Awaitable[Any]],
               config: Settings | None = None, clock: Any = None) -> Any:
    async def run() -> Any:
        client = aioredis.from_url(redis_url)
        try:
            return await scenario(CatalogStore(client, config or Settings(), clock or FakeClock()))
        finally:
            await client.aclose()
    return asyncio.run(run())


def stream_events(redis_client) -> list[streams.Record]:
    """The event stream's records, as every reader decodes them."""
    return [streams.decode(fields) for _, fields in redis_client.xrange(STREAM)]


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw, field, reason", [
    ({"price": 1, "currency": "EUR"}, "id", "required"),
    (item("x" * 201, 1), "id", "longer than 200"),
    (item("a", -1), "price", "≥ 0"),
    (item("a", "cheap"), "price", "≥ 0"),
    (item("a", True), "price", "≥ 0"),
    ({"id": "a", "currency": "EUR"}, "price", "required"),
    (item("a", 10, sale_price=12), "sale_price", "more than price"),
    (item("a", 10, currency="eur"), "currency", "ISO 4217"),
    ({"id": "a", "price": 1}, "currency", "required"),
    (item("a", 1, category=["Shoes", 3]), "category[1]", "string"),
    (item("a", 1, category="Shoes > > Running"), "category", "empty level"),
    (item("a", 1, category={"x": 1}), "category", "list of strings"),
    (item("a", 1, stock=-1), "stock", "whole number"),
    (item("a", 1, stock=2.5), "stock", "whole number"),
    (item("a", 1, url="javascript:alert(1)"), "url", "http(s) URL"),
    (item("a", 1, image="//evil.example/x.png"), "image", "http(s) URL"),
    (item("a", 1, attributes={"size": {"eu": 42}}), "attributes.size", "string, number"),
    (item("a", 1, attributes={f"k{i}": i for i in range(51)}), "attributes", "more than 50"),
    (item("a", 1, attributes={"n": 10**20}), "attributes.n", "64-bit range"),
    (item("a", 1, colour="red"), "colour", "unknown field"),
    ("not an object", "product", "object"),
])
def test_validation_names_the_field(raw, field, reason):
    with pytest.raises(InputError) as caught:
        validate_product(raw)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_validation_prefixes_the_path():
    with pytest.raises(InputError) as caught:
        validate_product(item("a", -3), "products[3]")
    assert caught.value.field == "products[3].price"


def test_a_valid_product_is_normalized():
    p = validate_product({"id": 42, "name": " Boot ", "price": "129.90", "sale_price": 99,
                          "currency": "EUR", "category": "Shoes > Boots ", "stock": "3",
                          "url": "https://shop.example/boot", "image": "/img/boot.png",
                          "brand": "Acme", "attributes": {"waterproof": True, "size": 42}})
    assert p.id == "42" and p.name == "Boot"
    assert p.price == 129.9 and p.effective_price == 99
    assert p.category == ["Shoes", "Boots"] and p.category_path == "Shoes > Boots"
    assert p.stock == 3 and p.available
    assert validate_product(item("b", 5, stock=None)).available  # unknown stock counts as available
    assert not validate_product(item("b", 5, stock=0)).available


def test_csv_rows_map_to_products():
    check_csv_columns(["id", "name", "price", "currency", "category", "attr.color"])
    raw = csv_row_to_raw({"id": "a", "name": "Alpha", "price": "9.5", "currency": "EUR",
                          "category": "Shoes > Running", "stock": "", "attr.color": "red"})
    p = validate_product(raw)
    assert p.price == 9.5 and p.stock is None and p.attributes == {"color": "red"}
    assert p.category == ["Shoes", "Running"]
    for columns, reason in ((["id", "price", "currency", "colour"], "unknown column 'colour'"),
                            (["id", "currency"], "missing column 'price'"),
                            (["id", "price", "currency", "attr."], "name the attribute")):
        with pytest.raises(InputError) as caught:
            check_csv_columns(columns)
        assert reason in caught.value.reason


# -- the store ----------------------------------------------------------------------------


def test_put_get_delete_and_the_category_index(redis_url, redis_client):
    async def scenario(store: CatalogStore):
        await store.put([product("a", 10, category="Shoes > Running", stock=3),
                         product("b", 20, name="Bee")])
        a, b, missing = await store.get(["a", "b", "nope"])
        assert a == product("a", 10, category="Shoes > Running", stock=3)
        assert b.name == "Bee" and missing is None
        assert redis_client.zscore("kairos:catalog:cat:Shoes > Running", "a") == 10
        # moving to another category moves the index entry
        await store.put([product("a", 12, category=["Shoes", "Trail"])])
        assert redis_client.zscore("kairos:catalog:cat:Shoes > Running", "a") is None
        assert redis_client.zscore("kairos:catalog:cat:Shoes > Trail", "a") == 12
        assert await store.delete("a") is True
        assert await store.delete("a") is False
        assert await store.get(["a"]) == [None]
        assert redis_client.zscore("kairos:catalog:cat:Shoes > Trail", "a") is None

    with_store(redis_url, scenario)


def test_a_price_drop_is_announced_once(redis_url, redis_client):
    clock = FakeClock()

    async def scenario(store: CatalogStore):
        first = await store.put([product("a", 100, name="Boot", category="Shoes")])
        assert first.price_drops == []                      # new product: nothing to compare
        assert (await store.put([product("a", 100)])).price_drops == []   # unchanged
        assert (await store.put([product("a", 120)])).price_drops == []   # a rise
        clock.advance(5000)
        drop = await store.put([product("a", 120, sale_price=90, name="Boot", category="Shoes")])
        assert drop.price_drops == ["a"]
        assert (await store.put([product("a", 120, sale_price=90)])).price_drops == []
        # another currency is not comparable
        assert (await store.put([product("a", 80, currency="USD")])).price_drops == []

    with_store(redis_url, scenario, clock=clock)
    (_, fields), = redis_client.xrange(STREAM)
    assert fields[b"p"] == b""  # no person
    # laid out as a normalized track event, for readers of events
    event = orjson.loads(fields[b"e"])
    assert event["type"] == "track" and event["event"] == PRICE_DROPPED
    (change,) = stream_events(redis_client)
    assert isinstance(change, streams.CatalogChange) and change.change == PRICE_DROPPED
    assert change.timestamp == clock.now_ms() and change.message_id
    assert change.product_id == "a" and change.currency == "EUR"
    assert change.old_price == 120 and change.new_price == 90
    assert change.price == 120 and change.sale_price == 90
    assert change.name == "Boot" and change.category == "Shoes"


def test_back_in_stock_is_announced_once(redis_url, redis_client):
    async def scenario(store: CatalogStore):
        assert (await store.put([product("a", 10, stock=0)])).back_in_stock == []
        assert (await store.put([product("a", 10, stock=0)])).back_in_stock == []
        assert (await store.put([product("a", 10, stock=4)])).back_in_stock == ["a"]
        assert (await store.put([product("a", 10, stock=9)])).back_in_stock == []
        assert (await store.put([product("a", 10, stock=None)])).back_in_stock == []
        assert (await store.put([product("a", 10, stock=2)])).back_in_stock == []  # unknown before

    with_store(redis_url, scenario)
    (change,) = stream_events(redis_client)
    assert change.change == BACK_IN_STOCK
    assert change.old_stock == 0 and change.new_stock == 4 and change.product_id == "a"


def test_concurrent_updates_announce_a_drop_once(redis_url, redis_client):
    async def scenario(store: CatalogStore):
        await store.put([product("a", 100, stock=0)])
        results = await asyncio.gather(*(store.put([product("a", 80, stock=5)]) for _ in range(20)))
        assert sum(len(r.price_drops) for r in results) == 1
        assert sum(len(r.back_in_stock) for r in results) == 1

    with_store(redis_url, scenario)
    assert Counter(e.change for e in stream_events(redis_client)) == {
        PRICE_DROPPED: 1, BACK_IN_STOCK: 1}


def test_cross_sell_ranks_co_purchases(redis_url):
    async def scenario(store: CatalogStore):
        await store.put([product(p, 10, stock=5) for p in "abcdef"] + [product("g", 10, stock=0)])
        await store.record_purchase(["a", "b", "c"])
        await store.record_purchase(["a", "c"])
        await store.record_purchase(["a", "c", "d", "g"])
        await store.record_purchase(["b", "e", "g", "g"])
        await store.record_purchase(["a", "unknown"])
        assert await store.cross_sell_scores(["a"]) == [
            ("c", 3.0), ("b", 1.0), ("d", 1.0), ("g", 1.0), ("unknown", 1.0)]
        # cart items are excluded; scores sum over the cart
        assert await store.cross_sell_scores(["a", "b"]) == [
            ("c", 4.0), ("g", 2.0), ("d", 1.0), ("e", 1.0), ("unknown", 1.0)]
        # out of stock (g) and products not in the catalog are left out
        assert [p.id for p in await store.cross_sell(["a", "b"], limit=3)] == ["c", "d", "e"]
        assert await store.cross_sell([], limit=3) == []

    with_store(redis_url, scenario)


def test_upsell_is_the_next_tier_in_the_same_category(redis_url):
    async def scenario(store: CatalogStore):
        await store.put([
            product("base", 100, category="Shoes > Running", stock=3),
            product("same-tier", 105, category="Shoes > Running"),           # only 5% more
            product("tier", 110, category="Shoes > Running", stock=1),       # exactly 10% more
            product("sold-out", 120, category="Shoes > Running", stock=0),
            product("on-sale", 200, sale_price=130, category="Shoes > Running"),
            product("dear", 300, category="Shoes > Running", stock=None),
            product("other-cat", 150, category="Shoes > Trail"),
            product("cheaper", 50, category="Shoes > Running"),
        ])
        assert [p.id for p in await store.upsell("base", limit=10)] == ["tier", "on-sale", "dear"]
        assert [p.id for p in await store.upsell("base", limit=2)] == ["tier", "on-sale"]
        assert await store.upsell("dear") == []
        assert await store.upsell("unknown") == []

    with_store(redis_url, scenario)
    config = Settings(catalog=CatalogSettings(upsell_step=1.0))

    async def doubling(store: CatalogStore):
        assert [p.id for p in await store.upsell("base", limit=10)] == ["dear"]

    with_store(redis_url, doubling, config=config)


order_products = st.lists(st.sampled_from("abcdefg"), min_size=0, max_size=7)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(st.one_of(
           st.tuples(st.just("order"), order_products),
           st.tuples(st.just("stock"), st.sampled_from("abcdefg"), st.one_of(st.none(), st.integers(0, 2)))),
           max_size=20),
       cart=st.lists(st.sampled_from("abcdefg"), max_size=4),
       limit=st.integers(1, 6))
def test_cross_sell_equals_a_brute_force_count(redis_url, redis_client, steps, cart, limit):
    """Whatever orders and product updates came before, the scores are the co-purchase counts."""
    redis_client.flushall()
    max_order = 4
    config = Settings(catalog=CatalogSettings(max_order_products=max_order))
    pairs: dict[str, Counter] = defaultdict(Counter)
    stock: dict[str, int | None] = {}
    for step in steps:
        if step[0] == "order":
            distinct = list(dict.fromkeys(step[1]))[:max_order]
            for a in distinct:
                for b in distinct:
                    if a != b:
                        pairs[a][b] += 1
        else:
            stock[step[1]] = step[2]
    in_cart = set(cart)
    totals: Counter = Counter()
    for c in dict.fromkeys(cart):
        totals.update({x: n for x, n in pairs[c].items() if x not in in_cart})
    expected = sorted(((x, float(n)) for x, n in totals.items()), key=lambda t: (-t[1], t[0]))
    expected_products = [x for x, _ in expected if x in stock and stock[x] != 0][:limit]

    async def scenario(store: CatalogStore):
        for step in steps:
            if step[0] == "order":
                await store.record_purchase(step[1])
            else:
                await store.put([product(step[1], 10, stock=step[2])])
        return (await store.cross_sell_scores(cart),
                [p.id for p in await store.cross_sell(cart, limit)])

    scores, products = with_store(redis_url, scenario, config=config)
    assert scores == expected
    assert products == expected_products


# -- HTTP ---------------------------------------------------------------------------------


@pytest.fixture
def catalog_edge(redis_url: str, tmp_path: Path):
    config = write_config(tmp_path / "config", NO_RULES, CATALOG_SETTINGS_YAML)
    with LiveEdge(config, redis_url) as live:
        yield live


def put(edge: LiveEdge, body: Any, key: str = WRITE_KEY):
    return edge.http.put("/v1/catalog/products", json=body, headers=basic(key))


def test_http_put_get_delete(catalog_edge, redis_client):
    r = put(catalog_edge, {"products": [item("a", 10, stock=0, category="Shoes"),
                                        item("b", -1), item("c", 5, currency="eur"),
                                        item("d", 7, name="Dee")]})
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 2, "price_drops": [], "back_in_stock": [], "rejected": [
        {"index": 1, "field": "products[1].price", "reason": "must be a number ≥ 0"},
        {"index": 2, "field": "products[2].currency",
         "reason": "expected an ISO 4217 code: three upper-case letters, e.g. EUR"}]}
    r = catalog_edge.http.get("/v1/catalog/products/d", headers=basic(READ_KEY))
    assert r.status_code == 200
    assert r.json()["name"] == "Dee" and r.json()["effective_price"] == 7

    r = put(catalog_edge, [item("a", 10, sale_price=8, stock=3, category="Shoes")])
    assert r.json()["price_drops"] == ["a"] and r.json()["back_in_stock"] == ["a"]
    assert len(stream_events(redis_client)) == 2
    body = catalog_edge.http.get("/v1/catalog/products/a", headers=basic(WRITE_KEY)).json()
    assert body["effective_price"] == 8 and body["stock"] == 3

    assert catalog_edge.http.delete("/v1/catalog/products/a", headers=basic(READ_KEY)).status_code == 403
    r = catalog_edge.http.delete("/v1/catalog/products/a", headers=basic(WRITE_KEY))
    assert r.status_code == 200 and r.json() == {"deleted": True, "id": "a"}
    for method in ("get", "delete"):
        r = getattr(catalog_edge.http, method)("/v1/catalog/products/a", headers=basic(WRITE_KEY))
        assert r.status_code == 404 and r.json()["field"] == "id"


def test_http_ids_with_slashes_and_spaces(catalog_edge):
    assert put(catalog_edge, [item("AB/12 x", 3)]).json()["accepted"] == 1
    r = catalog_edge.http.get("/v1/catalog/products/AB%2F12%20x", headers=basic(READ_KEY))
    assert r.status_code == 200 and r.json()["id"] == "AB/12 x"


@pytest.mark.parametrize("key, status", [
    (None, 401), ("unknown-key", 401), (PUBLIC_KEY, 403), (SECRET_KEY, 403), (READ_KEY, 403)])
def test_http_put_needs_catalog_write(catalog_edge, key, status):
    headers = basic(key) if key else {}
    r = catalog_edge.http.put("/v1/catalog/products", json=[item("a", 1)], headers=headers)
    assert r.status_code == status
    assert r.json()["success"] is False


@pytest.mark.parametrize("key, status", [(PUBLIC_KEY, 403), (SECRET_KEY, 403), (None, 401)])
def test_http_read_needs_a_catalog_scope(catalog_edge, key, status):
    put(catalog_edge, [item("a", 1)])
    headers = basic(key) if key else {}
    assert catalog_edge.http.get("/v1/catalog/products/a", headers=headers).status_code == status


@pytest.mark.parametrize("content, field, status", [
    (b"{nope", "body", 400),
    (b"", "body", 400),
    (b'{"items": []}', "body", 400),
    (b'{"products": 5}', "products", 400),
    (b'"a string"', "body", 400),
    (orjson.dumps([item(str(i), 1) for i in range(1001)]), "body", 400),
    (b"[" + b" " * 300_000 + b"]", "body", 413),
])
def test_http_bad_bodies_name_the_field(catalog_edge, content, field, status):
    r = catalog_edge.http.put("/v1/catalog/products", content=content,
                              headers={**basic(WRITE_KEY), "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["field"] == field


def test_openapi_documents_the_catalog(catalog_edge):
    doc = catalog_edge.http.get("/openapi.json").json()
    assert "Product" in doc["components"]["schemas"]
    assert doc["paths"]["/v1/catalog/products"]["put"]["requestBody"]
    item_path = doc["paths"]["/v1/catalog/products/{product_id}"]
    assert {"get", "delete"} <= set(item_path)
    assert item_path["get"]["parameters"][0]["name"] == "product_id"


# -- the import command -------------------------------------------------------------------

CSV_FEED = '''id,name,price,sale_price,currency,category,stock,brand,attr.color
a1,Alpha,10,,EUR,Shoes > Running,5,Acme,red
a2,Beta,abc,,EUR,Shoes,1,,
a3,Gamma,20,25,EUR,,,,
a4,"Delta, the ""best""",30,,eur,,,,
a5,Epsilon,40,,EUR,Bags,0,,blue
'''


def test_import_a_csv_feed_reports_rejected_rows(redis_url, redis_client, example_config,
                                                 tmp_path, capsys):
    feed = tmp_path / "feed.csv"
    feed.write_text(CSV_FEED)
    code = main(["import", "catalog", str(feed), "--config", str(example_config),
                 "--redis", redis_url])
    out = capsys.readouterr()
    assert code == 0, out
    assert "imported 2 product(s)" in out.out
    assert "rejected 3 row(s):" in out.out
    assert "line 3: price: must be a number ≥ 0" in out.out
    assert "line 4: sale_price: must not be more than price" in out.out
    assert "line 5: currency:" in out.out
    assert "100%" in out.err  # the progress on stderr
    stored = orjson.loads(redis_client.hget("kairos:catalog:p:a1", "j"))
    assert stored["attributes"] == {"color": "red"} and stored["category"] == ["Shoes", "Running"]
    # --strict turns rejected rows into a failing exit status
    assert main(["import", "catalog", str(feed), "--config", str(example_config),
                 "--redis", redis_url, "--strict"]) == 1


def test_import_the_example_json_feed_and_a_changed_one(redis_url, redis_client, example_config,
                                                        tmp_path, capsys):
    example = example_config / "catalog.example.json"
    assert main(["import", "catalog", str(example), "--config", str(example_config),
                 "--redis", redis_url]) == 0
    assert "imported 8 product(s)" in capsys.readouterr().out
    demo_ids = {"trail-runner", "city-sneaker", "leather-boot", "rain-jacket", "wool-sweater",
                "canvas-tote", "day-pack", "sun-cap"}
    assert {k.decode().rpartition(":")[2] for k in redis_client.keys("kairos:catalog:p:*")} == demo_ids

    products = orjson.loads(example.read_text())["products"]
    products[0]["sale_price"] = 79                     # trail-runner on sale
    products[3]["stock"] = 4                           # rain-jacket back
    products.append({"id": "broken", "price": 5})     # no currency
    products.append("not a product")
    changed = tmp_path / "changed.json.gz"
    changed.write_bytes(gzip.compress(orjson.dumps(products)))
    assert main(["import", "catalog", str(changed), "--config", str(example_config),
                 "--redis", redis_url, "--batch-size", "3"]) == 0
    out = capsys.readouterr().out
    assert "imported 8 product(s)" in out
    assert "(1 price drop(s), 1 back in stock announced)" in out
    assert "row 9: currency: required" in out and "row 10: product: expected an object" in out
    assert Counter(e.change for e in stream_events(redis_client)) == {
        PRICE_DROPPED: 1, BACK_IN_STOCK: 1}


def test_import_refuses_unreadable_files(redis_url, example_config, tmp_path, capsys):
    args = ["--config", str(example_config), "--redis", redis_url]
    assert main(["import", "catalog", str(tmp_path / "missing.json"), *args]) == 1
    assert "missing.json" in capsys.readouterr().err
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("[{")
    assert main(["import", "catalog", str(bad_json), *args]) == 1
    assert "not valid JSON" in capsys.readouterr().err
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("id,price,currency,colour\na,1,EUR,red\n")
    assert main(["import", "catalog", str(bad_header), *args]) == 1
    assert "unknown column 'colour'" in capsys.readouterr().err
    other = tmp_path / "feed.xml"
    other.write_text("<products/>")
    assert main(["import", "catalog", str(other), *args]) == 1


def test_import_uses_the_embedded_redis_serve_runs(example_config, tmp_path, capsys):
    """Without --redis, the import finds the server `kairos serve` started on the data dir."""
    data = tmp_path / "var"
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"id": "x", "price": 3, "currency": "EUR"}\n\n{"id": "y", "price": 4}\n{oops\n')
    with EmbeddedRedis(data / "redis", persistent=False) as server:
        code = main(["import", "catalog", str(feed), "--config", str(example_config),
                     "--data-dir", str(data)])
        out = capsys.readouterr().out
        assert code == 0
        assert "imported 1 product(s)" in out
        assert "line 3: currency: required" in out and "line 4: line: not valid JSON" in out

        async def read() -> list:
            client = aioredis.from_url(server.url)
            try:
                return await CatalogStore(client, Settings()).get(["x"])
            finally:
                await client.aclose()

        assert asyncio.run(read())[0].price == 3
    assert not (data / "redis" / "redis.port").exists()
