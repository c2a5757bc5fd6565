"""Size limits on event properties: the quick check agrees with the one that names the offender."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.runtime.config import Limits
from edge.ingest.normalize import _name_offender, _within_limits, check_limits
from edge.ingest.wire import InputError

# Small limits, so that random values cross each of them often.
LIMITS = Limits(max_depth=3, max_properties=3, max_string_length=5, max_id_length=4)

leaves = st.one_of(
    st.none(), st.booleans(), st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=7),
)
values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=6), children, max_size=5),
    ),
    max_leaves=25,
)


def offender(value: object) -> tuple[str, str] | None:
    try:
        _name_offender(value, "properties", LIMITS, 0)
    except InputError as error:
        return error.field, error.reason
    return None


@settings(max_examples=400, deadline=None)
@given(values)
def test_quick_check_agrees_with_the_naming_one(value: object) -> None:
    expected = offender(value)
    assert _within_limits(value, LIMITS, 0) == (expected is None)
    if expected is None:
        check_limits(value, "properties", LIMITS)
    else:
        with pytest.raises(InputError) as raised:
            check_limits(value, "properties", LIMITS)
        assert (raised.value.field, raised.value.reason) == expected


@pytest.mark.parametrize(("value", "field", "reason"), [
    ({"a": {"b": "toolong"}}, "properties.a.b", "string longer than 5 characters"),
    ({"a": [1, 2, math.inf]}, "properties.a[2]", "number is not finite"),
    ({"a": 2**64}, "properties.a", "whole number outside the 64-bit range (-2^63 to 2^64-1): "
                                   "send it as a string to keep every digit"),
    ({"a": {"b": {"c": {}}}}, "properties.a.b.c", "nested deeper than 3 levels"),
    ({"a": 1, "b": 2, "c": 3, "d": 4}, "properties", "more than 3 keys"),
    ({"longkey": 1}, "properties", "key longer than 4 characters"),
])
def test_the_first_offender_is_named(value: object, field: str, reason: str) -> None:
    with pytest.raises(InputError) as raised:
        check_limits(value, "properties", LIMITS)
    assert (raised.value.field, raised.value.reason) == (field, reason)
