"""The vectors in rules/vectors/ are the specification of windows, experiment assignment,
schedules and arbitration; the product and the test reference both pass them.

windows.json      {"buckets": [{window_ms, bucket_ms}], "counts": [{window_ms, now_ms, ts_ms,
                  counts}]}: an event at ts counts at now iff
                  now//bucket - n < ts//bucket <= now//bucket, n = window / bucket
experiments.json  [{salt, variants: [[name, weight], ...], profile_id, stored, expected}]
schedules.json    [{schedule (as a rule document writes it), now_ms, timezone (the person's),
                  expected: null (may fire) or what keeps it from firing}]
arbitration.json  {"rulebook": a rule document, "cases": [{name, person, candidates (rule ids
                  in arbitration order), fired: [[rule, variant]], exposures, new_variants,
                  trace: rule -> outcome (kind and its fields), text: rule -> outcome in words}]}
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import msgspec
import pytest

from rules import Ruleset, load_ruleset
from rules.aggregates import AggregateSpec, brute_force, bucket_ms_for
from rules.arbitration import Person, Selection
from rules.definitions import ExperimentDef
from rules.experiments import variant_for
from rules.localtime import local_fields, zone_named
from rules.outcomes import Outcome
from rules.schedule import schedule_block
from tests.arbitration_reference import ReferenceArbiter


def vectors(name: str):
    return json.loads(resources.files("rules").joinpath("vectors", name).read_text("utf-8"))


WINDOWS = vectors("windows.json")
ARBITRATION = vectors("arbitration.json")


@pytest.mark.parametrize("vector", WINDOWS["buckets"], ids=lambda v: str(v["window_ms"]))
def test_bucket_size_follows_the_window(vector) -> None:
    assert bucket_ms_for(vector["window_ms"]) == vector["bucket_ms"]


@pytest.mark.parametrize("vector", WINDOWS["counts"])
def test_an_event_counts_inside_its_window(vector) -> None:
    window = vector["window_ms"]
    for kind, fed, inside, outside in (("count", 1, 1, 0), ("sum", 2.5, 2.5, 0.0),
                                       ("distinct", "x", 1, 0), ("last", "v", "v", None)):
        spec = AggregateSpec("a", kind, window, bucket_ms_for(window))
        value = brute_force(spec, [(vector["ts_ms"], fed)], vector["now_ms"])
        assert value == (inside if vector["counts"] else outside), (kind, vector)


def test_window_vectors_reach_both_sides_of_every_edge() -> None:
    assert {v["counts"] for v in WINDOWS["counts"]} == {True, False}


@pytest.mark.parametrize("vector", vectors("experiments.json"))
def test_experiment_assignment(vector) -> None:
    experiment = ExperimentDef("e", vector["salt"], tuple(map(tuple, vector["variants"])), None)
    assert variant_for(experiment, vector["profile_id"], vector["stored"]) == vector["expected"]


@pytest.mark.parametrize("vector", vectors("schedules.json"))
def test_schedule_on_the_persons_clock(vector) -> None:
    document = {"rules": [{"id": "r", "on": "page", "schedule": vector["schedule"],
                           "actions": [{"tag": "t"}]}]}
    schedule = load_ruleset([("s.json", json.dumps(document))]).plans[0].rule.schedule
    hour, minute, weekday, date = local_fields(vector["now_ms"], zone_named(vector["timezone"]))
    assert schedule_block(schedule, vector["now_ms"], weekday, hour * 60 + minute,
                          date) == vector["expected"]


@cache
def rulebook() -> Ruleset:
    return load_ruleset([("book.json", json.dumps(ARBITRATION["rulebook"]))])


def selected(arbiter, case) -> Selection:
    ids = [plan.id for plan in rulebook().plans]
    person = Person(**(case["person"] | {"reachable": frozenset(case["person"]["reachable"])}))
    return arbiter.select([], [(ids.index(rule), 0.0) for rule in case["candidates"]], person)


@pytest.mark.parametrize("implementation", ["product", "reference"])
@pytest.mark.parametrize("case", ARBITRATION["cases"], ids=lambda case: case["name"])
def test_arbitration_outcomes(case, implementation) -> None:
    ruleset = rulebook()
    arbiter = (ruleset.arbiter if implementation == "product"
               else ReferenceArbiter(ruleset.plans, ruleset.policy))
    selection = selected(arbiter, case)
    assert [[f.plan.id, f.variant] for f in selection.fired] == case["fired"]
    assert [list(e) for e in selection.exposures] == case["exposures"]
    assert selection.new_variants == case["new_variants"]
    assert selection.trace == {rule: msgspec.convert(outcome, Outcome)
                               for rule, outcome in case["trace"].items()}
    assert {rule: outcome.text() for rule, outcome in selection.trace.items()} == case["text"]
