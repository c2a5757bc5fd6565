"""The product catalog in Redis: products, category indexes, co-purchase counts.

Keys (prefix `kairos:catalog` by default):

| key | type | holds |
|---|---|---|
| `<prefix>:p:<id>` | hash | `j` product JSON, `ep` effective price, `st` stock ("" = unknown), `cur` currency, `cat` category path |
| `<prefix>:cat:<A > B > C>` | zset | ids of the products in that (leaf) category, scored by effective price |
| `<prefix>:xs:<id>` | zset | ids of products bought together with `<id>`, scored by how many orders had both |

The catalog is global, not per person, so its keys carry no hash tag. On Redis
Cluster they spread over slots: every multi-key operation here is a pipeline of
single-key commands, except the put and delete scripts, which touch one
product, its category indexes and the stream (the same limitation as the event
script's stream; a cluster deployment puts the catalog under one hash tag by
passing a prefix such as `{kairos:catalog}`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import msgspec
import redis.asyncio as aioredis

from edge.catalog.products import Product
from edge.runtime.clock import SystemClock
from edge.runtime.config import Settings
from edge.store import streams
from edge.store.scripts import (CATALOG_DELETE, CATALOG_PUT, CatalogDeleteArgs, CatalogPutArgs,
                                argv, run_scripts)
from edge.store.streams import BACK_IN_STOCK, PRICE_DROPPED

# A concurrent writer can move a product to another category between our read of
# its category and the script; each retry follows it. Past this many, give up.
MAX_ATTEMPTS = 5
# Carts longer than this add nothing to a cross-sell answer but round-trip cost.
MAX_CART_PRODUCTS = 50

_decode_product = msgspec.json.Decoder(Product).decode
_encode_product = msgspec.json.Encoder().encode


class CatalogError(Exception):
    pass


@dataclass
class PutResult:
    written: int = 0
    price_drops: list[str] = field(default_factory=list)    # ids announced as product_price_dropped
    back_in_stock: list[str] = field(default_factory=list)  # ids announced as product_back_in_stock


class CatalogStore:
    def __init__(self, client: aioredis.Redis, settings: Settings, clock: Any = None,
                 prefix: str = "kairos:catalog") -> None:
        self.client = client
        self.clock = clock or SystemClock()
        self.prefix = prefix
        self.stream_key = settings.stream.key
        self.stream_max = settings.stream.max_length
        self.upsell_step = settings.catalog.upsell_step
        self.max_order_products = settings.catalog.max_order_products
        self.max_cross_sell = settings.catalog.max_cross_sell_per_product

    # -- keys -------------------------------------------------------------------------------

    def product_key(self, product_id: str) -> str:
        return f"{self.prefix}:p:{product_id}"

    def category_key(self, path: str) -> str:
        return f"{self.prefix}:cat:{path}"

    def cross_sell_key(self, product_id: str) -> str:
        return f"{self.prefix}:xs:{product_id}"

    # -- products ---------------------------------------------------------------------------

    async def put(self, products: Iterable[Product]) -> PutResult:
        """Upsert products; announce price drops and returns to stock on the stream.

        Within one call a product repeated keeps its last version (as if the
        versions had been written in order; the in-between changes are not
        announced). Costs two round trips, whatever the number of products.
        """
        latest = {product.id: product for product in products}
        now = self.clock.now_ms()
        stored = await self._stored_paths(list(latest))
        pending = [(product, path) for product, path in zip(latest.values(), stored)]
        result = PutResult()
        for _ in range(MAX_ATTEMPTS):
            calls = [(CATALOG_PUT, *self._put_call(product, path, now)) for product, path in pending]
            retry = []
            for (product, _), reply in zip(pending, await run_scripts(self.client, calls)):
                if reply[0] == b"recat":
                    retry.append((product, reply[1].decode()))
                    continue
                result.written += 1
                if reply[1]:
                    result.price_drops.append(product.id)
                if reply[2]:
                    result.back_in_stock.append(product.id)
            if not retry:
                return result
            pending = retry
        raise CatalogError(f"{len(pending)} product(s) kept changing category; not written")

    async def get(self, product_ids: Sequence[str]) -> list[Product | None]:
        """The products, None where unknown, in the order asked; one round trip."""
        if not product_ids:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for product_id in product_ids:
                pipe.hget(self.product_key(product_id), "j")
            replies = await pipe.execute()
        return [None if raw is None else _decode_product(raw) for raw in replies]

    async def delete(self, product_id: str) -> bool:
        """Remove a product, its category entry and its own co-purchase counts.

        Other products' counts still name it; every reader skips ids that are no
        longer in the catalog, and a product put back finds its history again.
        """
        (path,) = await self._stored_paths([product_id])
        for _ in range(MAX_ATTEMPTS):
            keys = [self.product_key(product_id), self._index_or(path, product_id),
                    self.cross_sell_key(product_id)]
            (reply,) = await run_scripts(self.client,
                [(CATALOG_DELETE, keys, argv(CatalogDeleteArgs(product_id, path)))])
            if reply[0] != b"recat":
                return reply[0] == b"ok"
            path = reply[1].decode()
        raise CatalogError(f"product {product_id!r} kept changing category; not deleted")

    # -- recommendations --------------------------------------------------------------------

    async def record_purchase(self, product_ids: Sequence[str]) -> int:
        """Count one order: every ordered pair of its distinct products, bought together.

        One round trip. The increments are single-key commands in a pipeline,
        not a transaction, so they work on Redis Cluster; a connection lost
        midway may count part of one order, which a recommendation survives.
        Returns the number of pair increments made.
        """
        distinct = list(dict.fromkeys(product_ids))[: self.max_order_products]
        if len(distinct) < 2:
            return 0
        async with self.client.pipeline(transaction=False) as pipe:
            for bought in distinct:
                key = self.cross_sell_key(bought)
                for other in distinct:
                    if other != bought:
                        pipe.zincrby(key, 1, other)
                # Bounded memory: the lowest counts go first.
                pipe.zremrangebyrank(key, 0, -self.max_cross_sell - 1)
            await pipe.execute()
        return len(distinct) * (len(distinct) - 1)

    async def cross_sell_scores(self, cart_ids: Sequence[str],
                                per_product: int | None = None) -> list[tuple[str, float]]:
        """Products bought with the cart's, best first: (id, orders shared summed over the cart).

        Cart products are left out; `per_product` reads only each cart
        product's top partners (None: all of them). One round trip.
        """
        cart = list(dict.fromkeys(cart_ids))[:MAX_CART_PRODUCTS]
        if not cart:
            return []
        stop = -1 if per_product is None else per_product - 1
        async with self.client.pipeline(transaction=False) as pipe:
            for product_id in cart:
                pipe.zrevrange(self.cross_sell_key(product_id), 0, stop, withscores=True)
            replies = await pipe.execute()
        in_cart = set(cart)
        scores: dict[str, float] = {}
        for partners in replies:
            for member, score in partners:
                other = member.decode()
                if other not in in_cart:
                    scores[other] = scores.get(other, 0.0) + score
        return sorted(scores.items(), key=lambda item: (-item[1], item[0]))

    async def cross_sell(self, cart_ids: Sequence[str], limit: int = 4) -> list[Product]:
        """Products most often bought with the cart's, in stock (or stock unknown), best first.

        Usually two round trips: the counts, then the best candidates.
        """
        ranked = await self.cross_sell_scores(cart_ids, per_product=max(100, 10 * limit))
        return await self._first_available([product_id for product_id, _ in ranked], limit)

    async def upsell(self, product_id: str, limit: int = 4) -> list[Product]:
        """Products of the same category costing at least `upsell_step` more, in stock,
        cheapest first: the next tier up, not the most expensive thing in the shop."""
        (base,) = await self.get([product_id])
        if base is None or not base.category or limit <= 0:
            return []
        price = base.effective_price
        # Rounded so that 100 × 1.1 admits a product at exactly 110.
        floor = round(price * (1 + self.upsell_step), 6)
        key = self.category_key(base.category_path)
        found: list[Product] = []
        page = max(16, 2 * limit)
        for offset in range(0, 10 * page, page):
            ids = [m.decode() for m in await self.client.zrangebyscore(
                key, floor, "+inf", start=offset, num=page)]
            for product in await self.get(ids):
                if (product is not None and product.id != base.id and product.available
                        and product.effective_price > price):
                    found.append(product)
                    if len(found) == limit:
                        return found
            if len(ids) < page:
                break
        return found

    # -- internals --------------------------------------------------------------------------

    async def _first_available(self, ranked_ids: list[str], limit: int) -> list[Product]:
        found: list[Product] = []
        chunk = max(16, 2 * limit)
        for start in range(0, len(ranked_ids), chunk):
            for product in await self.get(ranked_ids[start:start + chunk]):
                if product is not None and product.available:
                    found.append(product)
                    if len(found) == limit:
                        return found
        return found

    async def _stored_paths(self, product_ids: list[str]) -> list[str]:
        """Each product's stored category path ("" when none or not stored); one round trip."""
        if not product_ids:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for product_id in product_ids:
                pipe.hget(self.product_key(product_id), "cat")
            replies = await pipe.execute()
        return [(raw or b"").decode() for raw in replies]

    def _index_or(self, path: str, product_id: str) -> str:
        # Scripts take every key in KEYS; "no category" is the product's own key, never touched.
        return self.category_key(path) if path else self.product_key(product_id)

    def _put_call(self, product: Product, stored_path: str,
                  now_ms: int) -> tuple[list[str], tuple[Any, ...]]:
        keys = [self.product_key(product.id), self._index_or(product.category_path, product.id),
                self._index_or(stored_path, product.id), self.stream_key]
        stock = "" if product.stock is None else str(product.stock)
        args = CatalogPutArgs(
            product_id=product.id, product_json=_encode_product(product),
            price=repr(product.effective_price), stock=stock, currency=product.currency,
            path=product.category_path, read_path=stored_path,
            price_drop_event=_change(PRICE_DROPPED, product, now_ms, new_price=product.effective_price,
                                     price=product.price, sale_price=product.sale_price),
            back_in_stock_event=_change(BACK_IN_STOCK, product, now_ms,
                                        price=product.effective_price, new_stock=product.stock),
            stream_max=self.stream_max)
        return keys, argv(args)



def _change(change: str, product: Product, now_ms: int, **values: Any) -> str:
    """The announcement's event JSON, but for the old value, which only the put script
    knows and adds. (The category travels as its path: Lua's JSON cannot tell an empty
    list from {}.)"""
    return streams.event_json(streams.CatalogChange(
        change=change, message_id=streams.new_message_id(), timestamp=now_ms,
        product_id=product.id, name=product.name, url=product.url, image=product.image,
        currency=product.currency, category=product.category_path, brand=product.brand,
        **values))
