"""Loading rule documents: problems with exact positions, referenced aggregates,
aggregate updates, and what decide() answers."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import orjson
import pytest
import yaml

from rules import (
    AggregateSpec,
    Decision,
    Problem,
    Ruleset,
    RulesInvalid,
    check_documents,
    load_ruleset,
)
from rules.aggregates import bucket_ms_for
from tests.rules_answer import full_answer

NOW = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC, a Tuesday

SHOP = textwrap.dedent(
    """\
    aggregates:
      views_7d:            { count: Product Viewed, window: 7d }
      spend_30d:           { sum: Order Completed, of: properties.revenue, window: 30d }
      categories_30d:      { distinct: Product Viewed, of: properties.category, window: 30d }
      last_category:       { last: Product Viewed, of: properties.category, window: 30d }
      shoe_views_1h:
        count: Product Viewed
        where: event.properties.category == "shoes"
        window: 60m
      pageviews_1d:        { count: page, window: 1d }
    segments:
      - id: window_shopper
        when: aggregates.views_7d >= 5 and aggregates.spend_30d == 0
      - id: explorer
        when: aggregates.categories_30d >= 3
    rules:
      - id: welcome-banner
        on: page
        when: profile.visits <= 1
        priority: 10
        actions:
          - slot: hero
            html: "<h2>Welcome back, {{ traits.first_name }}</h2>"
          - slot: recs
            json:
              products: "{{ profile.recent_products }}"
              note: "for {{ traits.first_name }}"
              limit: 4
          - message:
              type: banner
              title: "Hi {{ traits.first_name }}"
              body: New arrivals
              cta: { label: Shop, url: /sale }
          - push: { title: "Psst {{ traits.first_name }}", body: "Your cart", link: "app://cart" }
          - set_trait: { loyal: true, tier: gold }
          - tag: returning
      - id: shoe-nudge
        on: [page, Product Viewed]
        when: '"window_shopper" in segments and aggregates.shoe_views_1h > 0'
        priority: 5
        actions:
          - slot: hero
            html: "Still into {{ aggregates.last_category }}?"
          - tag: [returning, shoes]
    """
)


def load(*texts: str) -> Ruleset:
    return load_ruleset([(f"doc{index}.yaml", text) for index, text in enumerate(texts)])


def problems_of(text: str, name: str = "rules.yaml") -> list[Problem]:
    return check_documents([(name, textwrap.dedent(text))])


def only_problem(text: str) -> Problem:
    problems = problems_of(text)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


# -- good documents ------------------------------------------------------------
def test_the_example_document_loads() -> None:
    ruleset = load(SHOP)
    assert ruleset.rule_count == 2
    assert ruleset.segment_count == 2
    assert ruleset.event_types_with_rules == frozenset({"page", "track:Product Viewed"})
    assert len(ruleset.version) == 12 and int(ruleset.version, 16) >= 0
    assert check_documents([("shop.yaml", SHOP)]) == []


def test_version_is_a_content_hash() -> None:
    first = load_ruleset([("a.yaml", SHOP), ("b.yaml", "rules: []\n")])
    same_in_other_order = load_ruleset([("b.yaml", "rules: []\n"), ("a.yaml", SHOP)])
    changed = load_ruleset(
        [("a.yaml", SHOP.replace("priority: 10", "priority: 11")), ("b.yaml", "rules: []\n")]
    )
    assert first.version == same_in_other_order.version
    assert first.version != changed.version


def test_empty_and_partial_documents_load() -> None:
    assert load_ruleset([]).rule_count == 0
    assert (
        load("", "# only a comment\n", "rules:\n", "segments: []\naggregates: {}\n").rule_count == 0
    )
    empty = load("")
    decision = empty.decide({"type": "page"}, {}, {}, NOW)
    assert decision == Decision([], [])
    assert empty.aggregate_updates({"type": "page"}) == []


def test_several_documents_in_one_file() -> None:
    text = (
        "rules:\n  - {id: a, on: page, actions: [{tag: x}]}\n"
        "---\n"
        "rules:\n  - {id: b, on: page, actions: [{tag: y}]}\n"
    )
    assert full_answer(load(text), {"type": "page"}, {}, {}, NOW).add_tags == ["x", "y"]


# -- problems with positions -----------------------------------------------------
def test_problem_formats_as_file_line_column() -> None:
    problem = Problem("rules/shop.yaml", 3, 7, "unknown aggregate 'x'")
    assert str(problem) == "rules/shop.yaml:3:7: unknown aggregate 'x'"


def test_unknown_key_points_at_the_key() -> None:
    problem = only_problem(
        """\
        rules:
          - id: a
            on: page
            colour: red
            actions: [{tag: x}]
        """
    )
    assert (problem.line, problem.column) == (4, 5)
    assert (
        problem.message == "unknown key 'colour' in a rule; "
        "expected one of: id, on, when, priority, actions, description, score, group, cap, "
        "experiment, variant, schedule, purpose"
    )


def test_expression_problems_point_inside_the_expression() -> None:
    plain = only_problem(
        """\
        aggregates:
          views_7d: { count: Product Viewed, window: 7d }
        segments:
          - id: s
            when: aggregates.views_7d > 1 and aggregates.views_30d > 2
        """
    )
    # "    when: " is 10 characters; aggregates.views_30d's name starts 40 characters in.
    assert (plain.line, plain.column, plain.message) == (5, 50, "unknown aggregate 'views_30d'")

    quoted = only_problem(
        """\
        rules:
          - id: a
            on: page
            when: '"vip" in profile.tags or nosuch(1)'
            actions: [{tag: x}]
        """
    )
    # The quote is at column 11, so the expression starts at column 12.
    assert (quoted.line, quoted.column) == (4, 12 + len('"vip" in profile.tags or '))
    assert quoted.message.startswith("unknown function 'nosuch'")

    block = only_problem(
        """\
        rules:
          - id: a
            on: page
            when: |
              traits.plan == "pro"
                and traits.age >= 18 and
                traits.age = 65
            actions: [{tag: x}]
        """
    )
    assert (block.line, block.column) == (7, 20)
    assert block.message == "use '==' to compare"


def test_syntax_error_in_a_placeholder_points_into_the_template() -> None:
    problem = only_problem(
        """\
        rules:
          - id: a
            on: page
            actions:
              - slot: hero
                html: "<b>Hi {{ traits.name + }}</b>"
        """
    )
    # Templates report the line inside the template; the html value starts at column 16.
    assert (problem.line, problem.column) == (6, 16)
    assert problem.message.startswith("unexpected")


def test_window_problems() -> None:
    problems = problems_of(
        """\
        aggregates:
          odd:   { count: page, window: 125m }
          tiny:  { count: page, window: 30s }
          huge:  { count: page, window: 401d }
          words: { count: page, window: 7 days }
          plain: { count: page, window: 60 }
        """
    )
    assert [(p.line, p.column) for p in problems] == [(2, 33), (3, 33), (4, 33), (5, 33), (6, 33)]
    assert (
        problems[0].message == "window 125m must be a multiple of 15m, "
        "the bucket size for windows of this length; try 2h or 135m"
    )
    assert problems[1].message == "window must be at least 1m"
    assert problems[2].message == "window must be at most 400d"
    assert problems[3].message == "invalid window '7 days'; use a duration such as 60m, 12h or 7d"
    assert problems[4].message == "invalid window '60'; use a duration such as 60m, 12h or 7d"


def test_max_value_problems() -> None:
    problems = problems_of(
        """\
        aggregates:
          views: { count: page, window: 1d, max_value: 5 }
          words: { sum: Order Completed, of: properties.revenue, window: 1d, max_value: lots }
          zero:  { sum: Order Completed, of: properties.revenue, window: 1d, max_value: 0 }
          huge:  { sum: Order Completed, of: properties.revenue, window: 1d, max_value: 1.0e16 }
        """
    )
    assert [(p.line, p.column, p.message) for p in problems] == [
        (2, 37, "max_value bounds a sum aggregate; a count aggregate takes none"),
        *[(line, column, "max_value must be a number above 0 and at most 1e15, "
                         "such as 10000 or 1e9") for line, column in ((3, 81), (4, 81), (5, 81))],
    ]


def test_a_sum_skips_what_is_beyond_its_max_value() -> None:
    ruleset = load("""
