"""Decisions end to end: HTTP in, a real Redis, a fake clock, answers and stored state out.

Arbitration (priority, score, groups, the message limit), frequency caps, experiments,
templates, consent, channel choice, schedules and catalog content. Each test starts an
edge with the few rules it is about; `tests/test_caps_property.py` checks the caps
against random sequences of events.

Tests named `test_bug_*` show a defect that is reported, not fixed here: they fail
until the product code is fixed.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any, Callable, Iterator
from zoneinfo import ZoneInfo

import pytest

import rules
from rules import check_documents, load_ruleset
from edge.store import streams
from rules.experiments import assign
from tests.support import SECRET_KEY, SETTINGS_YAML, LiveEdge, basic, write_config

STREAM = "kairos:events"
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
NEW_YORK = "America/New_York"


# -- helpers ---------------------------------------------------------------------------------

@pytest.fixture
def start(redis_url, tmp_path) -> Iterator[Callable[..., LiveEdge]]:
    """start(rules_yaml, settings_yaml=...) runs an edge; every one stops when the test ends."""
    numbers = itertools.count()
    with ExitStack() as stack:
        def start_edge(rules_yaml: str, settings_yaml: str = SETTINGS_YAML) -> LiveEdge:
            config = write_config(tmp_path / f"config-{next(numbers)}", rules_yaml, settings_yaml)
            return stack.enter_context(LiveEdge(config, redis_url))
        yield start_edge


def ok(response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def page(edge: LiveEdge, who: str, **fields: Any) -> dict[str, Any]:
    return ok(edge.post("/v1/page", {"anonymousId": who, **fields}))


def track(edge: LiveEdge, who: str, name: str, properties: dict | None = None,
          **fields: Any) -> dict[str, Any]:
    return ok(edge.post("/v1/track", {"anonymousId": who, "event": name,
                                      "properties": properties or {}, **fields}))


def identify(edge: LiveEdge, who: str, **traits: Any) -> dict[str, Any]:
    return ok(edge.post("/v1/identify", {"anonymousId": who, "traits": traits}))


def profile(edge: LiveEdge, identifier: str) -> dict[str, Any]:
    return ok(edge.profile(identifier))


def slot_rules(answer: dict[str, Any]) -> dict[str, str]:
    return {name: slot["rule"] for name, slot in answer["slots"].items()}


def message_rules(answer: dict[str, Any]) -> list[str]:
    return [message["rule"] for message in answer["messages"]]


def push_rules(answer: dict[str, Any]) -> list[str]:
    return [push["rule"] for push in answer["push"]]


def records(redis_client, kind: type, profile_id: str | None = None) -> list[Any]:
    """The edge's records of one type (of one profile), oldest first, decoded as every
    reader decodes them: messages from the outbox, the rest from the event stream."""
    key = streams.OUTBOX if kind is streams.OutboundMessage else STREAM
    found = (streams.decode(fields) for _, fields in redis_client.xrange(key))
    return [r for r in found
            if isinstance(r, kind) and (profile_id is None or r.profile_id == profile_id)]


def at_local(edge: LiveEdge, text: str, zone: str = NEW_YORK) -> int:
    """Moves the fake clock to a wall-clock time ("2026-12-08 09:00") in a zone."""
    moment = datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))
    edge.clock.set(int(moment.timestamp() * 1000))
    return edge.clock.now_ms()


def with_site_setting(line: str) -> str:
    """The test settings with one more line in the shop site (indented like its keys)."""
    anchor = "    timezone: Europe/Prague\n"
    assert anchor in SETTINGS_YAML
    return SETTINGS_YAML.replace(anchor, anchor + f"    {line}\n", 1)


# -- 1. arbitration --------------------------------------------------------------------------

ARBITRATION_RULES = """
aggregates:
  views_7d: { count: Product Viewed, window: 7d }
policy:
  max_messages: 2
rules:
  - id: hero-fallback
    on: page
    priority: 1
    actions: [{ slot: hero, html: fallback }]
  - id: hero-a-fixed
    on: page
    priority: 5
    score: 2
    actions: [{ slot: hero, html: fixed }]
  - id: hero-b-views
    on: page
    priority: 5
    score: aggregates.views_7d
    actions: [{ slot: hero, html: views }]
  - id: hero-vip
    on: page
    priority: 9
    when: traits.vip == true
    actions: [{ slot: hero, html: vip }]
  - id: promo-banner
    on: page
    priority: 3
    group: promo
    actions: [{ slot: banner, html: banner }]
  - id: promo-sidebar
    on: page
    priority: 2
    group: promo
    actions: [{ slot: sidebar, html: sidebar }]
  - id: footer
    on: page
    actions: [{ slot: footer, html: footer }]
  - id: msg-high
    on: Browse
    priority: 30
    actions: [{ message: { type: toast, title: high } }]
  - id: msg-mid
    on: Browse
    priority: 20
    actions: [{ message: { type: toast, title: mid } }]
  - id: msg-low
    on: Browse
    priority: 10
    actions: [{ message: { type: toast, title: low } }]
  - id: sale-first
    on: Sale
    priority: 20
    group: sale
    actions: [{ message: { type: banner, title: first } }]
  - id: sale-second
    on: Sale
    priority: 10
    group: sale
    actions: [{ message: { type: banner, title: second } }]
  - id: sale-other
    on: Sale
    priority: 5
    actions: [{ message: { type: banner, title: other } }]
