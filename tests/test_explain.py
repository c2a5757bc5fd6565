"""POST /v1/explain: every rule, condition and removal for a hypothetical event; nothing written.

Also the pure parts (rules.explain): source text of sub-conditions, and the reference
evaluator agreeing with the compiled decide() on which rules match.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import redis

from rules import load_ruleset
from rules.expression import parse_checked
from rules.definitions import Expression
from rules.explain import explain_condition, explain_rules, unparse
from rules.reference import Environment
from tests.support import PUBLIC_KEY, READ_ONLY_KEY, RULES_YAML, LiveEdge, basic, write_config

EXPLAIN_RULES = """
aggregates:
  views_7d: { count: Product Viewed, window: 7d }
  spend_30d: { sum: Order Completed, of: properties.revenue, window: 30d }
segments:
  - id: viewer
    when: aggregates.views_7d >= 2
  - id: gold
    when: traits.plan == "gold"
experiments:
  - id: hold
    control: 100
rules:
  - id: banner
    on: page
    priority: 9
    when: 'traits.plan == "gold" and (aggregates.views_7d >= 3 or "viewer" in segments)'
    actions:
      - slot: banner
        html: "<b>Gold banner</b>"
  - id: welcome
    on: page
    priority: 1
    actions:
      - slot: hero
        html: "<p>Welcome {{ traits.plan }}</p>"
  - id: capped
    on: page
    cap: { max: 1, per: 1d }
    actions:
      - slot: capped
        html: "once a day"
  - id: promo
    on: page
    purpose: marketing
    actions:
      - slot: promo
        html: "sale"
  - id: morning
    on: page
    schedule: { hours: "09:00-10:00" }
    actions:
      - slot: morning
        html: "good morning"
  - id: held
    on: page
    experiment: hold
    actions:
      - slot: held
        html: "held out"
  - id: viewed-now
    on: Product Viewed
    when: aggregates.views_7d >= 1
    actions:
      - slot: viewed
        html: "{{ aggregates.views_7d }} viewed"
  - id: thanks
    on: Order Completed
    actions:
      - slot: thanks
        html: "thanks"