aggregates:
  tips: { sum: Tip Given, of: properties.amount, window: 1d, max_value: 100 }
  big:  { sum: Tip Given, of: properties.amount, window: 1d, max_value: 1e3 }
segments:
  - id: tipper
    when: aggregates.tips > 0 and aggregates.big > 0
""")
    def added(amount: object) -> dict:
        event = {"type": "track", "event": "Tip Given", "properties": {"amount": amount}}
        return {spec.id: value for spec, value in ruleset.aggregate_updates(event)}

    assert added(100) == {"big": 100.0, "tips": 100.0} and added(-100)["tips"] == -100.0
    assert added(100.01) == {"big": 100.01} and added(-1000) == {"big": -1000.0}
    assert added(1001) == {} and added("50") == {}


def test_bucket_sizes_and_window_limits() -> None:
    assert bucket_ms_for(60_000) == 60_000
    assert bucket_ms_for(2 * 3_600_000) == 60_000
    assert bucket_ms_for(2 * 3_600_000 + 60_000) == 900_000
    assert bucket_ms_for(2 * 86_400_000) == 900_000
    assert bucket_ms_for(14 * 86_400_000) == 3_600_000
    assert bucket_ms_for(15 * 86_400_000) == 86_400_000
    ruleset = load(
        """\
        aggregates:
          a: { count: page, window: 1m }
          b: { count: page, window: 2h }
          c: { count: page, window: 135m }
          d: { count: page, window: 14d }
          e: { count: page, window: 400d }
        segments:
          - id: s
            when: aggregates.a + aggregates.b + aggregates.c + aggregates.d + aggregates.e > 0
        """
    )
    assert [(s.id, s.bucket_ms, s.n_buckets) for s in ruleset.aggregates] == [
        ("a", 60_000, 1),
        ("b", 60_000, 120),
        ("c", 900_000, 9),
        ("d", 3_600_000, 336),
        ("e", 86_400_000, 400),
    ]


def test_message_type_and_action_shape_problems() -> None:
    problems = problems_of(
        """\
        rules:
          - id: a
            on: page
            actions:
              - message: { type: popup, title: Hi }
              - push: { body: x }
              - slot: hero
              - slot: side
                html: x
                json: {a: 1}
              - tag: x
                slot: y
              - set_trait: { n: "{{ traits.x }}" }
        """
    )
    assert [(p.line, p.column, p.message) for p in problems] == [
        (5, 26, "message type must be one of: banner, modal, toast"),
        (6, 15, "push is missing 'title'"),
        (7, 9, "a slot action needs exactly one of html or json"),
        (10, 9, "a slot action needs exactly one of html or json"),
        (
            12,
            9,
            "an action has exactly one of slot, message, push, notify, set_trait, tag; found tag and slot",
        ),
        (13, 25, "set_trait values are literal; placeholders are not supported here"),
    ]


def test_segment_rules_and_references() -> None:
    problems = problems_of(
        """\
        segments:
          - id: loop
            when: '"other" in segments'
          - id: other
            when: traits.plan == "pro"
        rules:
          - id: a
            on: page
            when: '"ghost" in segments or "other" in segments'
            actions: [{tag: x}]
        aggregates:
          filtered: { count: page, where: profile.visits > 1, window: 1d }
        """
    )
    assert [(p.line, p.column, p.message) for p in problems] == [
        (3, 23, "'segments' cannot be used in a segment condition"),
        (9, 12, "unknown segment 'ghost'"),
        (
            12,
            35,
            "'profile' cannot be used in an aggregate's where or of (only event is available)",
        ),
    ]


def test_duplicate_ids_report_both_positions() -> None:
    first = "rules:\n  - id: promo\n    on: page\n    actions: [{tag: a}]\n"
    second = (
        "segments:\n  - id: promo\n    when: 'true'\n"
        "rules:\n  - id: promo\n    on: screen\n    actions: [{tag: b}]\n"
    )
    problems = check_documents([("one.yaml", first), ("two.yaml", second)])
    assert [str(p) for p in problems] == [
        "two.yaml:5:9: duplicate rule id 'promo' (first defined at one.yaml:2:9)"
    ]


def test_yaml_syntax_errors_have_positions() -> None:
    problem = only_problem("rules:\n  - id: a\n    on: page\n   when: x\n")
    assert (problem.line, problem.message.startswith("YAML:")) == (4, True)
    problem = only_problem('rules:\n  - id: a\n    when: "vip" in segments\n')
    assert problem.line == 3 and problem.message.startswith("YAML:")


def test_every_problem_is_reported_not_just_the_first() -> None:
    problems = problems_of(
        """\
        aggregates:
          views: { count: Product Viewed, window: 7 days }
        rules:
          - id: a
            on: page
            when: aggregates.views > 1 and aggregates.nope > 2
            priority: high
            actions:
              - slot: hero
                html: "{{ nosuch(1) }}"
          - id: a
            on: [page, "track:"]
            actions: []
          - on: page
            actions: [{tag: x}]
        """
    )
    messages = [p.message for p in problems]
    assert len(problems) == 8, messages
    assert "unknown aggregate 'nope'" in messages  # `views` has a bad window, but its name is known
    assert "priority must be a whole number" in messages
    assert any(m.startswith("unknown name 'nosuch' in a template") for m in messages)
    assert any(m.startswith("duplicate rule id 'a'") for m in messages)
    assert "invalid event in on: 'track:'" in messages
    assert "actions must be a non-empty list" in messages
    assert "rule is missing 'id'" in messages
    assert problems == sorted(problems, key=lambda p: (p.line, p.column))


def test_load_ruleset_raises_with_all_problems() -> None:
    with pytest.raises(RulesInvalid) as caught:
        load_ruleset(
            [
                (
                    "bad.yaml",
                    "rules:\n  - id: a\n    on: page\n    when: foo > 1\n    actions: [{tag: x}]\n",
                )
            ]
        )
    assert [str(p) for p in caught.value.problems] == [
        "bad.yaml:4:11: unknown name 'foo'; expected one of: agg, aggregates, cart, catalog, context, "
        "ctx, event, local, location, now, profile, segments, traits"
    ]
    assert str(caught.value) == str(caught.value.problems[0])


@pytest.mark.parametrize(
    "text",
    [
        None,
        b"\xff\xfe",
        "- a list",
        "rules: 5",
        "rules: [5, 'a', null, [1]]",
        "aggregates: [1, 2]",
        "aggregates: {x: 5, y: {count: [], window: []}}",
        "segments: [{id: [1], when: {a: b}}]",
        "rules: [{id: a, on: {x: 1}, actions: {tag: x}}]",
        "{{{",
        "rules: [{id: a, on: page, actions: [{slot: s, json: {a: .inf}}]}]",
        "rules: [{id: a, on: page, when: '" + "(" * 300 + "', actions: [{tag: x}]}]",
        "rules: [{id: a, on: page, when: '" + "a and " * 3000 + "a', actions: [{tag: x}]}]",
        "x: &a [*a]",
        "rules: [{id: a, on: page, actions: [{slot: s, json: &a [1, *a]}]}]",
        "rules: [{id: a, on: page, actions: [{slot: s, json: " + "[" * 3000 + "]" * 3000 + "}]}]",
        "rules: [{id: a, on: page, actions: [{set_trait: {x: " + "[" * 50 + "]" * 50 + "}}]}]",
    ],
)
def test_check_documents_never_raises(text: object) -> None:
    problems = check_documents([("weird.yaml", text)])  # type: ignore[list-item]
    assert problems and all(
        isinstance(p, Problem) and p.line >= 1 and p.column >= 1 for p in problems
    )
    assert not any(p.message.startswith("internal error") for p in problems), problems


# -- referenced aggregates and updates ---------------------------------------------
def test_only_referenced_aggregates_are_maintained() -> None:
    ruleset = load(SHOP)
    # views_7d and spend_30d: segment; categories_30d: segment; shoe_views_1h: condition;
    # last_category: template.  pageviews_1d is declared but never used.
    assert [spec.id for spec in ruleset.aggregates] == [
        "categories_30d",
        "last_category",
        "shoe_views_1h",
        "spend_30d",
        "views_7d",
    ]
    spend = next(spec for spec in ruleset.aggregates if spec.id == "spend_30d")
    assert spend == AggregateSpec("spend_30d", "sum", 30 * 86_400_000, 86_400_000)
    assert spend.n_buckets == 30


def test_aggregate_updates_for_matching_and_other_events() -> None:
    ruleset = load(SHOP)
    viewed = {"type": "track", "event": "Product Viewed", "properties": {"category": "shoes"}}
    assert [(spec.id, value) for spec, value in ruleset.aggregate_updates(viewed)] == [
        ("categories_30d", "shoes"),
        ("last_category", "shoes"),
        ("shoe_views_1h", 1),
        ("views_7d", 1),
    ]
    hats = {"type": "track", "event": "Product Viewed", "properties": {"category": "hats"}}
    assert [spec.id for spec, _ in ruleset.aggregate_updates(hats)] == [
        "categories_30d",
        "last_category",
        "views_7d",
    ]
    order = {"type": "track", "event": "Order Completed", "properties": {"revenue": 42}}
    assert [(spec.id, value) for spec, value in ruleset.aggregate_updates(order)] == [
        ("spend_30d", 42.0)
    ]
    assert isinstance(ruleset.aggregate_updates(order)[0][1], float)
    assert (
        ruleset.aggregate_updates({"type": "page", "name": "Home"}) == []
    )  # pageviews_1d is unused
    assert ruleset.aggregate_updates({"type": "track", "event": "Signed Up"}) == []
    assert ruleset.aggregate_updates({}) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, 12.0),
        (2.5, 2.5),
        ("12", None),
        (True, None),
        (None, None),
        (float("inf"), None),
        (float("nan"), None),
        (2**80, None),
        (10**400, None),
        (1e12, 1e12),  # the default max_value, either sign
        (-1e12, -1e12),
        (1.0000001e12, None),
        (1.7e308, None),
        ("12abc", None),
    ],
)
def test_sum_takes_bounded_numbers_only(value: object, expected: float | None) -> None:
    ruleset = load(SHOP)
    updates = ruleset.aggregate_updates(
        {"type": "track", "event": "Order Completed", "properties": {"revenue": value}}
    )
    assert updates == ([] if expected is None else [(ruleset.aggregates[3], expected)])


def test_last_and_distinct_values() -> None:
    ruleset = load(SHOP)

    def update(category: object) -> dict:
        event = {"type": "track", "event": "Product Viewed", "properties": {"category": category}}
        return {spec.id: value for spec, value in ruleset.aggregate_updates(event)}

    assert update(7) == {"categories_30d": "7", "last_category": 7, "views_7d": 1}
    assert update(3.0)["categories_30d"] == "3"
    assert update(True) == {"categories_30d": "true", "last_category": True, "views_7d": 1}
    assert update(None) == {"views_7d": 1}
    assert update({"a": 1}) == {"categories_30d": '{"a":1}', "views_7d": 1}
    assert update(["x"]) == {"categories_30d": '["x"]', "views_7d": 1}


def test_trigger_spellings() -> None:
    ruleset = load(
        """\
        aggregates:
          pages: { count: page, window: 1d }
          tracks: { count: track, window: 1d }
          named_page: { count: "track:page", window: 1d }
          everything: { count: any, window: 1d }
          either: { count: [identify, Signed Up], window: 1d }
        segments:
          - id: s
            when: agg.pages + agg.tracks + agg.named_page + agg.everything + agg.either > 0
        """
    )

    def ids(event: dict) -> list[str]:
        return [spec.id for spec, _ in ruleset.aggregate_updates(event)]

    assert ids({"type": "page"}) == ["everything", "pages"]
    assert ids({"type": "track", "event": "page"}) == ["everything", "named_page", "tracks"]
    assert ids({"type": "track", "event": "Signed Up"}) == ["either", "everything", "tracks"]
    assert ids({"type": "identify"}) == ["either", "everything"]
    assert ids({"type": "alias"}) == ["everything"]
    assert ids({"type": None}) == ["everything"]


# -- decide -------------------------------------------------------------------------
PROFILE = {
    "id": "u1",
    "traits": {"first_name": "<script>alert(1)</script>"},
    "visits": 1,
    "recent_products": ["p1", "p2"],
    "aggregates": {"views_7d": 6, "shoe_views_1h": 2, "last_category": "shoes"},
}


def test_decide_fills_slots_messages_push_traits_and_tags() -> None:
    decision = full_answer(load(SHOP), {"type": "page"}, PROFILE, {}, NOW)
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert decision.slots == {
        "hero": {"rule": "welcome-banner", "html": f"<h2>Welcome back, {escaped}</h2>"},
        "recs": {
            "rule": "welcome-banner",
            "json": {"products": ["p1", "p2"], "note": "for <script>alert(1)</script>", "limit": 4},
        },
    }
    assert decision.messages == [
        {
            "rule": "welcome-banner",
            "type": "banner",
            "title": "Hi <script>alert(1)</script>",
            "body": "New arrivals",
            "cta": {"label": "Shop", "url": "/sale"},
        }
    ]
    assert decision.push == [
        {
            "rule": "welcome-banner",
            "title": "Psst <script>alert(1)</script>",
            "body": "Your cart",
            "link": "app://cart",
        }
    ]
    assert decision.set_traits == {"loyal": True, "tier": "gold"}
    assert decision.add_tags == ["returning"]  # the losing shoe-nudge adds nothing
    assert decision.segments == ["window_shopper"]
    assert decision.trace == {
        "welcome-banner": "fired",
        "shoe-nudge": "nothing could be shown: every slot it fills is taken",
    }
    orjson.dumps([decision.slots, decision.messages, decision.push])


def test_lower_priority_rule_gets_slots_left_free() -> None:
    returning = dict(PROFILE, visits=5)
    decision = full_answer(load(SHOP), {"type": "page"}, returning, {}, NOW)
    assert decision.slots == {"hero": {"rule": "shoe-nudge", "html": "Still into shoes?"}}
    assert decision.add_tags == ["returning", "shoes"]
    assert decision.messages == [] and decision.push == [] and decision.set_traits == {}


def test_slot_winner_is_highest_priority_then_lowest_id() -> None:
    ruleset = load(
        """\
        rules:
          - {id: b-rule, on: page, priority: 5, actions: [{slot: hero, html: b}, {tag: b}]}
          - {id: a-rule, on: page, priority: 5, actions: [{slot: hero, html: a}, {tag: a}]}
          - id: c-rule
            on: page
            priority: 9
            when: traits.vip == true
            actions: [{slot: hero, html: c}]
          - id: d-rule
            on: page
            priority: 1
            actions: [{slot: side, html: d}, {set_trait: {x: 1}}]
          - {id: e-rule, on: page, actions: [{slot: side, html: e}, {set_trait: {x: 2, y: 2}}]}
        """
    )
    plain = full_answer(ruleset, {"type": "page"}, {}, {}, NOW)
    assert plain.slots == {
        "hero": {"rule": "a-rule", "html": "a"},
        "side": {"rule": "d-rule", "html": "d"},
    }
    assert plain.add_tags == ["a"]  # a rule that loses arbitration does nothing at all
    assert plain.set_traits == {"x": 1}
    vip = full_answer(ruleset, {"type": "page"}, {"traits": {"vip": True}}, {}, NOW)
    assert vip.slots["hero"] == {"rule": "c-rule", "html": "c"}


def test_rules_fire_only_for_their_events() -> None:
    ruleset = load(
        """\
        rules:
          - {id: on-page, on: page, actions: [{tag: page}]}
          - {id: on-viewed, on: Product Viewed, actions: [{tag: viewed}]}
          - {id: on-track, on: track, actions: [{tag: track}]}
          - {id: on-any, on: any, actions: [{tag: any}]}
          - {id: on-named-page, on: "track:page", actions: [{tag: named-page}]}
          - {id: on-two, on: [identify, screen], actions: [{tag: two}]}
        """
    )

    def tags(event: dict) -> list[str]:
        return full_answer(ruleset, event, {}, {}, NOW).add_tags

    assert tags({"type": "page"}) == ["any", "page"]
    assert tags({"type": "track", "event": "Product Viewed"}) == ["any", "track", "viewed"]
    assert tags({"type": "track", "event": "Order Completed"}) == ["any", "track"]
    assert tags({"type": "track", "event": "page"}) == ["any", "named-page", "track"]
    assert tags({"type": "track"}) == ["any", "track"]
    assert tags({"type": "screen"}) == ["any", "two"]
    assert tags({"type": "group"}) == ["any"]
    assert tags({}) == ["any"]


def test_current_and_stored_segments() -> None:
    ruleset = load(
        """\
        segments:
          - {id: zeta, when: 'traits.plan == "pro"'}
          - {id: alpha, when: 'true'}
          - {id: mid, when: cart.value > 100}
        rules:
          - id: now-pro
            on: page
            when: '"zeta" in segments'
            actions: [{tag: now-pro}]
          - id: was-pro
            on: page
            when: '"zeta" in profile.segments and "zeta" not in segments'
            actions: [{tag: was-pro}]
          - id: count
            on: page
            actions: [{slot: n, html: "{{ segments | length }}"}]
        """
    )
    pro = full_answer(ruleset, 
        {"type": "page"}, {"traits": {"plan": "pro"}, "cart": {"value": 150.0}}, {}, NOW
    )
    assert pro.segments == ["alpha", "mid", "zeta"]
    assert pro.add_tags == ["now-pro"]
    assert pro.slots["n"]["html"] == "3"
    lapsed = full_answer(ruleset, {"type": "page"}, {"segments": ["zeta"]}, {}, NOW)
    assert lapsed.segments == ["alpha"]
    assert lapsed.add_tags == ["was-pro"]


def test_missing_data_never_raises() -> None:
    ruleset = load(SHOP)
    for event, profile, context in [
        ({}, {}, {}),
        (
            {"type": "page", "properties": None},
            {"traits": None, "aggregates": [], "cart": "x"},
            {"page": 5},
        ),
        (None, None, None),
        (
            {"type": ["page"], "event": {"x": 1}},
            {"aggregates": {"views_7d": "many"}},
            {"timezone": ["x"]},
        ),
    ]:
        decision = ruleset.decide(event, profile, context, NOW)  # type: ignore[arg-type]
        assert isinstance(decision, Decision)
    assert ruleset.decide({"type": "page"}, {}, {}, NOW).segments == []


def test_aggregates_default_to_zero_and_local_time_uses_the_zone() -> None:
    ruleset = load(
        """\
        aggregates:
          spend_30d: { sum: Order Completed, of: properties.revenue, window: 30d }
          last_cat: { last: Product Viewed, of: properties.category, window: 30d }
        rules:
          - id: evening
            on: page
            when: >-
              local.hour >= 23 and local.weekday == "tue"
              and aggregates.spend_30d == 0 and aggregates.last_cat == null
            actions: [{slot: hero, html: "{{ now | datetime('yyyy-MM-dd HH:mm') }}"}]
        """
    )
    prague = full_answer(ruleset, {"type": "page"}, {}, {"timezone": "Europe/Prague"}, NOW)
    assert prague.slots == {"hero": {"rule": "evening", "html": "2023-11-14 23:13"}}
    assert full_answer(ruleset, {"type": "page"}, {}, {}, NOW).slots == {}  # 22:13 in UTC
    spender = full_answer(
        ruleset,
        {"type": "page"}, {"aggregates": {"spend_30d": 10.0}}, {"timezone": "Europe/Prague"}, NOW
    )
    assert spender.slots == {}


def test_user_text_stays_data() -> None:
    """Quotes and code-like text in a string literal are compared as text, never run."""
    note = "x'); __import__('os'); ('\n\"}}"
    literal = '"' + note.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    document = yaml.safe_dump(
        {
            "rules": [
                {
                    "id": "quote",
                    "on": "page",
                    "when": f"traits.note == {literal}",
                    "actions": [{"tag": "ok"}],
                }
            ]
        }
    )
    decision = full_answer(load(document), {"type": "page"}, {"traits": {"note": note}}, {}, NOW)
    assert decision.add_tags == ["ok"]
    problems = problems_of(
        "rules: [{id: a, on: page, when: __import__('os'), actions: [{tag: x}]}]"
    )
    assert [p.message.split(";")[0] for p in problems] == ["unknown function '__import__'"]
    problems = problems_of("rules: [{id: a, on: page, when: __class__.x, actions: [{tag: x}]}]")
    assert [p.message.split(";")[0] for p in problems] == ["unknown name '__class__'"]


# -- what `kairos check` refuses, or warns about, that would otherwise pass silently ----------
SETTLED = [
    # (condition, the message's start, its end)
    ('profile.visits <= "one"', 'profile.visits is a number and "one" is text, so `<=`',
     "never true: only two numbers or two texts are ordered"),
    ('aggregates.spend_90d >= "500"', 'aggregates.spend_90d is a number and "500" is text',
     "write 500 without quotes"),
    ('aggregates.views == "3"', "aggregates.views is a number", "never equal; write 3 without quotes"),
    ('cart.value != "0"', "cart.value is a number", "is always true: values of different kinds are never equal; write 0 without quotes"),
    ("local.weekday == 1", "local.weekday is text and 1 is a number", "never equal"),
    ("profile.visits == true", "profile.visits is a number and true is a boolean", "never equal"),
    ('exists(traits.x) == "yes"', "exists(traits.x) is a boolean and \"yes\" is text", "never equal"),
    ("now > [1]", "now is a number and [1] is a list", "are ordered"),
]
MEANT = [  # kinds that depend on the data, or comparisons with null: no problem
    'traits.age >= "18"', "aggregates.last_cat == 3", "traits.x == null", "profile.visits > null",
    "aggregates.views >= 2", 'local.weekday == "sat"', 'lower(traits.plan) == "gold"',
    "len(traits.tags) > 0", "profile.visits + 1 > 2",
]
CHECK_AGGREGATES = """
aggregates:
  spend_90d: { sum: Order Completed, of: properties.revenue, window: 90d }
  views: { count: Product Viewed, window: 7d }
  last_cat: { last: Product Viewed, of: properties.category, window: 7d }
