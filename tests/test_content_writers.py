"""Winners made at load write their content through generated functions
(rules.render.content_writer); the answers are the ones render()'s loop gives."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench.rule_corpus import make_corpus, make_full_inputs
from rules import load_ruleset
from rules.arbitration import Selection
from rules.render import Rendered, render
from tests.rules_answer import person

CONFIG_RULES = Path(__file__).resolve().parents[1] / "config" / "rules"
NOW = 1_700_000_000_000

EVERY_KIND = """
rules:
  - id: hero-html
    on: page
    priority: 9
    actions:
      - slot: hero
        html: "<b>{{ traits.name | default('you') }}</b> & {{ traits.missing.deeper }}"
      - tag: saw-hero
  - id: recs-json
    on: page
    priority: 8
    actions:
      - slot: recs
        json: { products: "{{ profile.recent }}", title: "For {{ traits.name }}", limit: 3,
                nested: [ 1, { text: "fixed" } ] }
  - id: two-slots
    on: page
    priority: 7
    actions:
      - { slot: side, html: "static side" }
      - { slot: footer, html: "{{ traits.plan | upper }}" }
      - set_trait: { nudged: true }
  - id: message
    on: page
    priority: 6
    actions:
      - message:
          type: modal
          title: "Hi {{ traits.name }}"
          body: "fixed body"
          cta: { label: "Go", url: "/x?n={{ traits.name }}" }
  - id: push-dynamic
    on: page
    priority: 5
    actions:
      - push: { title: "{{ traits.name }}", body: "{{ traits.missing }}", link: "app://x" }
  - id: push-bare
    on: page
    priority: 4
    actions:
      - push: { title: "Only a title" }
  - id: failing
    on: page
    priority: 3
    actions:
      - slot: broken
        html: "{{ traits.name ** 100000 }}"
"""


def without_writers(selection: Selection) -> Selection:
    copy = dataclasses.replace(selection)
    copy.fired = [dataclasses.replace(fired, write=None) for fired in selection.fired]
    return copy


def both_ways(ruleset, event, profile, context, now, who) -> tuple[Rendered, Rendered, int]:
    decision = ruleset.decide(event, profile, context, now)
    selection = ruleset.arbiter.select(decision.segments, decision.candidates, who)
    variables = {"event": event, "profile": profile, "traits": profile.get("traits"),
                 "cart": profile.get("cart"), "aggregates": profile.get("aggregates"),
                 "context": context, "segments": decision.segments}
    written = sum(fired.write is not None for fired in selection.fired)
    timezone = context.get("timezone")
    return (render(selection, variables, "de", timezone),
            render(without_writers(selection), variables, "de", timezone), written)


def test_every_kind_of_content_is_written_as_render_would() -> None:
    ruleset = load_ruleset([("every-kind.yaml", EVERY_KIND)])
    answers = []
    for traits in ({"name": "<Eva>", "plan": "pro"}, {}, {"name": None, "plan": 3}):
        profile = {"traits": traits, "recent": ["p1", "p2"]}
        event = {"type": "page", "properties": {}}
        written, generic, count = both_ways(ruleset, event, profile, {}, NOW, person(NOW))
        assert written == generic
        assert count == 7  # every winner had a writer
        answers.append(written)
    eva, nobody, _ = answers
    assert eva.slots["hero"]["html"] == "<b>&lt;Eva&gt;</b> & "
    assert nobody.slots["hero"]["html"] == "<b>you</b> & "
    assert eva.slots["footer"] == {"rule": "two-slots", "html": "PRO"}
    assert eva.messages == [{"rule": "message", "type": "modal", "title": "Hi <Eva>",
                             "body": "fixed body", "cta": {"label": "Go", "url": "/x?n=<Eva>"}}]
    assert eva.slots["broken"] == {"rule": "failing", "html": ""}
    assert eva.push[1] == {"rule": "push-bare", "title": "Only a title", "body": "",
                           "link": None}


def test_answers_hold_their_own_json_content() -> None:
    ruleset = load_ruleset([("every-kind.yaml", EVERY_KIND)])
    first, _, _ = both_ways(ruleset, {"type": "page"}, {"traits": {}}, {}, NOW, person(NOW))
    first.slots["recs"]["json"]["nested"][1]["text"] = "changed"
    second, _, _ = both_ways(ruleset, {"type": "page"}, {"traits": {}}, {}, NOW, person(NOW))
    assert second.slots["recs"]["json"]["nested"][1]["text"] == "fixed"


@pytest.mark.parametrize("name", ["corpus", "example"])
def test_answers_of_whole_rulebooks_are_the_same_without_writers(name: str) -> None:
    if name == "corpus":
        ruleset = load_ruleset(make_corpus(200, 7))
    else:
        ruleset = load_ruleset([(p.name, p.read_text()) for p in CONFIG_RULES.glob("*.yaml")])
    written_total = 0
    for (event, profile, context, now), who in make_full_inputs(400, 11):
        written, generic, count = both_ways(ruleset, event, profile, context, now, who)
        assert written == generic
        written_total += count
    assert written_total > 100 if name == "corpus" else written_total > 0
