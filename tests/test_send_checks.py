"""The send-time checks on their own: rules/vectors/send_checks.json is their specification,
arbitration names the same reason for the same person, and the pipeline reads the person
from the store at the moment of sending."""

from __future__ import annotations

import asyncio
import json
from functools import cache
from importlib import resources
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import asyncio as aioredis

from edge.pipeline.handler import Pipeline
from edge.pipeline.rulebook import Rulebook
from edge.runtime.config import load_settings
from edge.runtime.metrics import Metrics
from edge.store.profiles import ProfileStore
from rules.arbitration import Person, SendChecks
from rules.definitions import CHANNELS, NOTIFY_CHANNELS, PolicyDef
from rules.loader import load_ruleset
from rules.outcomes import Kind, Outcome
from tests.support import LiveEdge, write_config

VECTORS = json.loads(resources.files("rules").joinpath("vectors", "send_checks.json")
                     .read_text("utf-8"))
DAY = 86_400_000
NOW = 1_709_647_200_000


def person_of(fields: dict) -> Person:
    return Person(**(fields | {"reachable": frozenset(fields["reachable"])}))


@cache
def vector_policy() -> PolicyDef:
    return load_ruleset([("policy.json", json.dumps({"policy": VECTORS["policy"]}))]).policy


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda case: case["name"])
def test_send_check_vectors(case) -> None:
    found = SendChecks(vector_policy()).why_not(
        person_of(case["person"]), case["channel"], case["purpose"],
        [tuple(cap) for cap in case["caps"]])
    expected = case["expected"]
    assert found == (None if expected is None else msgspec.convert(expected, Outcome))


def test_every_kind_of_check_has_a_vector() -> None:
    kinds = {case["expected"]["kind"] for case in VECTORS["cases"] if case["expected"]}
    assert kinds == {"consent", "no_address", "quiet_hours", "cap"}
    assert any(case["expected"] is None for case in VECTORS["cases"])


def test_an_unknown_channel_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown channel 'fax'"):
        SendChecks(PolicyDef()).why_not(person_of(VECTORS["cases"][0]["person"]), "fax")


# -- the same reason as arbitration --------------------------------------------------------

caps_of = st.lists(st.tuples(st.integers(1, 3), st.sampled_from(["1h", "1d", "7d"])),
                   max_size=2).map(lambda caps: [{"max": m, "per": per} for m, per in caps])
policies = st.fixed_dictionaries({
    "quiet_hours": st.sampled_from([None, "22:00-07:00", "12:00-13:00"]),
    "caps": st.dictionaries(st.sampled_from(["global", *NOTIFY_CHANNELS]), caps_of, max_size=3),
})
ages = st.lists(st.integers(0, 8 * DAY), max_size=4)
people = st.builds(
    lambda consent, reachable, minute, deliveries: Person(
        profile_id="user:p", now_ms=NOW, weekday="tue", minute=minute, consent=consent,
        deliveries={key: [NOW - age for age in found] for key, found in deliveries.items()},
        variants={}, reachable=frozenset(reachable)),
    st.dictionaries(st.sampled_from(["marketing", "personalization", *CHANNELS]), st.booleans()),
    st.sets(st.sampled_from(CHANNELS)),
    st.integers(0, 1439),
    st.dictionaries(st.sampled_from(["global", "rule:r", *(f"channel:{c}" for c in CHANNELS)]),
                    ages),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies, person=people, channel=st.sampled_from(NOTIFY_CHANNELS),
       purpose=st.sampled_from(["marketing", "personalization"]),
       own=st.lists(st.tuples(st.integers(1, 2), st.sampled_from(["1h", "1d"])), max_size=1))
def test_arbitration_gives_the_reason_the_checks_give(policy, person, channel, purpose,
                                                      own) -> None:
    """A rule that sends one notification on one channel fires exactly when the checks let
    the delivery go, and otherwise gives way for the reason they name."""
    rule = {"id": "r", "on": "page", "purpose": purpose,
            "actions": [{"notify": {"channels": [channel], "title": "hi"}}]}
    if own:
        rule["cap"] = {"max": own[0][0], "per": own[0][1]}
    document = {"policy": {key: value for key, value in policy.items() if value is not None},
                "rules": [rule]}
    ruleset = load_ruleset([("book.json", json.dumps(document))])
    outcome = ruleset.arbiter.select([], [(0, 0.0)], person).trace["r"]
    why = ruleset.arbiter.checks.why_not(person, channel, purpose, ruleset.plans[0].caps)
    if why is None:
        assert outcome.kind is Kind.FIRED
    elif why.purpose is not None or (why.kind is Kind.CAP and why.cap == "rule:r"):
        assert outcome == why  # the rule's own checks, before any channel is tried
    else:
        # its one channel closed: the notification, and so the rule, showed nothing
        assert outcome == Outcome(Kind.NOTHING_SHOWN,
                                  reasons=(Outcome(Kind.NO_CHANNEL, reasons=(why,)),))


# -- from the store, at the moment of sending ----------------------------------------------

RULES = """
policy:
  quiet_hours: "22:00-07:00"
  caps:
    email: [{max: 1, per: 1d}]
rules:
  - id: hello
    on: page
    actions:
      - slot: hero
        html: hi
"""


def test_the_pipeline_checks_the_stored_person_now(redis_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", rules_yaml=RULES)
    with LiveEdge(config, redis_url) as edge:
        # 12:00 in Prague (the test site's zone) on 2024-03-05.
        edge.clock.set(NOW - 3 * 3_600_000)
        assert edge.post("/v1/identify", {"userId": "u-send", "traits": {
            "email": "u@example.com"}}).status_code == 200
        assert edge.post("/v1/identify", {"userId": "u-quiet", "traits": {
            "email": "q@example.com"}}).status_code == 200
        assert edge.post("/v1/track", {"userId": "u-quiet", "event": "Consent Updated",
                                       "properties": {"marketing": True, "email": True}}
                         ).status_code == 200

        async def check(*calls: tuple) -> list[Outcome | None]:
            client = aioredis.from_url(redis_url)
            settings_ = load_settings(config)
            pipeline = Pipeline(ProfileStore(client, settings_, redis_url),
                                Rulebook(settings_.rules_dir), Metrics(), edge.clock)
            site = settings_.sites["shop"]
            try:
                return [await pipeline.send_check(*call, site=site) for call in calls]
            finally:
                await client.aclose()

        found = asyncio.run(check(("user:u-send", "email"), ("user:u-quiet", "email"),
                                  ("user:u-quiet", "sms"), ("user:nobody", "email")))
        assert found == [Outcome(Kind.CONSENT, channel="email"),  # email is opt-in
                         None,
                         Outcome(Kind.CONSENT, channel="sms"),
                         Outcome(Kind.NO_ADDRESS, channel="email")]
        edge.clock.set(NOW + 9 * 3_600_000)  # 00:00 in Prague: quiet hours
        assert asyncio.run(check(("user:u-quiet", "email"))) == [
            Outcome(Kind.QUIET_HOURS, channel="email")]