"""


def view_products(edge: LiveEdge, who: str, count: int) -> None:
    for number in range(count):
        track(edge, who, "Product Viewed", {"product_id": f"p{number}"})


def test_slot_goes_to_the_highest_priority_then_the_highest_score(start):
    edge = start(ARBITRATION_RULES)
    # priority 5 beats 1; among priority 5, score 2 beats score 0 (no views yet)
    assert slot_rules(page(edge, "arb-1"))["hero"] == "hero-a-fixed"
    view_products(edge, "arb-1", 2)  # equal scores (2 and 2): the smaller id
    assert slot_rules(page(edge, "arb-1"))["hero"] == "hero-a-fixed"
    view_products(edge, "arb-1", 1)  # 3 views: the score expression now wins
    assert slot_rules(page(edge, "arb-1"))["hero"] == "hero-b-views"
    identify(edge, "arb-1", vip=True)  # a higher priority beats any score
    assert slot_rules(page(edge, "arb-1"))["hero"] == "hero-vip"


def test_a_group_has_at_most_one_winner_per_answer(start):
    edge = start(ARBITRATION_RULES)
    slots = slot_rules(page(edge, "grp-1"))
    assert slots["banner"] == "promo-banner"
    assert "sidebar" not in slots  # another slot, but the same group
    assert slots["footer"] == "footer"  # rules outside the group are unaffected


def test_a_group_applies_to_messages_too(start):
    edge = start(ARBITRATION_RULES)
    assert message_rules(track(edge, "grp-2", "Sale")) == ["sale-first", "sale-other"]


def test_at_most_max_messages_in_app_messages_by_priority(start):
    edge = start(ARBITRATION_RULES)
    answer = track(edge, "max-1", "Browse")
    assert message_rules(answer) == ["msg-high", "msg-mid"]
    assert [m["title"] for m in answer["messages"]] == ["high", "mid"]


def test_same_inputs_give_the_same_answer(start):
    edge = start(ARBITRATION_RULES)
    answers = {}
    for who in ("same-1", "same-2"):
        edge.clock.set(1_767_225_600_000)
        view_products(edge, who, 2)
        answers[who] = [page(edge, who), page(edge, who),
                        track(edge, who, "Browse"), track(edge, who, "Sale")]
    for answer in itertools.chain(*answers.values()):
        answer.pop("profileId")
    first, second = answers["same-1"], answers["same-2"]
    assert first == second
    assert first[0] == first[1]  # the same person, asking again


# -- 2. frequency caps -----------------------------------------------------------------------

RULE_CAP_RULES = """
rules:
  - id: weekly-offer
    on: Visit
    priority: 10
    cap: { max: 1, per: 7d }
    actions: [{ message: { type: banner, title: "Offer of the week" } }]
  - id: everyday-tip
    on: Visit
    priority: 1
    actions: [{ message: { type: banner, title: "Tip" } }]
"""

CHANNEL_CAP_RULES = """
policy:
  caps:
    in_app: [{ max: 3, per: 1d }]
    push: [{ max: 1, per: 6h }]
    global: [{ max: 4, per: 1d }]
rules:
  - id: nudge
    on: Browse
    actions: [{ message: { type: toast, title: Nudge } }]
  - id: browse-hint
    on: Browse
    actions: [{ slot: hint, html: hint }]
  - id: ping
    on: Ping
    actions: [{ push: { title: Ping } }]
