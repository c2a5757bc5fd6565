"""Amounts that aggregates sum are bounded numbers: the spec's amounts (revenue, price,
quantity, ...) that are text or out of bounds are refused with 400 naming the field, and
what is accepted keeps every sum finite and equal to the accepted amounts."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import PUBLIC_KEY, LiveEdge

BOUND = 1e12  # limits.max_amount's default; the test settings keep it
people = itertools.count()


@pytest.fixture
def live(module_edge: LiveEdge) -> LiveEdge:
    return module_edge


def order(live: LiveEdge, person: str, properties: dict[str, Any], event: str = "Order Completed",
          key: str = "sk-test") -> Any:
    return live.post("/v1/track", {"userId": person, "event": event, "properties": properties},
                     key)


@pytest.mark.parametrize("properties, field, reason", [
    ({"revenue": 1.7e308}, "properties.revenue", "within ±1e+12"),
    ({"revenue": "12abc"}, "properties.revenue", "not text"),
    ({"revenue": "12.50"}, "properties.revenue", "not text"),
    ({"revenue": True}, "properties.revenue", "not bool"),
    ({"total": [12]}, "properties.total", "not list"),
    ({"tax": -2e12}, "properties.tax", "within ±1e+12"),
    ({"products": [{"price": 3}, {"price": "3 EUR"}]}, "properties.products[1].price", "not text"),
    ({"products": [{"quantity": 10**13}]}, "properties.products[0].quantity", "within"),
])
def test_the_spec_amounts_of_an_order_are_bounded_numbers(live, properties, field, reason):
    person = f"amounts-{next(people)}"
    for key in ("sk-test", PUBLIC_KEY):
        headers = {"Origin": "http://shop.test"} if key == PUBLIC_KEY else {}
        answer = live.post("/v1/track", {"anonymousId": person, "event": "Order Completed",
                                         "properties": properties}, key, **headers)
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert body["field"] == field and reason in body["reason"], body
    assert live.profile(f"anon:{person}").status_code == 404  # nothing was written


def test_revenue_and_value_are_numbers_on_every_track_call_the_rest_on_shop_events(live):
    person = f"amounts-{next(people)}"
    answer = order(live, person, {"value": "high"}, event="Lead Captured")
    assert answer.status_code == 400 and answer.json()["field"] == "properties.value"
    # Outside the e-commerce spec, a property called price or discount is the site's own.
    assert order(live, person, {"discount": "none", "price": "on request"},
                 event="Quote Requested").status_code == 200
    assert order(live, person, {"discount": "none"}, event="Coupon Applied").status_code == 400
    assert order(live, person, {"revenue": None, "products": ["not an object"]}).status_code == 200


def test_two_huge_orders_leave_the_sum_finite(live):
    person = f"amounts-{next(people)}"
    assert order(live, person, {"revenue": 1.7e308}).status_code == 400
    for _ in range(2):
        assert order(live, person, {"revenue": BOUND}).status_code == 200
    profile = live.profile(f"user:{person}").json()
    assert profile["aggregates"]["spend_30d"] == 2 * BOUND
    assert "spender" in profile["segments"]


def acceptable(amount: Any) -> bool:
    """The rule, stated apart from the code: absent, or a number (not a boolean) within the bound."""
    return amount is None or (type(amount) in (int, float) and abs(amount) <= BOUND)


amounts = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from(["12abc", "12.50", "", True, False, None, [1], {"x": 1}]),
)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(amounts, min_size=1, max_size=6))
def test_a_sum_is_the_sum_of_the_accepted_amounts(live: LiveEdge, revenues: list[Any]) -> None:
    person = f"amounts-{next(people)}"
    accepted: list[float] = []
    for revenue in revenues:
        answer = order(live, person, {"revenue": revenue})
        if acceptable(revenue):
            assert answer.status_code == 200, (revenue, answer.text)
            if revenue is not None:
                accepted.append(float(revenue))
        else:
            assert answer.status_code == 400, (revenue, answer.text)
            assert answer.json()["field"] == "properties.revenue"
    stored = live.profile(f"user:{person}")
    if stored.status_code == 404:
        assert not any(acceptable(r) for r in revenues)
        return
    spend = stored.json()["aggregates"]["spend_30d"]
    assert spend == pytest.approx(sum(accepted), rel=1e-9, abs=1e-6)
