"""rules.arbitration decides exactly as the plain reference (tests/arbitration_reference.py) does.

Candidates, scores and people are drawn at random: any subset of the rules in
any person's situation (consent, addresses, delivery history, stored variants,
clock), over three rulebooks: the benchmark's 200-rule corpus, the example
configuration, and one written here to reach every branch (notify with several
channels, schedules, groups, scores, repeated slots, caps on every level).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from hypothesis import given, settings, strategies as st

from bench.rule_corpus import make_corpus, make_full_inputs
from rules import Ruleset, load_ruleset
from rules.arbitration import Person, Selection
from rules.localtime import WEEKDAYS
from rules.outcomes import Kind, Outcome
from tests.arbitration_reference import ReferenceArbiter

NOW = 1_700_000_000_000
HOUR, DAY = 3_600_000, 86_400_000
CHANNELS = ("web", "in_app", "push", "email", "sms", "whatsapp")
PURPOSES = ("personalization", "marketing")
CONFIG_RULES = Path(__file__).resolve().parents[1] / "config" / "rules"

EVERY_BRANCH = """
experiments:
  - id: hero-test
    salt: s1
    variants: { a: 50, b: 30 }
    control: 20
policy:
  max_messages: 2
  channel_order: [push, email, in_app, sms]
  quiet_hours: "22:00-07:00"
  caps:
    web: [{ max: 4, per: 1d }]
    in_app: [{ max: 2, per: 1d }]
    push: [{ max: 1, per: 6h }]
    email: [{ max: 1, per: 1d }]
    global: [{ max: 3, per: 1d }, { max: 2, per: 1h }]
rules:
  - id: hero-a
    on: page
    priority: 9
    experiment: hero-test
    variant: a
    actions: [{ slot: hero, html: "A {{ traits.name }}" }]
  - id: hero-b
    on: page
    priority: 9
    experiment: hero-test
    variant: b
    actions: [{ slot: hero, html: B }, { tag: saw-b }]
  - id: twice
    on: page
    priority: 8
    score: event.properties.n
    actions: [{ slot: hero, html: one }, { slot: hero, html: two }, { slot: side, html: s }]
  - id: offer-1
    on: page
    priority: 7
    group: offers
    score: 2
    cap: [{ max: 1, per: 1d }, { max: 1, per: 1h }]
    actions: [{ message: { type: banner, title: one } }, { push: { title: one } }]
  - id: offer-2
    on: page
    priority: 7
    group: offers
    score: 3
    purpose: marketing
    actions: [{ message: { type: modal, title: two } }, { set_trait: { offered: true } }]
  - id: reach
    on: page
    priority: 6
    purpose: marketing
    cap: { max: 2, per: 7d }
    actions:
      - notify: { channels: [email, push, in_app, sms], title: hello, body: there }
  - id: weekdays
    on: page
    priority: 5
    schedule: { days: [mon, tue, wed], hours: "09:00-17:00" }
    actions: [{ message: { type: toast, title: work hours } }]
  - id: quiet
    on: page
    priority: 5
    schedule: { quiet_hours: "12:00-13:00" }
    actions: [{ push: { title: not at lunch } }, { slot: side, html: side }]
  - id: plain
    on: page
    actions: [{ slot: side, html: p }, { slot: footer, html: f }, { tag: plain }]
  - id: tags-only
    on: page
    actions: [{ tag: seen }]
  - id: two-messages
    on: page
    priority: 1
    cap: { max: 3, per: 1d }
    actions: [{ message: { type: toast, title: x } }, { message: { type: toast, title: y } }]
