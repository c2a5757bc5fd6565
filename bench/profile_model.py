"""Simulated people, and the Redis state the edge would have made from their events.

A person is a history of website or app sessions (page views, product views,
cart changes, checkouts, about 2% of sessions ending in a purchase, a login
that identifies a known customer). `ProfileState.replay` applies that history
the way edge/store/event.lua and link.lua do (visits, recently viewed, cart,
message ids kept for dedupe, aggregate buckets, their expiry), so a preloaded
profile is what the edge itself would hold, not a stand-in. The aggregate
updates come from the compiled ruleset, so `where` filters and `of` values
mean exactly what they mean at the edge.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from edge.runtime.config import ProfileLimits
from edge.pipeline.delivery import decode_state
from edge.pipeline.handler import encode_update
from edge.store.profiles import AggregateLayout, cart_from_fields
from rules.aggregates import brute_force

MINUTE_MS = 60_000
DAY_MS = 86_400_000
CATEGORIES = ["shoes", "bags", "hats", "coats", "socks", "watches", "belts", "scarves"]
PRODUCTS = 500
FIRST_NAMES = ["Jana", "Petr", "Anna", "Tom", "Eva", "Lukas", "Mia", "Noah"]
LAST_NAMES = ["Novak", "Svoboda", "Dvorak", "Muller", "Smith", "Kral"]
PLANS = ["free", "plus", "pro"]
QUERIES = ["boots", "red bag", "winter coat", "wool socks", "gift"]


def product(k: int) -> dict[str, Any]:
    """Product k's properties; the same product always has the same category and price."""
    return {"product_id": f"sku-{k}", "category": CATEGORIES[k % len(CATEGORIES)],
            "price": float(5 + (k * 37) % 195), "on_sale": k % 5 == 0}


def _event(kind: str, ts: int, rng: random.Random, **fields: Any) -> dict[str, Any]:
    """An event as the rules see it after normalization (only what rules may read)."""
    message_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    event = {"type": kind, "messageId": message_id, "timestamp": ts, "properties": {},
             "traits": {}, "context": {}, **fields}
    if kind == "track":
        event["context"] = {"page": {"path": "/"}}
    return event