"""


@pytest.mark.parametrize("condition, start, end", SETTLED)
def test_a_comparison_its_kinds_settle_is_an_error(condition: str, start: str, end: str) -> None:
    problem = only_problem(CHECK_AGGREGATES + f"segments:\n  - id: s\n    when: '{condition}'\n")
    assert (problem.line, problem.column, problem.warning) == (8, 12, False)
    assert problem.message.startswith(start) and problem.message.endswith(end), problem.message


@pytest.mark.parametrize("condition", MEANT)
def test_comparisons_whose_kinds_depend_on_the_data_pass(condition: str) -> None:
    assert problems_of(CHECK_AGGREGATES + f"segments:\n  - id: s\n    when: '{condition}'\n") == []


@pytest.mark.parametrize("weights, total", [
    ("variants: { a: 50, b: 30 }", "80 (a 50, b 30)"),
    ("variants: { a: 50, b: 30 }\n    control: 30", "110 (a 50, b 30, control 30)"),
    ("control: 0", "0 (none)"),
])
def test_experiment_weights_must_add_up_to_100_with_the_control(weights: str, total: str) -> None:
    problem = only_problem(f"experiments:\n  - id: e\n    {weights}\n")
    assert (problem.line, problem.column) == (2, 5)
    assert problem.message.endswith(f"must add up to 100 with the control; these add up to {total}")
    assert problems_of("experiments:\n  - id: e\n    variants: { a: 45, b: 45 }\n    control: 10\n") == []


def test_a_trigger_one_slip_from_a_known_event_is_a_warning() -> None:
    text = """\
        aggregates:
          tips: { count: Tip Given, window: 7d }
        segments:
          - { id: tipper, when: aggregates.tips > 0 }
        rules:
          - id: a
            on: [pgae, Order Complete, Prodcut Viewed, Tip Gvien, order completed]
            actions: [{ tag: a }]
          - id: b
            on: [Survey Answered, Order Completed, page, Message Clicked, Tip Given]
            actions: [{ tag: b }]
        """
    problems = problems_of(text)
    assert all(problem.warning for problem in problems)
    assert [(p.line, p.column, re.search(r"'(.*?)' is known; did you mean '(.*?)'", p.message).groups())
            for p in problems] == [
        (7, 10, ("pgae", "page")),
        (7, 16, ("Order Complete", "Order Completed")),
        (7, 32, ("Prodcut Viewed", "Product Viewed")),
        (7, 48, ("Tip Gvien", "Tip Given")),  # named by the aggregate and rule b
        (7, 59, ("order completed", "Order Completed")),
    ]
    # warnings do not stop the rules from loading
    assert load_ruleset([("rules.yaml", textwrap.dedent(text))]).rule_count == 2


@pytest.mark.parametrize("action, message", [
    ("{ slott: hero, html: x }", "unknown action key 'slott' (did you mean 'slot'?); an action has one of:"),
    ("{ tags: vip }", "unknown action key 'tags' (did you mean 'tag'?); an action has one of:"),
    ("{ banner: x }", "unknown action key 'banner'; an action has one of:"),
    ("{ slot: hero, htm: x }", "unknown key 'htm' in a slot action (did you mean 'html'?); expected one of:"),
])
def test_an_unknown_action_key_is_named(action: str, message: str) -> None:
    problem = only_problem(f"rules:\n  - id: a\n    on: page\n    actions: [{action}]\n")
    assert problem.message.startswith(message), problem.message
    assert (problem.line, problem.column) == (4, 15 + action.index(message.split("'")[1]))


def test_the_edge_s_own_events_are_known_to_the_check() -> None:
    from edge.ingest import channels, consent, ecommerce, engagement
    from edge.store import streams
    from rules.event_names import KNOWN_EVENTS

    sent = {channels.PUSH_SUBSCRIBED, consent.CONSENT_EVENT, streams.EXPERIMENT_VIEWED,
            streams.MESSAGE_QUEUED, streams.PRICE_DROPPED, streams.BACK_IN_STOCK,
            ecommerce.PRODUCT_VIEWED, ecommerce.PRODUCT_ADDED, ecommerce.PRODUCT_REMOVED,
            ecommerce.ORDER_COMPLETED, ecommerce.CART_CLEARED}
    snippet = (Path(__file__).resolve().parents[1] / "snippet" / "src" / "messages.js").read_text()
    sent |= set(re.findall(r"'(Message [A-Z][a-z]+)'", snippet))
    assert sent <= KNOWN_EVENTS, sent - KNOWN_EVENTS
    for name in KNOWN_EVENTS:  # what engagement counts is named as the check knows it
        words = name.lower().split()
        if len(words) == 2 and words[0] in engagement.CHANNEL_WORDS and words[1] in engagement.KINDS:
            assert engagement.engagement_of(name, {}) is not None
    assert len(sent) > 12
