"""The official Segment Python client, pointed at the edge, lands its events in the profile
and reads the edge's refusals (Segment's `code` and `message`) instead of reporting "unknown"."""

from __future__ import annotations

import pytest
import segment.analytics as analytics
from segment.analytics.request import APIError

from tests.support import SECRET_KEY


def test_segment_analytics_python_events_land(edge):
    client = analytics.Client(write_key=SECRET_KEY, host=edge.url, sync_mode=True,
                              on_error=lambda e, batch: errors.append(e))
    errors: list = []
    client.identify("seg-user", {"first_name": "Sega", "email": "sega@example.com"})
    client.track("seg-user", "Product Viewed", {"product_id": "p9", "category": "shoes"})
    client.track("seg-user", "Product Viewed", {"product_id": "p8", "category": "bags"})
    client.page("seg-user", category="Docs", name="Intro", properties={"url": "https://x/docs"})
    client.flush()
    assert errors == []
    profile = edge.profile("user:seg-user").json()
    assert profile["traits"]["first_name"] == "Sega"
    assert profile["aggregates"]["views_7d"] == 2
    assert profile["aggregates"]["cats_30d"] == 2
    assert profile["recent_products"] == ["p8", "p9"]
    assert profile["events"] == 4


def test_the_sdk_reads_the_reason_of_a_refused_key(edge):
    client = analytics.Client(write_key="not-a-key", host=edge.url, sync_mode=True)
    with pytest.raises(APIError) as refused:
        client.track("seg-user", "Product Viewed")
    assert refused.value.status == 401
    assert refused.value.code == "unauthorized"
    assert refused.value.message == "unknown key"


def test_the_sdk_hands_on_error_the_field_and_reason_of_a_bad_event(edge):
    errors: list = []
    client = analytics.Client(write_key=SECRET_KEY, host=edge.url, max_retries=0,
                              on_error=lambda e, batch: errors.append(e))
    deep: dict = {"leaf": 1}
    for _ in range(8):
        deep = {"a": deep}
    client.track("seg-user", "Product Viewed", {"nested": deep})
    client.flush()
    client.join()
    (error,) = errors
    assert isinstance(error, APIError) and error.status == 400
    assert error.code == "invalid_request"
    assert error.message.startswith("batch[0].properties.nested.a") and "nested deeper" in error.message
