"""/v1/explain runs ingest's own stages in read mode, so it foretells what ingest answers.

Over random histories of one person (identify, page views, products viewed with
categories, cart changes, orders, time passing), before each event explain is
asked what it would do, then the event is ingested: the decision ingest answers
(slots, messages, push, segments) and the profile it leaves (aggregates of every
kind, cart, recent lists, counters, traits) are what explain said.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.store.embedded import EmbeddedRedis
from tests.support import LiveEdge

HOUR = 3_600_000

events = st.one_of(
    st.builds(lambda path: {"type": "page", "properties": {"path": path}},
              st.sampled_from(["/", "/shoes", "/cart"])),
    st.builds(lambda product, category: {"type": "track", "event": "Product Viewed",
                                         "properties": {"product_id": product,
                                                        "category": category}},
              st.sampled_from(["p1", "p2", "p3"]), st.sampled_from(["shoes", "hats"])),
    st.builds(lambda product, price, quantity: {
        "type": "track", "event": "Product Added",
        "properties": {"product_id": product, "price": price, "quantity": quantity}},
        st.sampled_from(["p1", "p2"]), st.integers(1, 80), st.integers(1, 3)),
    st.builds(lambda product: {"type": "track", "event": "Product Removed",
                               "properties": {"product_id": product}},
              st.sampled_from(["p1", "p2"])),
    st.builds(lambda revenue: {"type": "track", "event": "Order Completed",
                               "properties": {"revenue": revenue}},
              st.floats(0, 500, allow_nan=False).map(lambda x: round(x, 2))),
    st.builds(lambda name: {"type": "identify", "traits": {"first_name": name}},
              st.sampled_from(["Ada", "Bo", None])),
)
histories = st.lists(st.tuples(events, st.integers(0, 30 * HOUR)), min_size=1, max_size=8)

PATHS = {"page": "/v1/page", "track": "/v1/track", "identify": "/v1/identify"}
people = itertools.count()


@pytest.fixture
def live(module_edge: LiveEdge) -> LiveEdge:
    return module_edge


def _profile(live: LiveEdge, identifier: str) -> dict[str, Any]:
    body = live.profile(identifier).json()
    keep = ("aggregates", "cart", "recent_products", "recent_categories", "traits", "visits",
            "events", "last_seen", "consent")
    return {key: body[key] for key in keep}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories)
def test_explain_foretells_what_ingest_answers(live: LiveEdge, history: list[tuple[dict, int]]):
    user = f"person-{next(people)}"
    assert live.post("/v1/identify", {"userId": user, "messageId": f"{user}-0"}).status_code == 200
    for step, (event, wait) in enumerate(history, start=1):
        live.clock.advance(wait)
        event = {**event, "userId": user, "messageId": f"{user}-{step}"}
        foretold = live.post("/v1/explain", {"profile": f"user:{user}", "event": event})
        assert foretold.status_code == 200, foretold.text
        foretold = foretold.json()

        answered = live.post(PATHS[event["type"]], event)
        assert answered.status_code == 200, answered.text
        answer = answered.json()
        decision = foretold["decision"]
        for part in ("slots", "messages", "push", "segments"):
            assert decision[part] == answer[part], (part, step, event)

        after = _profile(live, f"user:{user}")
        assert foretold["aggregates"] == after["aggregates"], (step, event)


def test_a_try_leaves_no_scratch_keys(live: LiveEdge, redis_server: EmbeddedRedis):
    """The scratch copies of a try are gone after it, and the profile is as it was."""
    client = redis.Redis.from_url(redis_server.url)
    live.post("/v1/identify", {"userId": "scratch", "traits": {"first_name": "Ada"}})
    live.track("Product Added", userId="scratch",
               properties={"product_id": "p1", "price": 10})
    before = {key: client.type(key) for key in client.scan_iter("{p:*")}
    body = live.post("/v1/explain", {"profile": "user:scratch", "event": {
        "type": "track", "event": "Product Added", "properties": {"product_id": "p2", "price": 5}}})
    assert body.status_code == 200
    assert body.json()["decision"] is not None
    assert {key: client.type(key) for key in client.scan_iter("{p:*")} == before
    assert not [key for key in client.scan_iter("*:try*")]
    client.close()


def test_explain_is_404_for_nobody(live: LiveEdge):
    answer = live.post("/v1/explain", {"profile": "user:nobody-at-all", "event": {"type": "page"}})
    assert answer.status_code == 404 and answer.json()["field"] == "profile"


# The store's own part: a try's whole snapshot is the one applying the event returns.

from tests.test_store_scripts import WINDOWS, Harness, specs_for, updates_for  # noqa: E402

from edge.ingest.ecommerce import CartChange  # noqa: E402
from edge.ingest.normalize import Incoming  # noqa: E402
from edge.pipeline.handler import event_write  # noqa: E402
from edge.store.profiles import AggregateLayout, decode_snapshot  # noqa: E402

MINUTE, DAY = 60_000, 86_400_000

carts = st.one_of(
    st.none(),
    st.builds(lambda p, q: CartChange("add", p, b'{"product_id": "%s", "price": 12.5}' % p.encode(), q),
              st.sampled_from(["a", "b"]), st.integers(1, 3)),
    st.builds(lambda p, q: CartChange("remove", p, b"", q), st.sampled_from(["a", "b"]),
              st.integers(1, 3)),
    st.just(CartChange("clear")))
store_steps = st.lists(st.tuples(
    st.one_of(st.integers(-2 * MINUTE, 3 * HOUR), st.integers(0, 20 * DAY)),  # clock moves
    st.integers(0, 40 * DAY),  # age of the event
    st.one_of(st.sampled_from(["shoes", "bags"]), st.integers(-5, 50)),  # aggregate value
    st.dictionaries(st.sampled_from(["plan", "city"]), st.sampled_from(["gold", "Brno", 3]),
                    max_size=2),  # traits set
    st.sampled_from(["", "p1", "p2"]),  # product viewed
    carts,
), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(windows=st.lists(st.sampled_from(WINDOWS), min_size=1, max_size=2, unique=True),
       steps=store_steps)
def test_a_try_returns_the_snapshot_applying_returns(redis_url, windows, steps):
    import asyncio

    specs = specs_for(windows)
    layout = AggregateLayout.of(specs)

    async def run() -> None:
        h = Harness(redis_url, layout)
        try:
            for n, (advance, age, value, traits, product, cart) in enumerate(steps):
                h.now += advance
                h.expire()
                incoming = Incoming(event={"type": "track"}, message_id=f"m{n}", ts_ms=h.now - age,
                                    primary="anon:t", traits_set=traits, product=product, cart=cart)
                updates = updates_for(specs, value)
                tried = await h.store.try_event("anon:t", event_write(incoming, h.now), layout,
                                                updates)
                status, applied = await h.store.apply_event(
                    "anon:t", event_write(incoming, h.now), layout, updates)
                h.note_expiry("anon:t")
                if n == 0:
                    assert tried is None  # nobody to try it on yet
                else:
                    assert decode_snapshot(tried, layout) == decode_snapshot(applied, layout), n
                assert not h.client.keys("*:try*")
        finally:
            h.close()

    redis.Redis.from_url(redis_url).flushall()
    asyncio.run(run())