def simulate(rng: random.Random, now_ms: int, known: bool, max_age_ms: int) -> list[dict[str, Any]]:
    """One person's events, oldest first, all before now_ms and after now_ms - max_age_ms.

    Most people come a few times and look around; known customers come more
    often and log in once; a quarter use the app instead of the website.
    """
    # At least a few minutes ago, so the last session has begun before now.
    last_age = 10 * MINUTE_MS + min(int(rng.expovariate(1 / (10 * DAY_MS))), max_age_ms // 2)
    sessions = 1 + int(rng.expovariate(1 / (5.0 if known else 1.5)))
    first_age = min(last_age + int(rng.expovariate(1 / (6 * DAY_MS))) * sessions, max_age_ms - DAY_MS)
    starts = sorted(rng.randint(now_ms - first_age, now_ms - last_age) for _ in range(sessions - 1))
    starts.append(now_ms - last_age)
    app_user = rng.random() < 0.25
    login_session = rng.randrange(sessions) if known else -1
    events: list[dict[str, Any]] = []
    for index, start in enumerate(starts):
        ts = max(start, events[-1]["timestamp"] + 1) if events else start
        session = _app_session if app_user else _web_session
        events += session(rng, ts, login=index == login_session)
    return [e for e in events if e["timestamp"] < now_ms]


def _web_session(rng: random.Random, ts: int, login: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    viewed: list[dict[str, Any]] = []

    def add(kind: str, **fields: Any) -> None:
        nonlocal ts
        out.append(_event(kind, ts, rng, **fields))
        ts += rng.randint(10_000, 90_000)

    for _ in range(1 + int(rng.expovariate(1 / 3))):
        add("page", name="Page", properties={"path": rng.choice(["/", "/sale", "/new"])})
        if rng.random() < 0.6:
            item = product(rng.randrange(PRODUCTS))
            viewed.append(item)
            add("track", event="Product Viewed", properties=item)
    if rng.random() < 0.1:
        add("track", event="Products Searched", properties={"query": rng.choice(QUERIES)})
    if login:
        add("identify", traits={"first_name": rng.choice(FIRST_NAMES),
                                "last_name": rng.choice(LAST_NAMES), "plan": rng.choice(PLANS)})
    if viewed and rng.random() < 0.15:
        item = rng.choice(viewed)
        add("track", event="Product Added", properties={**item, "quantity": 1})
        if rng.random() < 0.1:
            add("track", event="Product Removed", properties={**item, "quantity": 1})
        elif rng.random() < 0.4:
            add("track", event="Checkout Started", properties={"value": item["price"]})
            # ~2% of all sessions end in a purchase: 15% add, 40% of those check out, ~35% buy.
            if rng.random() < 0.35:
                add("track", event="Order Completed",
                    properties={"order_id": f"o-{rng.getrandbits(40)}",
                                "revenue": round(item["price"] * rng.uniform(1, 3), 2),
                                "products": [{"product_id": item["product_id"]}]})
    return out


def _app_session(rng: random.Random, ts: int, login: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _ in range(1 + int(rng.expovariate(1 / 4))):
        out.append(_event("screen", ts, rng, name=rng.choice(["Home", "Category", "Product"])))
        ts += rng.randint(5_000, 60_000)
        if rng.random() < 0.4:
            out.append(_event("track", ts, rng, event="Product Viewed",
                              properties=product(rng.randrange(PRODUCTS))))
            ts += rng.randint(5_000, 60_000)
    if login:
        out.append(_event("identify", ts, rng, traits={"first_name": rng.choice(FIRST_NAMES),
                                                       "plan": rng.choice(PLANS)}))
    return out


@dataclass
class ProfileState:
    """What the edge keeps for one person, built by replaying its events."""

    first_seen: int = 0
    last_seen: int = 0
    visits: int = 0
    events: int = 0
    known: bool = False  # identified (uid): its keys no longer expire
    refreshed: int | None = None  # "xp": when the anonymous expiry was last pushed forward
    cart_updated: int | None = None
    traits: dict[str, str] = field(default_factory=dict)  # name -> json
    seen: dict[str, int] = field(default_factory=dict)  # message id -> time
    recent_products: list[str] = field(default_factory=list)  # newest first
    recent_categories: list[str] = field(default_factory=list)
    cart: dict[str, bytes] = field(default_factory=dict)  # as the cart hash: id -> item, q:id -> n
    buckets: dict[str, dict[str, Any]] = field(default_factory=dict)  # aggregate -> hash fields
    expires: dict[str, int] = field(default_factory=dict)  # aggregate -> expiry time
    history: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)  # aggregate -> fed values

    @classmethod
    def replay(cls, events: list[dict[str, Any]], ruleset: Any, layout: AggregateLayout,
               limits: ProfileLimits) -> "ProfileState":
        state = cls()
        for event in events:
            state._apply(event, ruleset, layout, limits)
        return state

    def _apply(self, event: dict[str, Any], ruleset: Any, layout: AggregateLayout,
               limits: ProfileLimits) -> None:
        ts = event["timestamp"]
        if not self.events:
            self.first_seen = self.last_seen = ts
            self.visits = 1
        else:
            if ts - self.last_seen > limits.session_gap_minutes * MINUTE_MS:
                self.visits += 1
            self.last_seen = max(self.last_seen, ts)
        self.events += 1

        dedupe_ms = limits.dedupe_window_hours * 3_600_000
        self.seen[event["messageId"]] = ts
        self.seen = {m: t for m, t in self.seen.items() if t > ts - dedupe_ms}
        while len(self.seen) > limits.dedupe_max_ids:
            del self.seen[min(self.seen, key=self.seen.__getitem__)]

        if event["type"] == "identify":
            self.known = True
            for name, value in event["traits"].items():
                if name in self.traits or len(self.traits) < limits.max_traits:
                    self.traits[name] = orjson.dumps(value).decode()
        if event.get("event") == "Product Viewed":
            props = event["properties"]
            _push_recent(self.recent_products, props["product_id"], limits.recent_products)
            _push_recent(self.recent_categories, props["category"], limits.recent_categories)
        self._cart(event, limits)
        self._aggregates(event, ts, ruleset, layout, limits)
        if not self.known and (self.refreshed is None
                               or ts - self.refreshed > limits.anonymous_ttl_days * DAY_MS / 100):
            self.refreshed = ts

    def _cart(self, event: dict[str, Any], limits: ProfileLimits) -> None:
        name, props = event.get("event"), event["properties"]
        if name == "Product Added":
            pid = props["product_id"]
            if pid in self.cart or len(self.cart) < 2 * limits.max_cart_items:
                item = {k: props[k] for k in ("price", "category") if k in props}
                self.cart[pid] = orjson.dumps({**item, "product_id": pid})
                self.cart["q:" + pid] = b"%d" % (int(self.cart.get("q:" + pid, b"0")) + 1)
        elif name == "Product Removed":
            pid = props["product_id"]
            left = int(self.cart["q:" + pid]) - 1 if pid in self.cart else 0
            if left > 0:
                self.cart["q:" + pid] = b"%d" % left
            else:
                self.cart.pop(pid, None)
                self.cart.pop("q:" + pid, None)
        elif name == "Order Completed":
            self.cart.clear()
        else:
            return
        self.cart_updated = event["timestamp"]

    def _aggregates(self, event: dict[str, Any], ts: int, ruleset: Any, layout: AggregateLayout,
                    limits: ProfileLimits) -> None:
        for agg, expiry in list(self.expires.items()):
            if expiry <= ts:  # the key expired in Redis before this event came
                del self.expires[agg]
                self.buckets.pop(agg, None)
        n_of = dict(zip(layout.ids, layout.n_buckets))
        for spec, value in ruleset.aggregate_updates(event):
            self.history.setdefault(spec.id, []).append((ts, value))
            fields = self.buckets.setdefault(spec.id, {})
            b = ts // spec.bucket_ms
            update = encode_update(spec.kind, value)
            # As in the script: a key's expiry moves only when a bucket or value is new.
            extend = True
            if spec.kind == "count":
                extend = str(b) not in fields
                fields[str(b)] = fields.get(str(b), 0) + 1
            elif spec.kind == "sum":
                extend = str(b) not in fields
                fields[str(b)] = fields.get(str(b), 0.0) + float(update)
            elif spec.kind == "distinct":
                old = fields.get(update)
                if (old is None and len(fields) >= limits.max_distinct_values) or (
                        old is not None and old >= b):
                    continue
                fields[update] = b
            elif spec.kind == "last":
                if "t" in fields and fields["t"] > ts:
                    continue
                fields.update(t=ts, v=update)
            if extend:
                self.expires[spec.id] = ts + (n_of[spec.id] + 1) * spec.bucket_ms
        # Every event's snapshot drops the buckets that left their window.
        for agg, kind, bucket, n in zip(layout.ids, layout.kinds, layout.bucket_ms, layout.n_buckets):
            fields = self.buckets.get(agg)
            if not fields or kind == "last":
                continue
            cutoff = ts // bucket - n
            if kind == "distinct":
                self.buckets[agg] = {k: v for k, v in fields.items() if v > cutoff}
            else:
                self.buckets[agg] = {k: v for k, v in fields.items() if int(k) > cutoff}

    def expected_aggregates(self, layout: AggregateLayout, specs: dict[str, Any],
                            now_ms: int) -> dict[str, Any]:
        """Each aggregate's value at now_ms by its reference definition (rules.aggregates)."""
        return {agg: brute_force(specs[agg], self.history.get(agg, []), now_ms) for agg in layout.ids}

    def snapshot(self, layout: AggregateLayout, specs: dict[str, Any], now_ms: int,
                 profile_id: str) -> dict[str, Any]:
        """The profile as the rules would read it (shaped like decode_snapshot's answer)."""
        flat = [x for k, v in self.cart.items() for x in (k.encode(), v)]
        return {
            "id": profile_id, "traits": {k: orjson.loads(v) for k, v in self.traits.items()},
            "tags": [], "segments": [],
            "aggregates": self.expected_aggregates(layout, specs, now_ms),
            "cart": cart_from_fields(flat, self.cart_updated),
            "recent_products": list(self.recent_products),
            "recent_categories": list(self.recent_categories),
            "first_seen": self.first_seen, "last_seen": self.last_seen, "visits": self.visits,
            "events": self.events, "verified": self.known, "user_id": None,
            "unverified_claim": None, **decode_state({}),
        }


def _push_recent(values: list[str], value: str, cap: int) -> None:
    if value in values:
        values.remove(value)
    values.insert(0, value)
    del values[cap:]