"""


@cache
def rulebook(name: str) -> Ruleset:
    if name == "corpus":
        return load_ruleset(make_corpus(200, 7))
    if name == "example":
        return load_ruleset([(path.name, path.read_text()) for path in CONFIG_RULES.glob("*.yaml")])
    return load_ruleset([("every-branch.yaml", EVERY_BRANCH)])


def cap_keys(ruleset: Ruleset) -> list[str]:
    keys = [key for plan in ruleset.plans for key, _, _ in plan.caps]
    keys += [key for caps in ruleset.arbiter.checks.channel_caps.values() for key, _, _ in caps]
    return sorted(set(keys)) or ["global"]


@st.composite
def situations(draw: st.DrawFn) -> tuple[Ruleset, list[tuple[int, float]], Person]:
    ruleset = rulebook(draw(st.sampled_from(["corpus", "example", "every-branch"])))
    count = len(ruleset.plans)
    positions = draw(st.lists(st.integers(0, count - 1), unique=True, max_size=min(count, 25)))
    # A rule without a score expression always scores 0.
    scores = [draw(st.sampled_from([0.0, 1.0, 2.5, -1.0]))
              if ruleset.plans[p].rule.score is not None else 0.0 for p in positions]
    # decide() lists candidates in arbitration order; select() takes them as given.
    candidates = ReferenceArbiter(ruleset.plans, ruleset.policy).order(
        list(zip(positions, scores, strict=True)))
    keys = cap_keys(ruleset)
    # Mostly recent deliveries, so that caps are often full.
    times = st.one_of(st.integers(NOW - HOUR, NOW), st.integers(NOW - 8 * DAY, NOW))
    deliveries = draw(st.dictionaries(st.sampled_from(keys), st.lists(times, max_size=4),
                                      max_size=4))
    experiments = sorted({plan.experiment.id for plan in ruleset.plans if plan.experiment})
    variants = draw(st.dictionaries(st.sampled_from(experiments or ["none"]),
                                    st.sampled_from(["a", "b", "control", "gone"]), max_size=2))
    # Mostly consenting and reachable, so that the later checks are reached too.
    usually = st.sampled_from([True, True, True, False])
    consent = {name: draw(usually) for name in (*PURPOSES, *CHANNELS)}
    reachable = [channel for channel in CHANNELS if draw(usually)]
    person = Person(
        profile_id=draw(st.sampled_from(["user:1", "anon:x", "user:eva", "email:e"])),
        now_ms=NOW,
        weekday=draw(st.sampled_from(WEEKDAYS)),
        minute=draw(st.integers(0, 1439)),
        consent=consent,
        deliveries=deliveries,
        variants=variants,
        reachable=frozenset(reachable),
        preferred_channel=draw(st.sampled_from([None, *CHANNELS])),
        last_channel=draw(st.sampled_from([None, *CHANNELS])),
    )
    return ruleset, candidates, person


def outcome(selection: Selection) -> dict:
    return {
        "fired": [(f.plan.id, [(id(p.action), p.channel) for p in f.placements], f.variant,
                   sorted(f.caps)) for f in selection.fired],
        "trace": selection.trace,
        "exposures": selection.exposures,
        "variants": selection.variants,
        "new_variants": selection.new_variants,
        "traits_and_tags": selection.traits_and_tags(),
    }


@settings(max_examples=400, deadline=None)
@given(situations())
def test_arbitration_equals_the_reference(situation) -> None:
    ruleset, candidates, person = situation
    reference = ReferenceArbiter(ruleset.plans, ruleset.policy)
    fast = ruleset.arbiter.select(["s"], candidates, person)
    plain = reference.select(["s"], candidates, person)
    assert outcome(fast) == outcome(plain)


def test_the_drawn_situations_reach_every_outcome() -> None:
    """The comparison above is only as good as its inputs: they must fire rules, and lose
    them to every kind of check."""
    seen: set[Kind] = set()

    def kinds(outcome: Outcome) -> None:
        seen.add(outcome.kind)
        for reason in outcome.reasons:
            kinds(reason)

    @settings(max_examples=600, deadline=None, database=None, derandomize=True)
    @given(situations())
    def collect(situation) -> None:
        ruleset, candidates, person = situation
        for outcome in ruleset.arbiter.select([], candidates, person).trace.values():
            kinds(outcome)

    collect()
    assert seen == set(Kind)


def test_two_deliveries_of_one_rule_count_twice_against_a_shared_cap() -> None:
    """offer-1 sends a message and a push; each fits the global 2-an-hour cap alone, but
    with one delivery already in the hour, both together do not."""
    ruleset = rulebook("every-branch")
    position = next(i for i, plan in enumerate(ruleset.plans) if plan.id == "offer-1")
    person = Person(profile_id="user:1", now_ms=NOW, weekday="mon", minute=600,
                    consent={name: True for name in (*PURPOSES, *CHANNELS)},
                    deliveries={"global": [NOW - 60_000]}, variants={},
                    reachable=frozenset(CHANNELS))
    fast = ruleset.arbiter.select([], [(position, 2.0)], person)
    assert fast.trace == {"offer-1": Outcome(Kind.CAP, cap="global", per_ms=HOUR, most=2)}
    assert fast.trace["offer-1"].text() == "cap global: 2 per 1h reached"
    assert outcome(fast) == outcome(
        ReferenceArbiter(ruleset.plans, ruleset.policy).select([], [(position, 2.0)], person))


def test_decide_lists_candidates_in_arbitration_order() -> None:
    """Candidates come out of decide() by priority, then score, then id: select() takes
    them as given. The corpus has scored rules sharing a priority with others."""
    ruleset = rulebook("corpus")
    reference = ReferenceArbiter(ruleset.plans, ruleset.policy)
    reordered = 0
    for (event, profile, context, now), _ in make_full_inputs(2000, 11):
        candidates = ruleset.decide(event, profile, context, now).candidates
        assert candidates == reference.order(candidates)
        plans = ruleset.plans
        by_priority_only = sorted(candidates, key=lambda c: (-plans[c[0]].rule.priority,
                                                             plans[c[0]].id))
        reordered += candidates != by_priority_only
    assert reordered > 0  # the scores did change the order somewhere