"""


def reachable_by_push(edge: LiveEdge, who: str, **traits: Any) -> None:
    identify(edge, who, push_token="token-1", consent={"push": True}, **traits)


def test_rule_cap_fires_once_then_gives_way_until_the_window_passes(start):
    edge = start(RULE_CAP_RULES)
    first = edge.clock.now_ms()
    assert message_rules(track(edge, "cap-1", "Visit")) == ["weekly-offer"]
    # capped: the lower-priority message shows instead
    assert message_rules(track(edge, "cap-1", "Visit")) == ["everyday-tip"]
    edge.clock.advance(7 * DAY - 1)
    assert message_rules(track(edge, "cap-1", "Visit")) == ["everyday-tip"]
    edge.clock.advance(1)
    assert message_rules(track(edge, "cap-1", "Visit")) == ["weekly-offer"]
    deliveries = profile(edge, "anon:cap-1")["deliveries"]
    # kept in Redis, pruned to the longest window: the first delivery has gone
    assert deliveries["rule:weekly-offer"] == [first + 7 * DAY]


def test_rule_cap_is_per_person(start):
    edge = start(RULE_CAP_RULES)
    assert message_rules(track(edge, "cap-2", "Visit")) == ["weekly-offer"]
    assert message_rules(track(edge, "cap-3", "Visit")) == ["weekly-offer"]


def test_delivery_history_and_consent_survive_a_merge(start):
    edge = start(RULE_CAP_RULES)
    ok(edge.post("/v1/identify", {"userId": "cap-user", "traits": {"consent": {"email": True}}}))
    identify(edge, "cap-anon", consent={"marketing": True, "source": "banner"})
    edge.clock.advance(MINUTE)
    first = edge.clock.now_ms()
    assert message_rules(track(edge, "cap-anon", "Visit")) == ["weekly-offer"]
    ok(edge.post("/v1/identify", {"userId": "cap-user", "anonymousId": "cap-anon"}))
    merged = profile(edge, "user:cap-user")
    assert merged["id"] == "user:cap-user"
    assert merged["deliveries"]["rule:weekly-offer"] == [first]
    assert set(merged["consent"]) == {"email", "marketing"}
    assert merged["consent"]["marketing"]["source"] == "banner"
    # the customer already had this week's offer, on the other device
    answer = ok(edge.post("/v1/track", {"userId": "cap-user", "event": "Visit"}))
    assert message_rules(answer) == ["everyday-tip"]


@pytest.mark.parametrize("other_event", [
    {"event": "Message Clicked"},  # engagement
    {"event": "Consent Updated", "properties": {"email": True}},  # consent
])
def test_a_write_without_deliveries_keeps_the_cap_history(start, other_event):
    """Any write of delivery state without a delivery (an engagement event such as the
    snippet's "Message Shown", a consent answer, a new experiment variant) erases every
    delivery time: edge/pipeline.py sets OutcomeWrite.horizon_ms only when the answer
    has deliveries, so edge/store/effects.lua prunes with a horizon of 0."""
    edge = start(RULE_CAP_RULES)
    first = edge.clock.now_ms()
    assert message_rules(track(edge, "cap-4", "Visit")) == ["weekly-offer"]
    edge.clock.advance(MINUTE)
    ok(edge.post("/v1/track", {"anonymousId": "cap-4", **other_event}))
    assert profile(edge, "anon:cap-4")["deliveries"] == {"rule:weekly-offer": [first]}
    assert message_rules(track(edge, "cap-4", "Visit")) == ["everyday-tip"]


def test_a_batched_event_uses_no_cap_for_content_nobody_sees(start):
    """/v1/batch answers carry no decisions (the snippet batches every event but page
    views), so a batched event must not count an in-app message towards the caps."""
    edge = start(RULE_CAP_RULES)
    ok(edge.post("/v1/batch", {"batch": [
        {"type": "track", "anonymousId": "bat-1", "event": "Visit"}]}))
    assert message_rules(track(edge, "bat-1", "Visit")) == ["weekly-offer"]


def test_a_retried_event_shows_nothing_more(start):
    """A retry (the same messageId, after a lost response) is answered without content:
    deciding it again against the history the first attempt wrote would show another
    message without counting it, and a person could see more than the caps allow."""
    edge = start(RULE_CAP_RULES)
    first = track(edge, "retry-1", "Visit", messageId="visit-1")
    assert message_rules(first) == ["weekly-offer"]
    again = track(edge, "retry-1", "Visit", messageId="visit-1")
    assert again["duplicate"] is True
    assert again["messages"] == [] and again["slots"] == {}
    assert list(profile(edge, "anon:retry-1")["deliveries"]) == ["rule:weekly-offer"]


def test_in_app_channel_cap_per_day(start):
    edge = start(CHANNEL_CAP_RULES)
    first = edge.clock.now_ms()
    for _ in range(3):
        assert message_rules(track(edge, "ch-1", "Browse")) == ["nudge"]
        edge.clock.advance(HOUR)
    answer = track(edge, "ch-1", "Browse")
    assert answer["messages"] == []
    assert slot_rules(answer) == {"hint": "browse-hint"}  # web content is not capped
    edge.clock.set(first + DAY)
    assert message_rules(track(edge, "ch-1", "Browse")) == ["nudge"]
    stored = profile(edge, "anon:ch-1")["deliveries"]
    assert stored["channel:in_app"] == [first + HOUR, first + 2 * HOUR, first + DAY]


def test_push_channel_cap_per_six_hours(start):
    edge = start(CHANNEL_CAP_RULES)
    reachable_by_push(edge, "ch-2")
    assert push_rules(track(edge, "ch-2", "Ping")) == ["ping"]
    edge.clock.advance(6 * HOUR - 1)
    assert track(edge, "ch-2", "Ping")["push"] == []
    edge.clock.advance(1)
    assert push_rules(track(edge, "ch-2", "Ping")) == ["ping"]


def test_global_cap_counts_every_channel_but_web(start):
    edge = start(CHANNEL_CAP_RULES)
    reachable_by_push(edge, "ch-3")
    for _ in range(3):
        assert message_rules(track(edge, "ch-3", "Browse")) == ["nudge"]
    assert push_rules(track(edge, "ch-3", "Ping")) == ["ping"]  # 4 of 4 today
    edge.clock.advance(6 * HOUR)  # the push cap has room again, the global one not
    assert track(edge, "ch-3", "Ping")["push"] == []
    edge.clock.advance(18 * HOUR)
    assert push_rules(track(edge, "ch-3", "Ping")) == ["ping"]
    assert len(profile(edge, "anon:ch-3")["deliveries"]["global"]) == 1


def test_a_rule_with_two_caps_obeys_both(start):
    """`cap: [{max: 2, per: 1d}, {max: 1, per: 2h}]`: one delivery counts once under each
    cap (it used to count once per cap listed for the key, so the rule never fired)."""
    edge = start("""
rules:
  - id: twice-a-day
    on: Visit
    cap: [{ max: 2, per: 1d }, { max: 1, per: 2h }]
    actions: [{ message: { type: toast, title: Hi } }]
""")
    assert message_rules(track(edge, "two-1", "Visit")) == ["twice-a-day"]
    assert track(edge, "two-1", "Visit")["messages"] == []  # 1 per 2 hours
    edge.clock.advance(2 * HOUR)
    assert message_rules(track(edge, "two-1", "Visit")) == ["twice-a-day"]
    edge.clock.advance(2 * HOUR)
    assert track(edge, "two-1", "Visit")["messages"] == []  # 2 a day


def test_one_delivery_counts_once_under_two_global_caps(start):
    """`global: [{max: 5, per: 1d}, {max: 2, per: 1h}]`: one message is one delivery,
    checked under both caps and stored once (it used to be stored once per cap)."""
    edge = start("""
policy:
  caps:
    global: [{ max: 5, per: 1d }, { max: 2, per: 1h }]
rules:
  - id: nudge
    on: Browse
    actions: [{ message: { type: toast, title: Nudge } }]
""")
    first = edge.clock.now_ms()
    assert message_rules(track(edge, "two-2", "Browse")) == ["nudge"]
    assert profile(edge, "anon:two-2")["deliveries"]["global"] == [first]
    edge.clock.advance(MINUTE)
    assert message_rules(track(edge, "two-2", "Browse")) == ["nudge"]
    assert track(edge, "two-2", "Browse")["messages"] == []  # 2 an hour


# -- 3. experiments --------------------------------------------------------------------------

EXPERIMENT_RULES = """
experiments:
  - id: hero-test
    variants: { a: 50, b: 30 }
    control: 20
rules:
  - id: hero-a
    on: page
    experiment: hero-test
    variant: a
    actions: [{ slot: hero, html: "A" }]
  - id: hero-b
    on: page
    experiment: hero-test
    variant: b
    actions: [{ slot: hero, html: "B" }]
"""
HERO_RULE = {"a": "hero-a", "b": "hero-b", "control": None}


def hero_experiment():
    ruleset = rules.load_ruleset([("rules/test.yaml", EXPERIMENT_RULES)])
    return ruleset.experiments["hero-test"]


def test_variant_weights_hold_over_many_people():
    experiment = hero_experiment()
    people = 2000
    counts = Counter(assign(experiment, f"anon:visitor-{n}") for n in range(people))
    total = sum(weight for _, weight in experiment.variants)
    assert set(counts) == {"a", "b", "control"}
    for name, weight in experiment.variants:
        share = weight / total
        spread = math.sqrt(people * share * (1 - share))
        assert abs(counts[name] - people * share) < 4 * spread, (name, counts)


def test_assignment_depends_on_the_salt_and_the_profile_id_only():
    experiment = hero_experiment()
    ids = [f"anon:visitor-{n}" for n in range(200)]
    assert [assign(experiment, i) for i in ids] == [assign(hero_experiment(), i) for i in ids]
    salted = type(experiment)(experiment.id, "another salt", experiment.variants, experiment.origin)
    assert [assign(experiment, i) for i in ids] != [assign(salted, i) for i in ids]


def test_each_person_keeps_one_variant_across_events(start):
    edge = start(EXPERIMENT_RULES)
    experiment = hero_experiment()
    seen = Counter()
    for n in range(50):
        who = f"exp-{n}"
        expected = assign(experiment, f"anon:{who}")
        seen[expected] += 1
        for _ in range(3):
            assert slot_rules(page(edge, who)).get("hero") == HERO_RULE[expected], who
        assert profile(edge, f"anon:{who}")["experiments"] == {"hero-test": expected}
    assert set(seen) == {"a", "b", "control"}


def test_exposures_and_control_non_exposures_go_to_the_stream(start, redis_client):
    edge = start(EXPERIMENT_RULES)
    experiment = hero_experiment()
    people = {assign(experiment, f"anon:str-{n}"): f"str-{n}" for n in range(40)}
    assert set(people) == {"a", "b", "control"}
    for variant, who in people.items():
        page(edge, who)
        page(edge, who)
        exposures = records(redis_client, streams.Exposure, f"anon:{who}")
        assert exposures, variant
        for exposure in exposures:
            assert exposure.experiment == "hero-test"
            assert exposure.variant == variant
            assert exposure.exposed is (variant != "control")
            if variant == "control":
                assert exposure.rule in ("hero-a", "hero-b")
            else:
                assert exposure.rule == HERO_RULE[variant]
        assert len(exposures) >= 2  # at least one per page
        if variant != "control":
            assert len(exposures) == 2  # one per page shown


def test_a_control_person_is_recorded_once_per_answer(start, redis_client):
    """Like a person in a variant, a person in the control group gets one "Experiment
    Viewed" per answer, not one per rule of the experiment (which doubled the control
    group in counts of exposures)."""
    edge = start(EXPERIMENT_RULES)
    experiment = hero_experiment()
    who = next(f"ctl-{n}" for n in itertools.count()
               if assign(experiment, f"anon:ctl-{n}") == "control")
    page(edge, who)
    assert len(records(redis_client, streams.Exposure, f"anon:{who}")) == 1


def differing_people(experiment) -> tuple[str, str]:
    """An anonymous id and a user id whose own hashes give different shown variants."""
    for n in itertools.count():
        anonymous, user = f"merge-anon-{n}", f"merge-user-{n}"
        mine, theirs = assign(experiment, f"anon:{anonymous}"), assign(experiment, f"user:{user}")
        if "control" not in (mine, theirs) and mine != theirs:
            return anonymous, user
    raise AssertionError("unreachable")


def test_a_person_keeps_the_variant_after_a_merge(start):
    edge = start(EXPERIMENT_RULES)
    experiment = hero_experiment()
    anonymous, user = differing_people(experiment)
    mine = assign(experiment, f"anon:{anonymous}")
    # the customer's own profile exists (with no variant yet) before the visitor logs in
    ok(edge.post("/v1/identify", {"userId": user, "traits": {"first_name": "Mia"}}))
    assert slot_rules(page(edge, anonymous))["hero"] == HERO_RULE[mine]
    # logging in, signed by the site's server: the anonymous profile merges into the customer's
    ok(edge.post("/v1/identify", {"userId": user, "anonymousId": anonymous}))
    merged = profile(edge, f"user:{user}")
    assert merged["id"] == f"user:{user}"
    assert profile(edge, f"anon:{anonymous}")["id"] == f"user:{user}"
    assert merged["experiments"] == {"hero-test": mine}
    answer = ok(edge.post("/v1/page", {"userId": user}))
    assert slot_rules(answer)["hero"] == HERO_RULE[mine]


# -- 4. templates ----------------------------------------------------------------------------

TEMPLATE_RULES = """
rules:
  - id: greeting
    on: page
    actions:
      - slot: hero
        html: "<p>Hi {{ traits.first_name | default('friend') }}</p>"
      - message:
          type: banner
          title: "Hi {{ traits.first_name | default('friend') }}"
          body: "Balance {{ traits.balance | money('EUR') }}, member since {{ traits.member_since | date }}"
