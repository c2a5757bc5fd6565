"""Every vector in rules/vectors.json through the compiled code and the reference evaluator.

Vector format (language independent):
  {"expr": ..., "context": {...}, "expected": value}
  {"expr": ..., "error": "part of the message"}
context keys: event, profile, context, segments, now, and aggregates (placed at
profile.aggregates).  Every name in context.aggregates is declared as a `last`
aggregate unless the vector's aggregate_kinds says otherwise.
"""

from __future__ import annotations

import json
import math
from importlib import resources

import pytest

from rules.expression import ExpressionInvalid, compile_expression, reference_value
from rules.reference import Environment


def load_vectors() -> list[dict]:
    return json.loads(resources.files("rules").joinpath("vectors.json").read_text(encoding="utf-8"))


VECTORS = load_vectors()
VALUE_VECTORS = [v for v in VECTORS if "expected" in v]
ERROR_VECTORS = [v for v in VECTORS if "error" in v]


def same_value(a: object, b: object) -> bool:
    """Equality that also tells 1 from 1.0 and True from 1, and treats NaN as equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b  # type: ignore[arg-type]
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=False))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)  # type: ignore[union-attr,index]
    return a == b


def environment_for(vector: dict) -> Environment:
    context = vector.get("context", {})
    profile = dict(context.get("profile") or {})
    if "aggregates" in context:
        profile["aggregates"] = context["aggregates"]
    kinds = {name: "last" for name in context.get("aggregates", {})}
    kinds.update(vector.get("aggregate_kinds", {}))
    return Environment(
        event=context.get("event") or {},
        profile=profile,
        context=context.get("context") or {},
        now=context.get("now", 0),
        segments=context.get("segments", []),
        aggregate_kinds=kinds,
    )


def vector_id(vector: dict) -> str:
    return vector["expr"][:60]


def test_there_are_enough_vectors() -> None:
    assert len(VALUE_VECTORS) >= 80
    assert len(ERROR_VECTORS) >= 20


@pytest.mark.parametrize("vector", VALUE_VECTORS, ids=vector_id)
def test_compiled_matches_vector(vector: dict) -> None:
    env = environment_for(vector)
    compiled = compile_expression(vector["expr"], env.aggregate_kinds)
    result = compiled(env)
    assert same_value(result, vector["expected"]), (
        f"{vector['expr']!r} gave {result!r}\n{compiled.source}"
    )


@pytest.mark.parametrize("vector", VALUE_VECTORS, ids=vector_id)
def test_reference_matches_vector(vector: dict) -> None:
    env = environment_for(vector)
    result = reference_value(vector["expr"], env)
    assert same_value(result, vector["expected"]), f"{vector['expr']!r} gave {result!r}"


@pytest.mark.parametrize("vector", ERROR_VECTORS, ids=vector_id)
def test_error_vector_is_rejected(vector: dict) -> None:
    for attempt in (
        lambda: compile_expression(vector["expr"]),
        lambda: reference_value(vector["expr"], Environment()),
    ):
        with pytest.raises(ExpressionInvalid) as caught:
            attempt()
        messages = [message for _, message in caught.value.problems]
        assert any(vector["error"] in message for message in messages), messages
