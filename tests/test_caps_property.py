"""Frequency caps hold over any sequence of events and clock moves, over HTTP and real Redis.

Every message and push the answers carry is recorded with the fake time it was given;
afterwards every cap window is counted by brute force, and the delivery history stored
in Redis (GET /v1/profiles/{id} → "deliveries") must be exactly what the answers showed.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.support import SECRET_KEY, LiveEdge, basic, write_config

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000

CAP_RULES = """
policy:
  max_messages: 2
  caps:
    in_app: [{ max: 3, per: 1d }]
    push: [{ max: 2, per: 6h }]
    global: [{ max: 4, per: 1d }, { max: 2, per: 1h }]
rules:
  - id: weekly
    on: page
    priority: 10
    cap: { max: 1, per: 7d }
    actions: [{ message: { type: banner, title: weekly } }]
  - id: daily
    on: [page, Ping]
    priority: 5
    cap: [{ max: 2, per: 1d }, { max: 1, per: 2h }]
    actions: [{ message: { type: toast, title: daily } }]
  - id: free
    on: page
    priority: 1
    actions: [{ message: { type: toast, title: free } }]
  - id: hint
    on: page
    actions: [{ slot: hint, html: hint }]
  - id: ping
    on: Ping
    priority: 5
    cap: { max: 1, per: 2h }
    actions: [{ push: { title: ping } }]
  - id: both
    on: Ping
    priority: 3
    actions:
      - message: { type: toast, title: both }
      - push: { title: both }
  - id: either
    on: Ping
    priority: 1
    actions:
      - notify: { channels: [push, in_app], title: either }
"""
# cap key -> (max, window) pairs, as CAP_RULES says
CAPS: dict[str, list[tuple[int, int]]] = {
    "rule:weekly": [(1, 7 * DAY)],
    "rule:daily": [(2, DAY), (1, 2 * HOUR)],
    "rule:ping": [(1, 2 * HOUR)],
    "channel:in_app": [(3, DAY)],
    "channel:push": [(2, 6 * HOUR)],
    "global": [(4, DAY), (2, HOUR)],
}
HORIZON = 7 * DAY  # the longest window: older delivery times are dropped from Redis

ADVANCES = st.sampled_from([0, 1, MINUTE, 30 * MINUTE, HOUR - 1, HOUR, 2 * HOUR, 6 * HOUR,
                            23 * HOUR, DAY, 3 * DAY, 7 * DAY]) | st.integers(0, 8 * DAY)
EVENTS = (st.tuples(st.just("page"), st.just(0)), st.tuples(st.just("ping"), st.just(0)),
          st.tuples(st.just("advance"), ADVANCES))
STEPS = st.lists(st.one_of(*EVENTS), max_size=30)
# ... and events that write delivery state without delivering: engagement and consent
OTHER_WRITES = (st.tuples(st.just("click"), st.just(0)), st.tuples(st.just("consent"), st.just(0)))
STEPS_WITH_OTHER_WRITES = st.lists(st.one_of(*EVENTS, *OTHER_WRITES), max_size=30)
REQUESTS = {
    "page": ("/v1/page", {}),
    "ping": ("/v1/track", {"event": "Ping"}),
    "click": ("/v1/track", {"event": "Message Clicked"}),
    "consent": ("/v1/track", {"event": "Consent Updated", "properties": {"email": True}}),
}
PEOPLE = itertools.count()
OTHER_KINDS = ("click", "consent")


@pytest.fixture
def capped_edge(redis_url, tmp_path):
    """One edge for every example of a test; each example takes a fresh person."""
    with LiveEdge(write_config(tmp_path / "config", rules_yaml=CAP_RULES), redis_url) as live:
        yield live


def deliveries_in(answer: dict[str, Any]) -> list[str]:
    """The cap keys one answer's deliveries count towards, a key once per delivery."""
    keys = [f"rule:{rule}" for rule in dict.fromkeys(
        item["rule"] for item in answer["messages"] + answer["push"])
        if f"rule:{rule}" in CAPS]
    keys += ["channel:in_app", "global"] * len(answer["messages"])
    keys += ["channel:push", "global"] * len(answer["push"])
    return keys


def windows_over_cap(times: list[int], most: int, per: int) -> list[int]:
    """Ends of windows (now - per, now] holding more than `most` deliveries."""
    return [end for end in times if sum(1 for t in times if end - per < t <= end) > most]


PROPERTY = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


@PROPERTY
@given(steps=STEPS)
def test_no_cap_window_ever_holds_more_than_its_cap(capped_edge, steps):
    check_caps(capped_edge, steps)


@PROPERTY
@given(steps=STEPS_WITH_OTHER_WRITES)
def test_caps_hold_when_engagement_and_consent_events_mix_in(capped_edge, steps):
    """Fails while a write without deliveries erases the cap history (see
    test_decisions_http.test_bug_a_write_without_deliveries_keeps_the_cap_history)."""
    check_caps(capped_edge, steps)


def check_caps(edge: LiveEdge, steps: list[tuple[str, int]]) -> None:
    who = f"person-{next(PEOPLE)}"
    response = edge.post("/v1/identify", {"anonymousId": who, "traits": {
        "push_token": "token", "consent": {"push": True}}})
    assert response.status_code == 200, response.text
    last_write = edge.clock.now_ms()  # consent is delivery state too
    recorded: dict[str, list[int]] = defaultdict(list)
    for kind, amount in steps:
        if kind == "advance":
            edge.clock.advance(amount)
            continue
        path, body = REQUESTS[kind]
        response = edge.post(path, {"anonymousId": who, **body})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert len(answer["messages"]) <= 2  # policy.max_messages
        now = edge.clock.now_ms()
        if kind in OTHER_KINDS:
            last_write = now
        for key in deliveries_in(answer):
            recorded[key].append(now)
            last_write = now

    for key, caps in CAPS.items():
        for most, per in caps:
            assert windows_over_cap(recorded[key], most, per) == [], (key, most, per, recorded)

    stored = edge.profile(f"anon:{who}").json()["deliveries"]
    expected = {key: kept for key, times in recorded.items()
                if (kept := [t for t in times if t > last_write - HORIZON])}
    assert stored == expected


NUDGE_RULES = """
policy:
  caps:
    in_app: [{ max: 3, per: 1d }]
rules:
  - id: nudge
    on: Browse
    actions: [{ message: { type: toast, title: Nudge } }]
"""


def test_concurrent_events_of_one_person_share_the_cap(redis_url, tmp_path):
    """Events answered at the same moment cannot both take the last place under a cap."""
    events = 12
    with LiveEdge(write_config(tmp_path / "config", rules_yaml=NUDGE_RULES), redis_url) as edge:
        answers, stored = concurrent_browsing(edge, events)
    assert sum(len(answer["messages"]) for answer in answers) == 3
    assert len(stored) == 3


def concurrent_browsing(edge: LiveEdge, events: int) -> tuple[list[dict], list[int]]:
    assert edge.post("/v1/identify", {"anonymousId": "busy"}).status_code == 200

    def browse(number: int) -> dict[str, Any]:
        with httpx.Client(base_url=edge.url, timeout=10) as client:
            response = client.post("/v1/track", headers=basic(SECRET_KEY), json={
                "anonymousId": "busy", "event": "Browse", "messageId": f"browse-{number}"})
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(max_workers=events) as pool:
        answers = list(pool.map(browse, range(events)))
    return answers, edge.profile("anon:busy").json()["deliveries"]["channel:in_app"]
