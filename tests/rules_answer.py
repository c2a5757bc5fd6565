"""decide → arbitrate → render, as the edge runs them, for tests of the rules package.

The person consents to everything, is reachable everywhere and has no history,
unless a test says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rules import Ruleset
from rules.arbitration import Person
from rules.definitions import CHANNELS, PURPOSES
from rules.render import render

EVERYTHING = {name: True for name in (*PURPOSES, *CHANNELS)}


@dataclass
class Answer:
    slots: dict
    messages: list
    push: list
    segments: list
    set_traits: dict
    add_tags: list
    outbound: list = field(default_factory=list)
    trace: dict = field(default_factory=dict)  # rule id -> its outcome in words
    exposures: list = field(default_factory=list)


def person(now: int, **overrides: Any) -> Person:
    values: dict[str, Any] = dict(
        profile_id="p1", now_ms=now, weekday="tue", minute=12 * 60, consent=EVERYTHING,
        deliveries={}, variants={}, reachable=frozenset(CHANNELS))
    values.update(overrides)
    return Person(**values)


def full_answer(ruleset: Ruleset, event: Any, profile: Any, context: Any, now: int,
                who: Person | None = None) -> Answer:
    decision = ruleset.decide(event, profile, context, now)
    selection = ruleset.arbiter.select(decision.segments, decision.candidates, who or person(now))
    profile = profile if isinstance(profile, dict) else {}
    variables = {"event": event, "profile": profile, "traits": profile.get("traits"),
                 "cart": profile.get("cart"), "aggregates": profile.get("aggregates"),
                 "context": context, "segments": decision.segments, "now": now}
    timezone = context.get("timezone") if isinstance(context, dict) else None
    rendered = render(selection, variables, None, timezone)
    traits, tags = selection.traits_and_tags()
    return Answer(rendered.slots, rendered.messages, rendered.push, decision.segments,
                  traits, tags, rendered.outbound,
                  {rule: outcome.text() for rule, outcome in selection.trace.items()},
                  selection.exposures)
