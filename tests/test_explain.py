"""POST /v1/explain: every rule, condition and removal for a hypothetical event; nothing written.

Also the pure parts (rules.explain): source text of sub-conditions, and the reference
evaluator agreeing with the compiled decide() on which rules match.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rules import load_ruleset
from rules.definitions import Expression
from rules.explain import (_Source, aggregate_kinds, explain_condition, explain_rules,
                           explain_segments, unparse)
from rules.expr_ast import Literal, Node, shape, walk
from rules.expression import parse_checked
from rules.parser import parse_expression
from rules.reference import Environment
from tests.test_rules_properties import (contexts, events, expressions, load_random, now_values,
                                         profiles, rule_documents, show)
from tests.support import PUBLIC_KEY, READ_ONLY_KEY, RULES_YAML, LiveEdge, write_config

EXPLAIN_RULES = """
aggregates:
  views_7d: { count: Product Viewed, window: 7d }
  spend_30d: { sum: Order Completed, of: properties.revenue, window: 30d }
  tips_30d: { sum: Tip Given, of: properties.amount, window: 30d, max_value: 1000 }
segments:
  - id: tipper
    when: aggregates.tips_30d > 0
  - id: viewer
    when: aggregates.views_7d >= 2
  - id: gold
    when: traits.plan == "gold"
experiments:
  - id: hold
    control: 100
policy:
  caps: { web: { max: 100, per: 1d } }
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
  - id: cart-total
    on: [Product Added, Product Removed]
    when: cart.value >= 100
    actions:
      - slot: cart
        html: "{{ cart.value }} for {{ cart['items'] | length }} products"
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


def everything(client: redis.Redis) -> dict[bytes, Any]:
    """Every key with its type, content and time to live, for unchanged().
    (Not DUMP: a read may move a hash table's incremental rehash on, which reorders DUMP.)"""
    read = {b"string": client.get, b"hash": client.hgetall, b"set": client.smembers,
            b"list": lambda key: client.lrange(key, 0, -1),
            b"zset": lambda key: client.zrange(key, 0, -1, withscores=True),
            b"stream": lambda key: client.xrange(key)}
    found = {}
    for key in sorted(client.scan_iter(count=1000)):
        kind = client.type(key)
        found[key] = (kind, read[kind](key), client.pttl(key))
    return found


def unchanged(client: redis.Redis, before: dict[bytes, Any]) -> bool:
    """The same keys with the same contents, and no expiry set or extended."""
    after = everything(client)
    if after.keys() != before.keys():
        return False
    for key, (kind, content, ttl) in after.items():
        old_kind, old_content, old_ttl = before[key]
        if (kind, content) != (old_kind, old_content) or (ttl < 0) != (old_ttl < 0):
            return False
        if ttl > old_ttl:
            return False
    return True


