"""bench.compare_rules: the translations to GrowthBook and JsonLogic mean what the Kairos
rules mean.  Needs the bench extras (`pip install -e '.[bench]'`); skipped without them."""

import pytest

pytest.importorskip("growthbook")
pytest.importorskip("json_logic")

from bench import compare_rules
from bench.rule_corpus import make_inputs

RULES = 30
INPUTS = 200


@pytest.fixture(scope="module")
def comparison() -> compare_rules.Comparison:
    return compare_rules.prepare(RULES, seed=7)


def test_most_rules_translate(comparison):
    # With seed 7 the 30-rule corpus loses 2 rules to GrowthBook (days_since) and 6 to
    # JsonLogic (regular expressions); 22 are shared.  A drop below means a translator
    # stopped handling something the corpus uses.
    assert len(comparison.rule_ids) >= 22
    assert len(comparison.own["growthbook"].rules) >= 28
    assert len(comparison.own["jsonlogic"].rules) >= 24
    skipped = {engine: sum(reasons.values()) for engine, reasons in comparison.skipped.items()}
    assert skipped["growthbook"] + len(comparison.own["growthbook"].rules) == RULES
    assert skipped["jsonlogic"] + len(comparison.own["jsonlogic"].rules) == RULES


def test_engines_agree_on_every_input(comparison):
    report = compare_rules.verify(comparison, make_inputs(INPUTS, 11))
    assert report["engines_agree"]
    # Agreement must not be the empty kind: the shared rules do match events.
    assert report["shared_rule_matches"] > 50


def test_a_wrong_translation_is_caught(comparison):
    peer = comparison.own["jsonlogic"]
    rule = next(r for r in peer.rules if r.body is not True)
    saved = rule.full
    rule.full = True  # the condition now always holds
    try:
        with pytest.raises(compare_rules.Disagreement, match=rule.rule_id):
            compare_rules.verify(comparison, make_inputs(INPUTS, 11))
    finally:
        rule.full = saved


def test_each_engine_runs_the_shared_rules(comparison):
    inputs = make_inputs(20, 11)
    runners = compare_rules.engines(comparison)
    assert set(runners) == {
        "kairos",
        "growthbook",
        "growthbook_indexed",
        "jsonlogic",
        "jsonlogic_indexed",
    }
    for item in inputs:
        answers = {
            name: tuple(tuple(sorted(ids)) for ids in run(item)) for name, run in runners.items()
        }
        assert len(set(answers.values())) == 1, answers