"""
SCRIPT = '<script>alert("x")</script>'


def test_html_slot_escapes_profile_values(start):
    edge = start(TEMPLATE_RULES)
    identify(edge, "tpl-1", first_name=SCRIPT)
    html = page(edge, "tpl-1")["slots"]["hero"]["html"]
    assert html == "<p>Hi &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</p>"


def test_message_shows_profile_values_as_text(start):
    edge = start(TEMPLATE_RULES)
    identify(edge, "tpl-2", first_name=SCRIPT)
    # not escaped: clients insert message text as text (textContent), never as HTML
    assert page(edge, "tpl-2")["messages"][0]["title"] == f"Hi {SCRIPT}"


def test_money_and_dates_in_the_persons_locale(start):
    edge = start(TEMPLATE_RULES)
    identify(edge, "tpl-de", locale="de", balance=1234.5, member_since="2026-03-05")
    identify(edge, "tpl-en", balance=1234.5, member_since="2026-03-05")
    german = page(edge, "tpl-de")["messages"][0]["body"]
    english = page(edge, "tpl-en")["messages"][0]["body"]
    assert german == "Balance 1.234,50\xa0€, member since 05.03.2026"
    assert english == "Balance €1,234.50, member since Mar 5, 2026"


def test_a_missing_value_uses_the_default(start):
    edge = start(TEMPLATE_RULES)
    answer = page(edge, "tpl-3")
    assert answer["slots"]["hero"]["html"] == "<p>Hi friend</p>"
    assert answer["messages"][0]["title"] == "Hi friend"
    # no balance or date: the filters give empty text, never an error
    assert answer["messages"][0]["body"] == "Balance , member since "


def test_context_locale_is_used_without_a_locale_trait(start):
    """Segment's `context.locale` formats content when the person has no `locale` trait."""
    edge = start(TEMPLATE_RULES)
    identify(edge, "tpl-4", balance=1234.5)
    answer = page(edge, "tpl-4", context={"locale": "de-DE"})
    assert answer["messages"][0]["body"].startswith("Balance 1.234,50\xa0€")