def test_explains_every_rule_and_removal_without_writing(live: LiveEdge, redis_client):
    assert live.post("/v1/identify", {"userId": "ann", "traits": {"plan": "gold"}}).status_code == 200
    first = live.post("/v1/page", {"userId": "ann"}).json()
    assert "capped" in first["slots"]  # used the cap: at most once a day
    before = everything(redis_client)

    r = explain(live, "user:ann", {"type": "page", "properties": {"path": "/"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert unchanged(redis_client, before)
    assert body["profile"] == "user:ann"
    assert body["event"]["type"] == "page" and body["event"]["userId"] == "ann"

    rules = by_id(body["rules"])
    # arbitration order: priority, then id
    assert [row["id"] for row in body["rules"]] == [
        "banner", "welcome", "capped", "held", "morning", "promo"]
    assert body["not_triggered"] == ["cart-total", "thanks", "viewed-now"]

    assert rules["welcome"]["matched"] and rules["welcome"]["outcome"] == "fired"
    assert body["decision"]["slots"]["hero"] == {"rule": "welcome", "html": "<p>Welcome gold</p>"}

    banner = rules["banner"]
    assert banner["matched"] is False and banner["removed_by"] == "condition"
    condition = banner["condition"]
    assert condition["value"] is False
    plan, views = condition["children"]
    assert plan == {"text": 'traits.plan == "gold"', "value": True,
                    "children": [{"text": "traits.plan", "value": "gold", "children": []}]}
    assert views["text"] == 'aggregates.views_7d >= 3 or "viewer" in segments'
    assert views["value"] is False
    assert [c["text"] for c in views["children"]] == [
        "aggregates.views_7d >= 3", '"viewer" in segments']
    assert views["children"][0]["children"][0] == {
        "text": "aggregates.views_7d", "value": 0, "children": []}

    assert rules["capped"]["removed_by"] == "cap"
    assert rules["capped"]["outcome"] == "cap rule:capped: 1 per 1d reached"
    assert {"key": "rule:capped", "max": 1, "per_ms": 86_400_000, "used": 1} in body["caps"]
    # welcome and capped were shown on the web once each
    assert {"key": "channel:web", "max": 100, "per_ms": 86_400_000, "used": 2} in body["caps"]
    assert rules["promo"]["removed_by"] == "consent"
    assert rules["promo"]["outcome"] == "no consent for marketing"
    assert body["consent"]["marketing"] is False and body["consent"]["web"] is True
    # the fake clock says 01:00 in Prague
    assert body["person"]["local_time"] == "01:00" and body["person"]["timezone"] == "Europe/Prague"
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
    assert "as ingest would count it" in body["aggregates_note"]


def test_the_hypothetical_event_counts_in_aggregates_and_segments(live: LiveEdge, redis_client):
    live.post("/v1/identify", {"userId": "bob", "traits": {"plan": "gold"}})
    live.track("Product Viewed", userId="bob")
    before = everything(redis_client)
    body = explain(live, "bob", {"type": "track", "event": "Product Viewed"}).json()
    assert unchanged(redis_client, before)
    assert body["aggregates"]["views_7d"] == 2  # one stored, one hypothetical
    assert body["decision"]["slots"]["viewed"]["html"] == "2 viewed"
    assert by_id(body["segments"])["viewer"]["member"] is True
    assert by_id(body["rules"])["viewed-now"]["outcome"] == "fired"
    assert [row["id"] for row in body["rules"]] == ["viewed-now"]
    # the stored profile still has one view and is not a viewer
    stored = live.profile("user:bob").json()
    assert stored["aggregates"]["views_7d"] == 1 and stored["segments"] == ["gold"]


def test_explain_predicts_what_ingest_then_answers(live: LiveEdge):
    live.post("/v1/identify", {"userId": "eve", "traits": {"plan": "gold"}})
    events = [
        {"type": "track", "event": "Product Added",
         "properties": {"product_id": "a", "price": 30, "quantity": 2}},
        {"type": "track", "event": "Product Added",
         "properties": {"product_id": "b", "price": 45.5}},
        {"type": "track", "event": "Product Removed", "properties": {"product_id": "a"}},
        {"type": "track", "event": "Product Viewed", "properties": {"product_id": "a"}},
        {"type": "track", "event": "Product Viewed", "properties": {"product_id": "b"}},
        {"type": "page"},
        {"type": "page"},
        {"type": "track", "event": "Order Completed", "properties": {"revenue": 120}},
    ]
    shown = []
    for event in events:
        predicted = explain(live, "user:eve", event).json()["decision"]
        answer = live.post("/v1/" + event["type"], {**event, "userId": "eve"}).json()
        assert predicted == {k: answer[k] for k in ("slots", "messages", "push", "segments")}
        shown.append(sorted(predicted["slots"]))
        live.clock.advance(60_000)
    # banner: gold and a viewer after two views; capped: once a day
    assert shown == [[], ["cart"], [], ["viewed"], ["viewed"],
                     ["banner", "capped", "hero"], ["banner", "hero"], ["thanks"]]
    assert answer["slots"]["thanks"]["html"] == "thanks"


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
    assert unchanged(redis_client, before)
    live.post("/v1/page", {"userId": "dan"})
    assert not unchanged(redis_client, before)  # the check does see writes


def test_anonymous_profiles_keep_their_expiry(live: LiveEdge, redis_client):
    live.post("/v1/page", {"anonymousId": "v1"}, key=PUBLIC_KEY, Origin="http://shop.test")
    before = everything(redis_client)
    assert before[b"{p:anon:v1}"][2] > 0  # anonymous profiles expire
    body = explain(live, "anon:v1", {"type": "page", "context": {"timezone": "Asia/Tokyo"}}).json()
    assert unchanged(redis_client, before)
    assert body["profile"] == "anon:v1" and body["event"]["anonymousId"] == "v1"
    assert body["person"]["local_time"] == "09:00"
    rules = by_id(body["rules"])
    assert rules["morning"]["outcome"] == "fired"  # in Tokyo it is 09:00
    assert body["decision"]["slots"]["morning"]["html"] == "good morning"


def test_what_a_sum_skips_is_explained_with_its_reason(live: LiveEdge):
    live.post("/v1/identify", {"userId": "tia"})
    for amount, update in (
            ("12abc", {"skipped": "properties.amount: not a number (text)"}),
            (True, {"skipped": "properties.amount: not a number (true or false)"}),
            (5000, {"skipped": "properties.amount: beyond the aggregate's max_value of 1000"}),
            (None, {"skipped": "properties.amount: the event has no value there"}),
            (-1000, {"added": -1000.0}),
            (12, {"added": 12.0})):
        body = explain(live, "user:tia", {"type": "track", "event": "Tip Given",
                                          "properties": {"amount": amount}}).json()
        assert body["aggregate_updates"] == [{"id": "tips_30d", "kind": "sum", **update}], amount
        assert body["aggregates"]["tips_30d"] == update.get("added", 0)
        answer = live.post("/v1/track", {"userId": "tia", "event": "Tip Given",
                                         "properties": {"amount": amount}, "messageId": f"t{amount}"})
        assert answer.status_code == 200, answer.text
        assert (("tipper" in answer.json()["segments"]) == (update.get("added", 0) > 0)), amount
        live.clock.advance(31 * 86_400_000)  # out of the window again
    order = explain(live, "user:tia", {"type": "track", "event": "Order Completed",
                                       "properties": {"revenue": 20}}).json()
    assert order["aggregate_updates"] == []  # spend_30d: no rule reads it, so none is kept
    # The spec's own amounts are refused rather than skipped (see tests/test_amounts.py).
    refused = explain(live, "user:tia", {"type": "track", "event": "Order Completed",
                                         "properties": {"revenue": "12abc"}})
    assert refused.status_code == 400 and refused.json()["field"] == "event.properties.revenue"


def test_explain_is_documented(live: LiveEdge):
    doc = live.http.get("/openapi.json").json()
    operation = doc["paths"]["/v1/explain"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["profile", "event"]
    assert "404" in operation["responses"]


# -- the pure part ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, parts", [
    ("(traits.x or traits.b) and not traits.c", ["traits.x or traits.b", "not traits.c"]),
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


# -- properties ------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions)
def test_every_sub_expression_text_reads_back_as_that_sub_expression(node: Node) -> None:
    text = show(node)
    try:
        parsed = parse_expression(text)
    except Exception:  # too deep: the parser's own tests cover that
        return
    source = _Source(text)
    assert source.text(parsed) == text.strip()
    for sub in walk(parsed):
        if isinstance(sub, Literal):
            continue  # `.key` names are literals whose text is not an expression
        assert shape(parse_expression(source.text(sub))) == shape(sub), (text, source.text(sub))
        assert shape(parse_expression(unparse(sub))) == shape(sub), (text, unparse(sub))


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rule_documents(), st.lists(st.tuples(events, profiles, contexts, now_values),
                                  min_size=1, max_size=3))
def test_explained_matches_are_the_compiled_candidates(document: tuple, inputs: list) -> None:
    aggregates, segments, rules = document
    for index, segment in enumerate(segments):
        segment["id"] = f"seg{index}"
    for index, rule in enumerate(rules):
        rule["id"] = f"rule-{index}"
    for rule in rules:
        for literal_id in re.findall(r'"([^"]*)" (?:not )?in segments', rule.get("when", "")):
            assume(literal_id in {s["id"] for s in segments})
    text = yaml.safe_dump({"aggregates": aggregates, "segments": segments, "rules": rules},
                          allow_unicode=True)
    ruleset = load_random(text)
    definitions = ruleset.segments
    for event, profile, context, now in inputs:
        decision = ruleset.decide(event, profile, context, now)
        rows = explain_rules(ruleset, event, profile, context, now, {}, decision.segments)
        candidates = {ruleset.plans[position].id for position, _ in decision.candidates}
        assert {row["id"] for row in rows if row["matched"]} == candidates
        scores = {ruleset.plans[position].id: score for position, score in decision.candidates}
        assert all(row["score"] == scores[row["id"]] for row in rows if row["matched"])
        members = explain_segments(definitions, event, profile, context, now,
                                   aggregate_kinds(ruleset))
        assert [s["id"] for s in members if s["member"]] == decision.segments
