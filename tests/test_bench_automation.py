"""bench.automation's parts work: each is run at a tiny size against a real redis-server,
a real edge and a real `kairos worker` process. Nothing here is timed: the figures
only have to exist and the counts to add up."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from bench import automation
from edge.cli import main as kairos
from edge.store.embedded import EmbeddedRedis


@pytest.fixture
def server(tmp_path: Path):
    with EmbeddedRedis(tmp_path / "redis", persistent=False) as running:
        yield running


def test_the_twenty_journeys_and_the_timer_journey_load(tmp_path: Path) -> None:
    assert len(automation.journeys()) == 20
    assert kairos(["check", str(automation.write_config(tmp_path / "a", automation.journeys()))]) == 0
    timers = automation.write_config(tmp_path / "b", {"cart-nudge": automation.TIMER_JOURNEY})
    assert kairos(["check", str(timers)]) == 0
    assert "quiet_hours" not in (tmp_path / "a" / "rules" / "policy.yaml").read_text()


def test_the_event_mix_has_every_kind_and_unique_message_ids() -> None:
    events = automation.make_events(2_000, 100)
    assert len({event["messageId"] for event in events}) == 2_000
    kinds = {event.get("event") or event["type"] for event in events}
    assert kinds == {kind for _, kind in automation.MIX}
    assert sum(weight for weight, _ in automation.MIX) == 100


def test_events_then_lag(server: EmbeddedRedis, tmp_path: Path) -> None:
    report, worker = automation.measure_events(server.url, server.pid, tmp_path, 300, 40,
                                               timeout_s=120)
    try:
        assert report["events"] == 300
        assert report["stream_entries"] >= 300  # with the edge's own records
        assert 0 < report["timed_events"] <= report["stream_entries"]
        assert report["events_per_s"] > 0
        assert report["runs_started"] > 0
        assert report["worker_counters"]["events"] == 300
        lag = automation.measure_lag(server.url, rate=100, duration_s=1.0, settle_s=60)
    finally:
        worker.__exit__()
    assert lag["entries"] == 100
    assert 0 <= lag["lag_ms"]["p50"] <= lag["lag_ms"]["p99"] <= lag["lag_ms"]["max"]
    client = redis.Redis.from_url(server.url)
    try:
        assert automation.group_state(client)[0] == 0  # every entry fed was acknowledged
        assert client.xlen(automation.STREAM) >= 400
    finally:
        client.close()


def test_timers_fire(server: EmbeddedRedis, tmp_path: Path) -> None:
    report = automation.measure_timers(server.url, server.pid, tmp_path, 25, timeout_s=120)
    assert report["timers_fired"] == 25
    assert report["sends"] == 25
    assert report["left_pending"] == 0
    assert report["step_outcomes"]["completed"] == 25
    assert report["timers_per_s"] > 0


def test_timer_memory(server: EmbeddedRedis) -> None:
    report = automation.measure_timer_memory(server.url, 3_000, chunk=1_000)
    assert report["timers"] == 3_000
    assert report["bytes_per_timer"] > 0
    assert report["shards"] == 8


def test_verdicts_and_table() -> None:
    report = {"events": {"events_per_s": 3_500}, "timers": {"timers_per_s": 900},
              "timer_memory": {"timers": 1_000, "bytes_per_timer": 250.0},
              "lag": {"rate_per_s": 1_750, "lag_ms": {"p50": 5, "p99": 1_000}}}
    rows = automation.verdicts(report)
    assert [row["met"] for row in rows] == [True, False, True, False]
    printed = automation.table(rows, report["lag"])
    assert "3,500" in printed and "NO" in printed