# -- 5. consent ------------------------------------------------------------------------------

CONSENT_RULES = """
rules:
  - id: newsletter-offer
    on: page
    purpose: marketing
    actions: [{ slot: offer, html: "Subscribe" }]
  - id: welcome
    on: page
    actions: [{ slot: hero, html: "Welcome" }]
  - id: thanks-for-subscribing
    on: identify
    purpose: marketing
    actions: [{ slot: thanks, html: "Thanks" }]
"""


def test_marketing_rule_waits_for_consent(start):
    edge = start(CONSENT_RULES)
    assert slot_rules(page(edge, "con-1")) == {"hero": "welcome"}
    identify(edge, "con-1", consent={"marketing": True, "source": "banner"})
    assert slot_rules(page(edge, "con-1")) == {"hero": "welcome", "offer": "newsletter-offer"}


def test_consent_given_with_an_event_counts_for_its_answer(start):
    edge = start(CONSENT_RULES)
    assert identify(edge, "con-7", first_name="Ada")["slots"] == {}
    answer = identify(edge, "con-7", consent={"marketing": True})
    assert slot_rules(answer) == {"thanks": "thanks-for-subscribing"}


def test_consent_updated_event_withdraws_consent(start):
    edge = start(CONSENT_RULES)
    identify(edge, "con-2", consent={"marketing": True})
    assert "offer" in page(edge, "con-2")["slots"]
    edge.clock.advance(MINUTE)
    track(edge, "con-2", "Consent Updated", {"marketing": False, "source": "preference centre"})
    assert "offer" not in page(edge, "con-2")["slots"]


def test_profile_shows_consent_with_time_and_source(start):
    edge = start(CONSENT_RULES)
    given = edge.clock.now_ms()
    identify(edge, "con-3", consent={"marketing": True, "email": False, "source": "banner"})
    edge.clock.advance(HOUR)
    changed = edge.clock.now_ms()
    track(edge, "con-3", "Consent Updated", {"email": True})
    stored = profile(edge, "anon:con-3")
    assert stored["consent"] == {
        "marketing": {"granted": True, "at": given, "source": "banner"},
        "email": {"granted": True, "at": changed, "source": "consent event"},
    }
    assert "consent" not in stored["traits"]


def test_an_older_consent_answer_does_not_replace_a_newer_one(start):
    edge = start(CONSENT_RULES)
    identify(edge, "con-4", consent={"marketing": True})
    earlier = datetime.fromtimestamp((edge.clock.now_ms() - HOUR) / 1000, UTC)
    track(edge, "con-4", "Consent Updated", {"marketing": False}, timestamp=earlier.isoformat())
    assert profile(edge, "anon:con-4")["consent"]["marketing"]["granted"] is True
    assert "offer" in page(edge, "con-4")["slots"]


@pytest.mark.parametrize("body, field", [
    ({"type": "identify", "traits": {"consent": {"marketting": True}}}, "traits.consent.marketting"),
    ({"type": "identify", "traits": {"consent": {"marketing": "yes"}}}, "traits.consent.marketing"),
    ({"type": "identify", "traits": {"consent": True}}, "traits.consent"),
    ({"type": "identify", "traits": {"consent": {"source": "banner"}}}, "traits.consent"),
    ({"type": "identify", "traits": {"consent": {"email": True, "source": ""}}},
     "traits.consent.source"),
    ({"type": "track", "event": "Consent Updated", "properties": {"sms": 1}}, "properties.sms"),
])
def test_bad_consent_is_a_400_naming_the_field(start, body, field):
    edge = start(CONSENT_RULES)
    response = edge.post("/v1/e", {"anonymousId": "con-bad", **body})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert edge.profile("anon:con-bad").status_code == 404  # nothing was stored


def test_site_consent_defaults_change_the_defaults(start):
    edge = start(CONSENT_RULES, with_site_setting("consent_defaults: { marketing: true }"))
    assert "offer" in page(edge, "con-5")["slots"]
    identify(edge, "con-5", consent={"marketing": False})  # an answer still wins
    assert "offer" not in page(edge, "con-5")["slots"]


def test_site_consent_defaults_can_turn_off_a_channel(start):
    edge = start(CONSENT_RULES + """
  - id: hello
    on: page
    actions: [{ message: { type: toast, title: Hello } }]
""", with_site_setting("consent_defaults: { in_app: false }"))
    assert page(edge, "con-6")["messages"] == []
    identify(edge, "con-6", consent={"in_app": True})
    assert message_rules(page(edge, "con-6")) == ["hello"]


# -- 6. channel choice and engagement --------------------------------------------------------

NOTIFY_RULES = """
policy:
  channel_order: [email, sms, push]
  caps:
    push: [{ max: 1, per: 1d }]
rules:
  - id: back-in-stock
    on: Restocked
    actions:
      - notify:
          channels: [push, email, sms]
          title: "Back in stock"
          body: "{{ event.properties.name }} is back"
          link: "/p/lamp"
  - id: hello
    on: Hello
    actions:
      - notify: { channels: [in_app, push], type: toast, title: "Hello" }
"""
EVERY_ADDRESS = {"push_token": "token-1", "email": "ann@example.com", "phone": "+420 777 123 456"}
EVERY_CONSENT = {"push": True, "email": True, "sms": True}


def restocked(edge: LiveEdge, redis_client, who: str) -> str | None:
    """Sends "Restocked"; the channel the notification went out on (None: nowhere)."""
    before = len(records(redis_client, streams.OutboundMessage, f"anon:{who}"))
    answer = track(edge, who, "Restocked", {"name": "Lamp"})
    queued = records(redis_client, streams.OutboundMessage, f"anon:{who}")[before:]
    channels = [message.channel for message in queued]
    channels += ["push"] * len(answer["push"]) + ["in_app"] * len(answer["messages"])
    assert len(channels) <= 1, channels
    return channels[0] if channels else None


