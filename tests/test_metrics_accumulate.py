"""Metrics recorded into plain accumulators and flushed show exactly what prometheus_client
shows when fed the same values directly: same names, help, labels, buckets and numbers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from edge.runtime.metrics import Metrics, PendingHistogram, _histogram_values

ROOT = Path(__file__).resolve().parent.parent

# Written out rather than imported, so that a change to what /metrics exposes fails here.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
RULE_BUCKETS = (0.00001, 0.00002, 0.00003, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.005)
ROUTES = ("/v1/page", "/v1/track", "/v1/batch")


class Reference:
    """The metrics as they were before accumulation: every value straight into prometheus."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("kairos_requests", "HTTP requests", ["route", "status"],
                                registry=self.registry)
        self.latency = Histogram("kairos_request_seconds", "HTTP request latency", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.rule_seconds = Histogram("kairos_rule_evaluation_seconds",
                                      "Time to evaluate the ruleset for one event",
                                      buckets=RULE_BUCKETS, registry=self.registry)
        self.redis_errors = Counter("kairos_redis_errors", "Redis calls that failed or timed out",
                                    registry=self.registry)
        self.events = Counter("kairos_events", "Events accepted", ["type", "outcome"],
                              registry=self.registry)

    def apply(self, op: tuple[Any, ...]) -> None:
        kind, *args = op
        if kind == "request":
            route, status, seconds = args
            self.latency.labels(route).observe(seconds)
            self.requests.labels(route, str(status)).inc()
        elif kind == "rule":
            self.rule_seconds.observe(args[0])
        elif kind == "event":
            event_type, outcome, n = args
            self.events.labels(event_type, outcome).inc(n)


def record(metrics: Metrics, op: tuple[Any, ...]) -> None:
    """The hot path's calls for one operation."""
    kind, *args = op
    if kind == "request":
        route, status, seconds = args
        metrics.route(route).observe(seconds, status)
    elif kind == "rule":
        metrics.rule_seconds.observe(args[0])
    elif kind == "event":
        event_type, outcome, n = args
        metrics.events.inc((event_type, outcome), n)
    elif kind == "flush":
        metrics.flush()


def families(text: str) -> list[tuple[str, str, str]]:
    return [(f.name, f.type, f.documentation) for f in text_string_to_metric_families(text)]


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample but the `_created` timestamps, which differ between any two registries."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples
            if not s.name.endswith("_created")}


