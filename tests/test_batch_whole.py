"""A batch is checked whole before anything of it is written: one bad event anywhere in it
answers 400 naming that event, and nothing of the batch lands, so an SDK that drops the
bad event and sends the rest again counts every good one exactly once."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import LiveEdge

# (a bad event, the field the answer names below batch[i], with its anonymousId filled in)
BAD_EVENTS: list[tuple[dict[str, Any], str]] = [
    ({"type": "explode"}, "type"),
    ({"type": "track", "event": "E", "properties": {"n": 10**20}}, "properties.n"),
    ({"type": "track", "event": "E", "properties": {"s": "y" * 501}}, "properties.s"),
    ({"type": "track", "event": "E", "userId": True}, "userId"),
    ({"type": "track"}, "event"),
    ({"type": "alias", "userId": "u"}, "previousId"),
    ({"type": "track", "event": "E", "timestamp": "yesterday"}, "timestamp"),
    ({"type": "track", "event": "Order Completed", "properties": {"revenue": "12abc"}},
     "properties.revenue"),
    ({"type": "identify", "traits": {"a": {"b": {"c": {"d": {"e": {}}}}}}}, "traits.a.b.c.d.e"),
]
runs = itertools.count()


@pytest.fixture
def live(module_edge: LiveEdge) -> LiveEdge:
    return module_edge


def footprint(client: redis.Redis) -> tuple[int, int, int]:
    return client.dbsize(), client.xlen("kairos:events"), client.xlen("kairos:outbox")


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(good=st.integers(1, 12), position=st.integers(0, 12), bad=st.sampled_from(BAD_EVENTS))
def test_one_bad_event_anywhere_writes_nothing(live: LiveEdge, good: int, position: int,
                                               bad: tuple[dict[str, Any], str]) -> None:
    run = next(runs)
    events = [{"type": "track", "event": "Product Viewed", "anonymousId": f"b{run}-{i % 3}",
               "messageId": f"m{run}-{i}", "properties": {"category": "shoes"}}
              for i in range(good)]
    position = min(position, good)
    bad_event, field = bad
    events.insert(position, {"anonymousId": f"b{run}-bad", **bad_event})
    client = redis.Redis.from_url(live.redis_url)
    try:
        before = footprint(client)
        newest = client.xrevrange("kairos:events", count=1)
        before_id = newest[0][0].decode() if newest else None
        answer = live.post("/v1/batch", {"batch": events})
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == f"batch[{position}].{field}"
        assert footprint(client) == before
        # The SDK drops the bad event and sends the rest again: each counts once.
        del events[position]
        again = live.post("/v1/batch", {"batch": events})
        assert again.status_code == 200, again.text
        assert again.json() == {"success": True, "accepted": good, "duplicates": 0}
        # each event once on the stream (beside the edge's records of segments entered)
        added = client.xrange("kairos:events", f"({before_id}" if before_id else "-", "+")
        assert sum(b"k" not in fields for _, fields in added) == good
    finally:
        client.close()