def reachable(edge: LiveEdge, who: str, consent: dict | None = None, **traits: Any) -> None:
    addresses = {**EVERY_ADDRESS, **traits}
    identify(edge, who, consent=consent or EVERY_CONSENT,
             **{k: v for k, v in addresses.items() if v is not None})


def test_without_preference_the_policy_channel_order_decides(start, redis_client):
    edge = start(NOTIFY_RULES)
    reachable(edge, "ntf-1")
    assert restocked(edge, redis_client, "ntf-1") == "email"
    queued = records(redis_client, streams.OutboundMessage, "anon:ntf-1")[0]
    assert (queued.rule, queued.channel, queued.title, queued.body, queued.link) == (
        "back-in-stock", "email", "Back in stock", "Lamp is back", "/p/lamp")


def test_preferred_channel_trait_comes_first(start, redis_client):
    edge = start(NOTIFY_RULES)
    reachable(edge, "ntf-2", preferred_channel="push")
    track(edge, "ntf-2", "Email Opened")  # a preference beats the last engagement
    answer = track(edge, "ntf-2", "Restocked", {"name": "Lamp"})
    assert answer["push"] == [{"rule": "back-in-stock", "title": "Back in stock",
                               "body": "Lamp is back", "link": "/p/lamp"}]
    assert records(redis_client, streams.OutboundMessage, "anon:ntf-2") == []


def test_last_engaged_channel_comes_next(start, redis_client):
    edge = start(NOTIFY_RULES)
    reachable(edge, "ntf-3")
    track(edge, "ntf-3", "Push Clicked")
    assert profile(edge, "anon:ntf-3")["last_channel"] == "push"
    assert restocked(edge, redis_client, "ntf-3") == "push"
    edge.clock.advance(MINUTE)
    track(edge, "ntf-3", "Sms Opened")
    assert restocked(edge, redis_client, "ntf-3") == "sms"


def test_a_channel_without_room_under_its_cap_is_skipped(start, redis_client):
    edge = start(NOTIFY_RULES)
    reachable(edge, "ntf-10", preferred_channel="push")
    assert restocked(edge, redis_client, "ntf-10") == "push"
    assert restocked(edge, redis_client, "ntf-10") == "email"  # 1 push a day
    edge.clock.advance(DAY)
    assert restocked(edge, redis_client, "ntf-10") == "push"


def test_a_channel_without_consent_is_skipped(start, redis_client):
    edge = start(NOTIFY_RULES)
    reachable(edge, "ntf-4", consent={"push": True, "email": False, "sms": True})
    assert restocked(edge, redis_client, "ntf-4") == "sms"


def test_a_channel_without_address_is_skipped(start, redis_client):
    edge = start(NOTIFY_RULES)
    reachable(edge, "ntf-5", email=None)
    assert restocked(edge, redis_client, "ntf-5") == "sms"
    reachable(edge, "ntf-6", email=None, phone=None)
    assert restocked(edge, redis_client, "ntf-6") == "push"
    reachable(edge, "ntf-7", email=None, phone=None, push_token=None)
    assert restocked(edge, redis_client, "ntf-7") is None


def test_push_subscription_is_a_push_address(start, redis_client):
    edge = start(NOTIFY_RULES)
    track(edge, "ntf-8", "Push Subscribed", {"subscription": {
        "endpoint": "https://push.example/abc", "keys": {"p256dh": "key", "auth": "secret"}}})
    assert restocked(edge, redis_client, "ntf-8") == "push"  # subscribing also gave consent


def test_in_app_choice_appears_in_the_answers_messages(start):
    edge = start(NOTIFY_RULES)
    answer = track(edge, "ntf-9", "Hello")  # no push address: in_app, which needs none
    assert answer["messages"] == [{"rule": "hello", "type": "toast", "title": "Hello"}]
    assert answer["push"] == []


def test_engagement_builds_an_hour_histogram_in_the_persons_time_zone(start):
    edge = start(NOTIFY_RULES)
    identify(edge, "eng-1", timezone=NEW_YORK)
    at_local(edge, "2026-01-05 10:15")
    track(edge, "eng-1", "Push Opened")
    at_local(edge, "2026-01-05 20:40")
    track(edge, "eng-1", "Message Shown")
    at_local(edge, "2026-01-06 10:05")
    track(edge, "eng-1", "Email Clicked")
    stored = profile(edge, "anon:eng-1")
    hours = [0] * 24
    hours[10], hours[20] = 2, 1
    assert stored["engagement_hours"] == hours
    assert stored["best_send_hour"] == 10
    assert stored["last_channel"] == "email"  # shown is not engaged; the click is newest


# -- 7. schedules and quiet hours ------------------------------------------------------------

SCHEDULE_RULES = """
policy:
  max_messages: 2
  quiet_hours: "21:00-08:00"
rules:
  - id: advent
    on: page
    schedule:
      from: 2026-12-01
      until: 2026-12-24
      days: [mon, tue]
      hours: "09:00-18:00"
      quiet_hours: "22:00-07:00"
    actions: [{ slot: advent, html: "Advent" }]
  - id: daytime
    on: page
    schedule: { quiet_hours: "22:00-07:00" }
    actions: [{ slot: daytime, html: "Day" }]
  - id: evening
    on: Ping
    actions:
      - message: { type: toast, title: "Evening" }
      - push: { title: "Evening" }
"""


def advent_at(edge: LiveEdge, who: str, local: str, zone: str = NEW_YORK, **fields: Any) -> bool:
    at_local(edge, local, zone)
    return "advent" in page(edge, who, **fields)["slots"]


def test_schedule_dates(start):
    edge = start(SCHEDULE_RULES)
    identify(edge, "sch-1", timezone=NEW_YORK)
    assert not advent_at(edge, "sch-1", "2026-11-30 12:00")  # a Monday, not started
    assert advent_at(edge, "sch-1", "2026-12-01 12:00")  # Tuesday
    assert advent_at(edge, "sch-1", "2026-12-22 12:00")  # Tuesday
    assert not advent_at(edge, "sch-1", "2026-12-28 12:00")  # a Monday, ended


