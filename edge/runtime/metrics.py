"""Prometheus metrics. With several workers, prometheus_client's multiprocess
mode (PROMETHEUS_MULTIPROC_DIR, set by `kairos serve`) sums them across workers.

Per-event metrics are not recorded into prometheus_client on the hot path: a
Histogram.observe takes a lock per value, and in multiprocess mode writes an
mmap'd file per value, which cost 5 to 10 µs of every event. The hot path adds
to plain Python numbers instead (all calls happen on the event loop thread, so
no lock is needed), and `flush` applies those deltas to the prometheus objects:
right before /metrics renders, so one process shows exact numbers, and about
once a second from a background task, so that in multiprocess mode the worker
that answers a scrape also shows the other workers' recent numbers.
"""

from __future__ import annotations

import asyncio
import logging
import os
from bisect import bisect_left
from typing import Any, Callable, Hashable, Protocol, TypeVar

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram,
                               generate_latest, multiprocess)

log = logging.getLogger("kairos")

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
RULE_BUCKETS = (0.00001, 0.00002, 0.00003, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.005)
FLUSH_INTERVAL_S = 1.0


class Pending(Protocol):
    """Values recorded on the hot path that flush() applies to a prometheus object."""

    def flush(self) -> None: ...


P = TypeVar("P", bound=Pending)


class Metrics:
    def __init__(self) -> None:
        # A private registry per app keeps test apps from colliding.
        self.registry = CollectorRegistry()
        # The prometheus objects: what /metrics shows. Created in this order so that
        # the exposition lists them as it always has.
        self.requests = Counter("kairos_requests", "HTTP requests", ["route", "status"],
                                registry=self.registry)
        self.latency = Histogram("kairos_request_seconds", "HTTP request latency", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.rule_histogram = Histogram("kairos_rule_evaluation_seconds",
                                        "Time to evaluate the ruleset for one event",
                                        buckets=RULE_BUCKETS, registry=self.registry)
        # Rare (an unavailable store): recorded directly, never pending.
        self.redis_errors = Counter("kairos_redis_errors", "Redis calls that failed or timed out",
                                    registry=self.registry)
        self.events_counter = Counter("kairos_events", "Events accepted", ["type", "outcome"],
                                      registry=self.registry)

        # What the hot path records into; flush() applies it to the objects above.
        self._pending: list[Pending] = []
        self.rule_seconds = self._track(PendingHistogram(self.rule_histogram, RULE_BUCKETS))
        # Keyed by (type, outcome): `metrics.events.inc((type, outcome), n)`.
        self.events = self._track(PendingCounts(lambda key: self.events_counter.labels(*key)))
        self._routes: dict[str, RouteMetrics] = {}

    def _track(self, pending: P) -> P:
        self._pending.append(pending)
        return pending

    def route(self, route: str) -> "RouteMetrics":
        found = self._routes.get(route)
        if found is None:
            found = self._routes[route] = RouteMetrics(self, route)
        return found

    def flush(self) -> None:
        """Apply what the hot path recorded since the last flush. Never raises.

        Each accumulator hands over its deltas and starts again from zero before
        they are applied, so a delta is applied at most once; and a flush has no
        await, so no request on this event loop records in the middle of one. An
        accumulator whose deltas cannot be applied is logged and its deltas are
        dropped rather than kept for a retry: after a partial apply, a retry would
        count part of them twice.
        """
        for pending in self._pending:
            try:
                pending.flush()
            except Exception:
                log.exception("metrics: could not apply recorded values; they are dropped")

    async def flush_periodically(self, interval_s: float = FLUSH_INTERVAL_S) -> None:
        """Flush every interval until cancelled, then once more so nothing is left behind."""
        try:
            while True:
                await asyncio.sleep(interval_s)
                self.flush()
        finally:
            self.flush()

    def render(self) -> tuple[bytes, str]:
        self.flush()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RouteMetrics:
    """One route's latency histogram and status counters, resolved once rather than per request."""

    def __init__(self, metrics: Metrics, route: str) -> None:
        self.route = route
        # Resolving the child now, as before, shows the route's zero histogram at once.
        self.latency = metrics._track(PendingHistogram(metrics.latency.labels(route),
                                                       LATENCY_BUCKETS))
        # Keyed by the status code as an int: the label's str() is made at flush time.
        self._by_status = metrics._track(
            PendingCounts(lambda status: metrics.requests.labels(route, str(status))))

    def observe(self, seconds: float, status: int) -> None:
        self.latency.observe(seconds)
        counts = self._by_status.counts
        counts[status] = counts.get(status, 0) + 1


class PendingCounts:
    """Increments of a labelled Counter not yet applied, as plain ints by key."""

    __slots__ = ("counts", "_child")

    def __init__(self, child: Callable[[Any], Any]) -> None:
        self.counts: dict[Hashable, int] = {}
        self._child = child  # key -> the prometheus Counter child it counts into

    def inc(self, key: Hashable, amount: int = 1) -> None:
        counts = self.counts
        counts[key] = counts.get(key, 0) + amount

    def flush(self) -> None:
        counts, self.counts = self.counts, {}
        for key, amount in counts.items():
            # Zero increments are applied too: they create the child, as an inc(0) always did.
            self._child(key).inc(amount)


class PendingHistogram:
    """Observations of one Histogram (or labelled child) not yet applied to it.

    counts[i] is the number of values in bucket i alone (not cumulative), where
    bucket i is the first whose upper bound is >= the value, as prometheus_client
    assigns them; the last is +Inf.
    """

    __slots__ = ("counts", "total", "_bounds", "_bucket_values", "_sum_value")

    def __init__(self, histogram: Histogram, buckets: tuple[float, ...]) -> None:
        self._bounds = tuple(float(b) for b in buckets)
        self._bucket_values, self._sum_value = _histogram_values(histogram, len(buckets) + 1)
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bisect_left finds the first bound >= value; past the last bound is +Inf.
        self.counts[bisect_left(self._bounds, value)] += 1
        self.total += value

    def flush(self) -> None:
        counts, total = self.counts, self.total
        if not any(counts):
            return
        self.counts, self.total = [0] * len(counts), 0.0
        for value, n in zip(self._bucket_values, counts):
            if n:
                value.inc(n)
        self._sum_value.inc(total)


def _histogram_values(histogram: Histogram, n_buckets: int) -> tuple[list[Any], Any]:
    """The value objects behind a Histogram (or labelled child): per bucket, and the sum.

    prometheus_client has no public way to add many observations at once, so
    flushing adds to these directly with their `inc(amount)`. They are private:
    in prometheus_client 0.20 to 0.26 a Histogram keeps `_buckets`, one value
    per bucket counting that bucket alone, with +Inf last (the exposition adds
    them up), and `_sum`; each value is a MutexValue, or an MmapedValue in
    multiprocess mode. The count is not stored: it is the sum of the buckets.
    This is checked when an accumulator is made, so a change shows at startup
    rather than as wrong numbers; the tests compare flushed exposition with
    directly observed exposition.
    """
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if (not isinstance(buckets, list) or len(buckets) != n_buckets
            or not all(callable(getattr(v, "inc", None)) for v in [*buckets, total])):
        raise RuntimeError("prometheus_client's Histogram no longer keeps _buckets and _sum "
                           "as expected; edge/runtime/metrics.py needs updating")
    return buckets, total
