"""The official Segment Python client, pointed at the edge, lands its events in the profile."""

from __future__ import annotations

import segment.analytics as analytics

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