def assert_same_samples(got: str, expected: str) -> None:
    got_samples, expected_samples = samples(got), samples(expected)
    assert got_samples.keys() == expected_samples.keys()
    for key, value in expected_samples.items():
        if key[0].endswith("_sum"):
            # One sum of many values against many small additions: rounding may differ.
            assert got_samples[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
        else:
            assert got_samples[key] == value, key


def assert_same_exposition(metrics: Metrics, reference: Reference) -> None:
    got = metrics.render()[0].decode()
    expected = generate_latest(reference.registry).decode()
    assert families(got) == families(expected)
    assert_same_samples(got, expected)


def seconds(buckets: tuple[float, ...], high: float) -> st.SearchStrategy[float]:
    # Bucket bounds themselves are drawn often: a value equal to a bound belongs to that bucket.
    return st.one_of(st.sampled_from(buckets),
                     st.floats(min_value=0.0, max_value=high, allow_nan=False))


operations = st.lists(st.one_of(
    st.tuples(st.just("request"), st.sampled_from(ROUTES), st.sampled_from([200, 400, 503]),
              seconds(LATENCY_BUCKETS, 3.0)),
    st.tuples(st.just("rule"), seconds(RULE_BUCKETS, 0.01)),
    st.tuples(st.just("event"), st.sampled_from(["page", "track", "batch"]),
              st.sampled_from(["accepted", "duplicate"]), st.integers(0, 3)),
    st.tuples(st.just("flush")),
), max_size=60)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_flushed_exposition_equals_direct_observation(ops):
    metrics, reference = Metrics(), Reference()
    for op in ops:
        record(metrics, op)
        reference.apply(op)
        if op[0] == "flush":
            # A scrape in the middle: a later one must not count these values again.
            assert_same_exposition(metrics, reference)
    assert_same_exposition(metrics, reference)


@pytest.mark.parametrize("labelled", [False, True])
def test_prometheus_histogram_internals_as_expected(labelled):
    """Fails loudly if prometheus_client changes the private values that flushing adds to."""
    values = [0.0, 0.00001, 0.000015, 0.00003, 0.0007, 0.005, 0.006, 2.5, 1e-7, 0.0002] * 7

    def histogram(registry: CollectorRegistry) -> Any:
        made = Histogram("h", "help", ["l"] if labelled else [], buckets=RULE_BUCKETS,
                         registry=registry)
        return made.labels("x") if labelled else made

    flushed_registry, direct_registry = CollectorRegistry(), CollectorRegistry()
    pending = PendingHistogram(histogram(flushed_registry), RULE_BUCKETS)
    direct = histogram(direct_registry)
    for value in values:
        pending.observe(value)
        direct.observe(value)
    pending.flush()
    pending.flush()  # nothing left: no change
    got = generate_latest(flushed_registry).decode()
    assert_same_samples(got, generate_latest(direct_registry).decode())
    count_line = f'h_count{{l="x"}} {len(values)}.0' if labelled else f"h_count {len(values)}.0"
    assert count_line in got


def test_unexpected_histogram_internals_fail_at_once():
    class NotAHistogram:
        _buckets = [object()]

    with pytest.raises(RuntimeError, match="prometheus_client"):
        _histogram_values(NotAHistogram(), 1)  # type: ignore[arg-type]
    registry = CollectorRegistry()
    with pytest.raises(RuntimeError):
        _histogram_values(Histogram("h", "help", buckets=[1.0], registry=registry), 5)


def test_a_failing_flush_neither_raises_nor_stops_the_others(caplog):
    metrics = Metrics()
    metrics.events.inc(("page", "accepted"), -1)  # a Counter refuses to go down
    metrics.rule_seconds.observe(0.00002)
    metrics.flush()
    assert "dropped" in caplog.text
    metrics.flush()  # the refused delta is not retried
    body = metrics.render()[0].decode()
    assert "kairos_rule_evaluation_seconds_count 1.0" in body


def test_periodic_flush_and_final_flush_on_cancel():
    metrics = Metrics()

    def count() -> float | None:
        return metrics.registry.get_sample_value("kairos_rule_evaluation_seconds_count")

    async def main() -> None:
        task = asyncio.create_task(metrics.flush_periodically(interval_s=0.01))
        metrics.rule_seconds.observe(0.00002)
        await asyncio.sleep(0.1)
        assert count() == 1  # applied without a scrape
        metrics.rule_seconds.observe(0.00002)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert count() == 2  # applied on the way out

    asyncio.run(main())


WORKER = """
import json, sys
from edge.runtime.metrics import Metrics
metrics = Metrics()
for kind, *args in json.loads(sys.argv[1]):
    if kind == "request":
        metrics.route(args[0]).observe(args[2], args[1])
    elif kind == "rule":
        metrics.rule_seconds.observe(args[0])
    elif kind == "event":
        metrics.events.inc((args[0], args[1]), args[2])
metrics.flush()
"""


def test_multiprocess_workers_flush_into_the_shared_files(tmp_path):
    """Two worker processes in multiprocess mode: the collector sums what each flushed."""
    workers = [
        [("request", "/v1/page", 200, 0.0012), ("request", "/v1/page", 200, 0.004),
         ("rule", 0.00002), ("rule", 0.3), ("event", "page", "accepted", 1)],
        [("request", "/v1/page", 503, 2.0), ("request", "/v1/track", 200, 0.0005),
         ("rule", 0.00001), ("event", "page", "accepted", 1), ("event", "batch", "accepted", 3)],
    ]
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for ops in workers:
        subprocess.run([sys.executable, "-c", WORKER, json.dumps(ops)], env=env, cwd=ROOT,
                       check=True, timeout=60)

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    reference = Reference()
    for op in (op for ops in workers for op in ops):
        reference.apply(op)
    got = generate_latest(registry).decode()
    assert_same_samples(got, generate_latest(reference.registry).decode())
    assert 'kairos_requests_total{route="/v1/page",status="200"} 2.0' in got
