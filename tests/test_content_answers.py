"""The content of an answer (rules.render): what each kind of action puts in it, for
people with and without the data its templates read, and for whole rulebooks."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.rule_corpus import make_corpus, make_full_inputs
from rules import load_ruleset
from rules.arbitration import Selection
from rules.definitions import SlotAction
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


def answer_of(ruleset, event, profile, context, now, who) -> tuple[Selection, Rendered]:
    decision = ruleset.decide(event, profile, context, now)
    selection = ruleset.arbiter.select(decision.segments, decision.candidates, who)
    variables = {"event": event, "profile": profile, "traits": profile.get("traits"),
                 "cart": profile.get("cart"), "aggregates": profile.get("aggregates"),
                 "context": context, "segments": decision.segments}
    return selection, render(selection, variables, "de", context.get("timezone"))


def test_every_kind_of_content() -> None:
    ruleset = load_ruleset([("every-kind.yaml", EVERY_KIND)])
    answers = []
    for traits in ({"name": "<Eva>", "plan": "pro"}, {}, {"name": None, "plan": 3}):
        profile = {"traits": traits, "recent": ["p1", "p2"]}
        selection, rendered = answer_of(ruleset, {"type": "page", "properties": {}}, profile,
                                        {}, NOW, person(NOW))
        assert selection.traits_and_tags() == ({"nudged": True}, ["saw-hero"])
        assert rendered.outbound == []
        answers.append(rendered)
    eva, nobody, odd = answers
    recs = {"products": ["p1", "p2"], "title": "For <Eva>", "limit": 3,
            "nested": [1, {"text": "fixed"}]}
    assert eva.slots == {
        "hero": {"rule": "hero-html", "html": "<b>&lt;Eva&gt;</b> & "},
        "recs": {"rule": "recs-json", "json": recs},
        "side": {"rule": "two-slots", "html": "static side"},
        "footer": {"rule": "two-slots", "html": "PRO"},
        "broken": {"rule": "failing", "html": ""},
    }
    assert eva.messages == [{"rule": "message", "type": "modal", "title": "Hi <Eva>",
                             "body": "fixed body", "cta": {"label": "Go", "url": "/x?n=<Eva>"}}]
    assert eva.push == [
        {"rule": "push-dynamic", "title": "<Eva>", "body": "", "link": "app://x"},
        {"rule": "push-bare", "title": "Only a title", "body": "", "link": None},
    ]
    assert nobody.slots["hero"]["html"] == odd.slots["hero"]["html"] == "<b>you</b> & "
    assert nobody.slots["recs"]["json"] == recs | {"title": "For "}
    assert (nobody.slots["footer"]["html"], odd.slots["footer"]["html"]) == ("", "3")
    assert nobody.messages == odd.messages == [
        {"rule": "message", "type": "modal", "title": "Hi ", "body": "fixed body",
         "cta": {"label": "Go", "url": "/x?n="}}]
    assert nobody.push[0] == {"rule": "push-dynamic", "title": "", "body": "", "link": "app://x"}


def test_answers_hold_their_own_json_content() -> None:
    ruleset = load_ruleset([("every-kind.yaml", EVERY_KIND)])
    _, first = answer_of(ruleset, {"type": "page"}, {"traits": {}}, {}, NOW, person(NOW))
    first.slots["recs"]["json"]["nested"][1]["text"] = "changed"
    _, second = answer_of(ruleset, {"type": "page"}, {"traits": {}}, {}, NOW, person(NOW))
    assert second.slots["recs"]["json"]["nested"][1]["text"] == "fixed"


@pytest.mark.parametrize("name", ["corpus", "example"])
def test_whole_rulebooks_answer_with_each_winners_content(name: str) -> None:
    """Each winner's placements, and nothing else, make the answer: a slot holds the
    winner that took it, each message and push belongs to a winner placing one there."""
    if name == "corpus":
        ruleset = load_ruleset(make_corpus(200, 7))
    else:
        ruleset = load_ruleset([(p.name, p.read_text()) for p in CONFIG_RULES.glob("*.yaml")])
    shown = 0
    for (event, profile, context, now), who in make_full_inputs(400, 11):
        selection, rendered = answer_of(ruleset, event, profile, context, now, who)
        slots = {p.action.slot: f.plan.id for f in selection.fired for p in f.placements
                 if isinstance(p.action, SlotAction)}
        assert {slot: content["rule"] for slot, content in rendered.slots.items()} == slots
        for content in rendered.slots.values():
            assert type(content.get("html", "")) is str and content.keys() in (
                {"rule", "html"}, {"rule", "json"})
        for box, channel in ((rendered.messages, "in_app"), (rendered.push, "push")):
            assert [item["rule"] for item in box] == [
                f.plan.id for f in selection.fired for p in f.placements
                if p.channel == channel]
        shown += bool(rendered.slots or rendered.messages or rendered.push)
    assert shown > 100 if name == "corpus" else shown > 0