"""


@pytest.fixture
def live(redis_url: str, tmp_path: Path) -> Iterator[LiveEdge]:
    with LiveEdge(write_config(tmp_path / "config", rules_yaml=EXPLAIN_RULES), redis_url) as edge:
        yield edge


def explain(live: LiveEdge, profile: str, event: dict[str, Any], key: str = "sk-test") -> Any:
    return live.post("/v1/explain", {"profile": profile, "event": event}, key)


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in rows}


def everything(client: redis.Redis) -> dict[bytes, bytes | None]:
    """Every key with its serialized value: any write shows up as a difference."""
    return {key: client.dump(key) for key in sorted(client.scan_iter(count=1000))}


def test_explains_every_rule_and_removal_without_writing(live: LiveEdge, redis_client):
    assert live.post("/v1/identify", {"userId": "ann", "traits": {"plan": "gold"}}).status_code == 200
    first = live.post("/v1/page", {"userId": "ann"}).json()
    assert "capped" in first["slots"]  # used the cap: at most once a day
    before = everything(redis_client)

    r = explain(live, "user:ann", {"type": "page", "properties": {"path": "/"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert everything(redis_client) == before
    assert body["profile"] == "user:ann"
    assert body["event"]["type"] == "page" and body["event"]["userId"] == "ann"

    rules = by_id(body["rules"])
    # arbitration order: priority, then id
    assert [row["id"] for row in body["rules"]] == [
        "banner", "welcome", "capped", "held", "morning", "promo"]
    assert body["not_triggered"] == ["thanks", "viewed-now"]

    assert rules["welcome"]["matched"] and rules["welcome"]["outcome"] == "fired"
    assert body["decision"]["slots"]["hero"] == {"rule": "welcome", "html": "<p>Welcome gold</p>"}

    banner = rules["banner"]
    assert banner["matched"] is False and banner["removed_by"] == "condition"
    condition = banner["condition"]
    assert condition["value"] is False
    plan, views = condition["children"]
    assert plan == {"text": 'traits.plan == "gold"', "value": True,
                    "children": [{"text": "traits.plan", "value": "gold", "children": []}]}
    assert views["text"] == '(aggregates.views_7d >= 3 or "viewer" in segments)'
    assert views["value"] is False
    assert [c["text"] for c in views["children"]] == [
        "aggregates.views_7d >= 3", '"viewer" in segments']
    assert views["children"][0]["children"][0] == {
        "text": "aggregates.views_7d", "value": 0, "children": []}

    assert rules["capped"]["removed_by"] == "cap"
    assert rules["capped"]["outcome"] == "cap rule:capped: 1 per 1d reached"
    assert {"key": "rule:capped", "max": 1, "per_ms": 86_400_000, "used": 1} in body["caps"]
    assert rules["promo"]["removed_by"] == "consent"
    assert rules["promo"]["outcome"] == "no consent for marketing"
    assert body["consent"]["marketing"] is False and body["consent"]["web"] is True
    # the fake clock says 01:00 in Prague
    assert rules["morning"]["removed_by"] == "schedule"
    assert rules["morning"]["outcome"].startswith("schedule:")
    assert rules["held"]["removed_by"] == "holdout"
    assert body["experiments"] == {"hold": "control"}
    for slot in ("banner", "capped", "promo", "morning", "held"):
        assert slot not in body["decision"]["slots"]

    segments = by_id(body["segments"])
    assert segments["gold"]["member"] and segments["gold"]["was_member"]
    assert segments["viewer"]["member"] is False
    assert segments["viewer"]["condition"]["children"][0]["value"] == 0
    assert body["decision"]["segments"] == ["gold"]
    assert "distinct" in body["aggregates_note"]


def test_the_hypothetical_event_counts_in_aggregates_and_segments(live: LiveEdge, redis_client):
    live.post("/v1/identify", {"userId": "bob", "traits": {"plan": "gold"}})
    live.track("Product Viewed", userId="bob")
    before = everything(redis_client)
    body = explain(live, "bob", {"type": "track", "event": "Product Viewed"}).json()
    assert everything(redis_client) == before
    assert body["aggregates"]["views_7d"] == 2  # one stored, one hypothetical
    assert body["decision"]["slots"]["viewed"]["html"] == "2 viewed"
    assert by_id(body["segments"])["viewer"]["member"] is True
    assert by_id(body["rules"])["viewed-now"]["outcome"] == "fired"
    assert [row["id"] for row in body["rules"]] == ["viewed-now"]
    # the stored profile still has one view and is not a viewer
    stored = live.profile("user:bob").json()
    assert stored["aggregates"]["views_7d"] == 1 and stored["segments"] == ["gold"]


def test_traits_and_consent_given_with_the_event_count(live: LiveEdge):
    live.post("/v1/identify", {"userId": "cat"})
    body = explain(live, "user:cat", {
        "type": "identify", "traits": {"plan": "gold", "consent": {"marketing": True}}}).json()
    assert body["consent"]["marketing"] is True
    assert by_id(body["segments"])["gold"]["member"] is True
    assert body["rules"] == []  # no rule reacts to identify
    assert body["decision"]["segments"] == ["gold"]


def test_keys_unknown_profiles_and_bad_events_are_refused(live: LiveEdge, redis_client):
    live.post("/v1/identify", {"userId": "dan"})
    page = {"type": "page"}
    before = everything(redis_client)
    assert explain(live, "user:dan", page, key=READ_ONLY_KEY).status_code == 200

    public = explain(live, "user:dan", page, key=PUBLIC_KEY)
    assert public.status_code == 403
    missing = live.http.post("/v1/explain", json={"profile": "user:dan", "event": page})
    assert missing.status_code == 401

    unknown = explain(live, "user:nobody", page)
    assert unknown.status_code == 404 and unknown.json()["field"] == "profile"

    for event, field in (({"type": "track"}, "event.event"),
                         ({"type": "bogus"}, "event.type"),
                         ({}, "event.type"),
                         ({"type": "page", "properties": [1]}, "event.properties")):
        r = explain(live, "user:dan", event)
        assert r.status_code == 400 and r.json()["field"] == field, (event, r.text)
    r = live.post("/v1/explain", {"event": page})
    assert r.status_code == 400 and r.json()["field"] == "profile"
    r = live.post("/v1/explain", {"profile": "user:dan"})
    assert r.status_code == 400 and r.json()["field"] == "event"
    r = live.post("/v1/explain", {"profile": 7, "event": page})
    assert r.status_code == 400 and r.json()["field"] == "profile"
    assert everything(redis_client) == before


def test_explain_is_documented(live: LiveEdge):
    doc = live.http.get("/openapi.json").json()
    operation = doc["paths"]["/v1/explain"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["profile", "event"]
    assert "404" in operation["responses"]


# -- the pure part ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, parts", [
    ("(traits.x or traits.b) and not traits.c", ["(traits.x or traits.b)", "not traits.c"]),
    ('event.properties["k"] in [1, -2] or len(traits.tags) > 0',
     ['event.properties["k"] in [1, -2]', "len(traits.tags) > 0"]),
    ("-1 < traits.n and exists(traits.n)", ["-1 < traits.n", "exists(traits.n)"]),
    ("((traits.a)) == 'x' and 2 * (traits.n + 1) >= 7d",
     ["((traits.a)) == 'x'", "2 * (traits.n + 1) >= 7d"]),
])
def test_sub_conditions_keep_their_source_text(text: str, parts: list[str]) -> None:
    expression = Expression(text, parse_checked(text), None, "test")  # type: ignore[arg-type]
    explained = explain_condition(expression, Environment(profile={"traits": {"n": 3}}))
    assert explained["text"] == text
    assert [child["text"] for child in explained["children"]] == parts


def test_unparse_is_readable() -> None:
    node = parse_checked('not (traits.a == "x" or -traits.n > 1) and event.properties["a b"] in [1]')
    assert unparse(node) == ('(not ((traits.a == "x") or ((-traits.n) > 1))) and '
                             '(event.properties["a b"] in [1])')


PROFILES = [
    {"id": "p", "traits": {}, "aggregates": {}, "segments": [], "cart": {}},
    {"id": "p", "traits": {"first_name": "Ann", "plan": "gold"}, "segments": [],
     "aggregates": {"views_7d": 5, "shoe_views_1d": 2, "spend_30d": 150.0, "views_1h": 1}},
    {"id": "p", "traits": {"plan": "silver"}, "aggregates": {"views_7d": 2}, "segments": []},
]
EVENTS = [
    {"type": "page"}, {"type": "track", "event": "Product Viewed"},
    {"type": "track", "event": "Order Completed"}, {"type": "track", "event": "Other"},
    {"type": "identify"},
]


@pytest.mark.parametrize("rules_yaml", [RULES_YAML, EXPLAIN_RULES])
def test_reference_evaluator_agrees_with_compiled_decide(rules_yaml: str) -> None:
    ruleset = load_ruleset([("rules.yaml", rules_yaml)])
    for profile in PROFILES:
        for event in EVENTS:
            decision = ruleset.decide(event, profile, {}, 1_767_225_600_000)
            rows = explain_rules(ruleset, event, profile, {}, 1_767_225_600_000, {},
                                 decision.segments)
            candidates = {ruleset.plans[position].id for position, _ in decision.candidates}
            assert {row["id"] for row in rows if row["matched"]} == candidates, (profile, event)
            assert candidates <= {row["id"] for row in rows}
            scores = {ruleset.plans[p].id: score for p, score in decision.candidates}
            assert all(row["score"] == scores[row["id"]] for row in rows if row["matched"])
