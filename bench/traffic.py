"""Realistic event traffic for the HTTP benchmarks, generated deterministically.

Website sessions (page views, product views, cart adds and removals, checkouts,
about 2% purchases, identify on login) and mobile app screens, spread over a
population of visitors. Every event carries a unique messageId.
"""

from __future__ import annotations

import random

import orjson

CATEGORIES = ["shoes", "bags", "hats", "coats", "socks", "watches", "belts", "scarves"]
PATHS = ["/", "/sale", "/new", "/about", "/cart", "/checkout"] + [f"/category/{c}" for c in CATEGORIES]

# (weight, kind)
MIX = [
    (55, "page"), (22, "Product Viewed"), (8, "Product Added"), (2, "Product Removed"),
    (3, "Checkout Started"), (2, "Order Completed"), (2, "identify"), (6, "screen"),
]


def make_requests(n: int, population: int = 10_000, seed: int = 7) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    kinds = [k for w, k in MIX for _ in range(w)]
    out: list[tuple[str, str]] = []
    for i in range(n):
        visitor = rng.randrange(population)
        kind = rng.choice(kinds)
        number = rng.randrange(500)
        product = f"sku-{number}"
        # Each product keeps one category, in every run and every process (str hashes
        # are salted per process, so hash() would not do).
        category = CATEGORIES[number % len(CATEGORIES)]
        base = {"anonymousId": f"anon-{visitor}", "messageId": f"bench-{seed}-{i}",
                "context": {"page": {"path": rng.choice(PATHS), "url": "https://shop.example/"},
                            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120",
                            "timezone": "Europe/Prague"}}
        if kind == "page":
            path, body = "/v1/page", {**base, "name": "Page", "properties": {"path": rng.choice(PATHS)}}
        elif kind == "screen":
            path, body = "/v1/screen", {**base, "name": "Home",
                                        "context": {"app": {"name": "shop"}, "device": {"type": "ios"}}}
        elif kind == "identify":
            path, body = "/v1/identify", {**base, "userId": f"user-{visitor}",
                                          "traits": {"first_name": f"N{visitor}", "plan": rng.choice(["free", "pro"])}}
        else:
            props = {"product_id": product, "category": category, "price": round(rng.uniform(5, 200), 2),
                     "quantity": 1}
            if kind == "Order Completed":
                props = {"revenue": round(rng.uniform(20, 400), 2), "order_id": f"o{i}"}
            path, body = "/v1/track", {**base, "event": kind, "properties": props}
        out.append((path, orjson.dumps(body).decode()))
    return out