LAUNCH_RULES = """
rules:
  - id: launch-day
    on: page
    schedule: { from: 2026-12-01, until: 2026-12-01 }
    actions: [{ slot: day, html: "today only" }]
  - id: launch-instant
    on: page
    schedule: { from: "2026-12-01T08:00:00Z", until: "2026-12-01T10:00:00+01:00" }
    actions: [{ slot: instant, html: "one hour for everybody" }]
"""


def test_schedule_dates_are_the_persons_dates(start):
    """A date alone starts and ends at the person's midnight; a time with a zone is one
    instant for everybody."""
    edge = start(LAUNCH_RULES)
    identify(edge, "sch-date-ny", timezone=NEW_YORK)
    identify(edge, "sch-date-tokyo", timezone="Asia/Tokyo")

    def slots(who: str, utc: str) -> set[str]:
        at_local(edge, utc, "UTC")
        return set(page(edge, who)["slots"])

    # 2026-12-01 02:00 UTC: still Nov 30 in New York, already Dec 1 in Tokyo
    assert slots("sch-date-ny", "2026-12-01 02:00") == set()
    assert slots("sch-date-tokyo", "2026-12-01 02:00") == {"day"}
    # 2026-12-01 08:30 UTC: the instant window (08:00 to 09:00 UTC) is open everywhere
    assert slots("sch-date-ny", "2026-12-01 08:30") == {"day", "instant"}
    assert slots("sch-date-tokyo", "2026-12-01 08:30") == {"day", "instant"}
    # 2026-12-02 03:00 UTC: Dec 1 evening in New York, Dec 2 in Tokyo
    assert slots("sch-date-ny", "2026-12-02 03:00") == {"day"}
    assert slots("sch-date-tokyo", "2026-12-02 03:00") == set()


def test_schedule_days_and_hours(start):
    edge = start(SCHEDULE_RULES)
    identify(edge, "sch-2", timezone=NEW_YORK)
    assert not advent_at(edge, "sch-2", "2026-12-02 12:00")  # Wednesday
    assert advent_at(edge, "sch-2", "2026-12-07 12:00")  # Monday
    assert not advent_at(edge, "sch-2", "2026-12-08 08:59")
    assert advent_at(edge, "sch-2", "2026-12-08 09:00")
    assert advent_at(edge, "sch-2", "2026-12-08 17:59")
    assert not advent_at(edge, "sch-2", "2026-12-08 18:00")


def test_schedule_reads_the_persons_time_zone(start):
    edge = start(SCHEDULE_RULES)
    identify(edge, "sch-ny", timezone=NEW_YORK)
    identify(edge, "sch-tokyo", timezone="Asia/Tokyo")
    instant = "2026-12-08 15:00"  # UTC: 10:00 on Tuesday in New York, Wednesday in Tokyo
    assert advent_at(edge, "sch-ny", instant, "UTC")
    assert not advent_at(edge, "sch-tokyo", instant, "UTC")
    # the event's context.timezone comes before the trait
    assert not advent_at(edge, "sch-ny", instant, "UTC", context={"timezone": "Asia/Tokyo"})
    assert advent_at(edge, "sch-tokyo", instant, "UTC", context={"timezone": NEW_YORK})
    # no zone at all: the site's (Europe/Prague: 16:00 on Tuesday)
    assert advent_at(edge, "sch-site", instant, "UTC")


def test_schedule_quiet_hours(start):
    edge = start(SCHEDULE_RULES)
    identify(edge, "sch-3", timezone=NEW_YORK)
    for local, shown in (("2026-01-05 21:59", True), ("2026-01-05 22:00", False),
                         ("2026-01-06 06:59", False), ("2026-01-06 07:00", True)):
        at_local(edge, local)
        assert ("daytime" in page(edge, "sch-3")["slots"]) is shown, local


def test_policy_quiet_hours_silence_push_but_not_in_app(start):
    edge = start(SCHEDULE_RULES)
    reachable_by_push(edge, "sch-4", timezone=NEW_YORK)
    at_local(edge, "2026-01-05 22:30")
    night = track(edge, "sch-4", "Ping")
    assert message_rules(night) == ["evening"]
    assert night["push"] == []
    at_local(edge, "2026-01-06 12:00")
    day = track(edge, "sch-4", "Ping")
    assert message_rules(day) == ["evening"]
    assert push_rules(day) == ["evening"]


# -- 8. catalog content ----------------------------------------------------------------------

CATALOG_SETTINGS = SETTINGS_YAML.replace(
    "scopes: [ingest, profiles:read, profiles:delete, admin, metrics]",
    "scopes: [ingest, profiles:read, profiles:delete, admin, metrics, catalog:read, catalog:write]", 1)
CATALOG_RULES = """
rules:
  - id: recently-viewed
    on: page
    actions:
      - slot: recent
        html: "{% for p in recent_products %}{{ p.name }} {{ p.price | money(p.currency) }};{% endfor %}"
  - id: bought-together
    on: page
    when: len(cart.items) > 0
    actions:
      - slot: together
        html: "{% for p in cross_sell %}{{ p.id }};{% endfor %}"
"""


def put_products(edge: LiveEdge, *products: dict[str, Any]) -> None:
    response = edge.http.put("/v1/catalog/products", json=list(products),
                             headers=basic(SECRET_KEY))
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == []


def product(product_id: str, name: str, price: float, **fields: Any) -> dict[str, Any]:
    return {"id": product_id, "name": name, "price": price, "currency": "EUR", **fields}


def test_recent_products_show_current_prices(start):
    edge = start(CATALOG_RULES, CATALOG_SETTINGS)
    put_products(edge, product("a", "Alpha", 10), product("b", "Beta", 20))
    for product_id in ("a", "b", "unknown"):
        track(edge, "cat-1", "Product Viewed", {"product_id": product_id})
    assert page(edge, "cat-1")["slots"]["recent"]["html"] == "Beta €20.00;Alpha €10.00;"
    put_products(edge, product("a", "Alpha", 12.5))
    assert page(edge, "cat-1")["slots"]["recent"]["html"] == "Beta €20.00;Alpha €12.50;"


def test_recent_products_prices_in_the_persons_locale(start):
    edge = start(CATALOG_RULES, CATALOG_SETTINGS)
    put_products(edge, product("a", "Alpha", 1234.5))
    identify(edge, "cat-2", locale="de")
    track(edge, "cat-2", "Product Viewed", {"product_id": "a"})
    assert page(edge, "cat-2")["slots"]["recent"]["html"] == "Alpha 1.234,50\xa0€;"


def test_recent_products_price_is_the_price_to_pay_now(start):
    """A product on sale shows its sale price as `price` (it used to show the list price)."""
    edge = start(CATALOG_RULES, CATALOG_SETTINGS)
    put_products(edge, product("s", "Sale", 100, sale_price=80))
    track(edge, "cat-3", "Product Viewed", {"product_id": "s"})
    assert page(edge, "cat-3")["slots"]["recent"]["html"] == "Sale €80.00;"


def test_cross_sell_follows_orders(start):
    edge = start(CATALOG_RULES, CATALOG_SETTINGS)
    put_products(edge, product("a", "Alpha", 10), product("b", "Beta", 20),
                 product("c", "Gamma", 30))
    track(edge, "cat-4", "Product Added", {"product_id": "a", "price": 10})
    assert page(edge, "cat-4")["slots"]["together"]["html"] == ""
    track(edge, "cat-buyer", "Order Completed",
          {"products": [{"product_id": "a"}, {"product_id": "b"}]})
    assert page(edge, "cat-4")["slots"]["together"]["html"] == "b;"


CATALOG_CONDITION_RULES = """
rules:
  - id: on-sale-now
    on: page
    priority: 2
    when: catalog.recent_products[0].price < catalog.recent_products[0].list_price
    actions:
      - slot: sale
        html: "{{ recent_products[0].name }} is now {{ recent_products[0].price | money('EUR') }}"
  - id: more-in-category
    on: page
    when: len(catalog.upsell) > 0 and not (catalog.upsell[0].stock < 1)
    actions:
      - slot: upsell
        html: "{{ upsell[0].id }}"
  - id: nothing-to-pair
    on: page
    when: len(cart.items) > 0 and len(catalog.cross_sell) == 0
    actions: [{ slot: together, html: none yet }]
"""


def test_conditions_read_the_catalog(start):
    """Conditions see the same catalog lists as templates: current prices, upsell, cross-sell."""
    edge = start(CATALOG_CONDITION_RULES, CATALOG_SETTINGS)
    put_products(edge, product("a", "Alpha", 100, category="shoes", stock=3),
                 product("b", "Beta", 150, category="shoes", stock=0),
                 product("c", "Gamma", 300, category="shoes", stock=2))
    track(edge, "cc-1", "Product Viewed", {"product_id": "a"})
    answer = page(edge, "cc-1")
    assert "sale" not in answer["slots"]  # full price
    assert answer["slots"]["upsell"]["html"] == "c"  # b is out of stock
    put_products(edge, product("a", "Alpha", 100, sale_price=79, category="shoes", stock=3))
    assert page(edge, "cc-1")["slots"]["sale"]["html"] == "Alpha is now €79.00"
    put_products(edge, product("c", "Gamma", 300, category="shoes", stock=0))
    assert "upsell" not in page(edge, "cc-1")["slots"]  # nothing dearer in stock

    track(edge, "cc-1", "Product Added", {"product_id": "a", "price": 79})
    assert page(edge, "cc-1")["slots"]["together"]["html"] == "none yet"
    put_products(edge, product("d", "Delta", 20, category="socks", stock=9))
    track(edge, "cc-buyer", "Order Completed",
          {"products": [{"product_id": "a"}, {"product_id": "d"}]})
    assert "together" not in page(edge, "cc-1")["slots"]


def test_catalog_conditions_without_a_viewed_product_are_false(start):
    edge = start(CATALOG_CONDITION_RULES, CATALOG_SETTINGS)
    assert page(edge, "cc-2")["slots"] == {}


@pytest.mark.parametrize("condition, message", [
    ("len(catalog.wishlist) > 0", "unknown catalog list; use one of: recent_products, cross_sell, upsell"),
    ("catalog", "'catalog' must be followed by one of: recent_products, cross_sell, upsell"),
    ('catalog["up" + "sell"]', "unknown catalog list"),
])
def test_check_names_unknown_catalog_lists(condition, message):
    problems = check_documents([("r.yaml", f"rules:\n  - id: x\n    on: page\n    when: '{condition}'\n"
                                           "    actions: [{ tag: t }]\n")])
    assert len(problems) == 1 and message in str(problems[0]), problems
    assert str(problems[0]).startswith("r.yaml:4:")


def test_only_the_named_catalog_lists_are_read():
    ruleset = load_ruleset([("r.yaml", CATALOG_CONDITION_RULES)])
    assert ruleset.catalog_lists == {"recent_products", "upsell", "cross_sell"}
    plain = load_ruleset([("r.yaml", "rules:\n  - id: x\n    on: page\n    when: cart.value > 1\n"
                                     "    actions: [{ tag: t }]\n")])
    assert plain.catalog_lists == frozenset()


def test_explain_shows_the_catalog_values_a_condition_read(start):
    edge = start(CATALOG_CONDITION_RULES, CATALOG_SETTINGS)
    put_products(edge, product("a", "Alpha", 100, sale_price=79, category="shoes", stock=3))
    track(edge, "cc-3", "Product Viewed", {"product_id": "a"})
    response = edge.http.post("/v1/explain", json={"profile": "anon:cc-3", "event": {"type": "page"}},
                              headers=basic(SECRET_KEY))
    assert response.status_code == 200, response.text
    body = response.json()
    sale = next(row for row in body["rules"] if row["id"] == "on-sale-now")
    assert sale["outcome"] == "fired"
    price, list_price = sale["condition"]["children"]
    assert (price["text"], price["value"]) == ("catalog.recent_products[0].price", 79)
    assert (list_price["text"], list_price["value"]) == ("catalog.recent_products[0].list_price", 100)
    assert body["decision"]["slots"]["sale"]["html"] == "Alpha is now €79.00"
