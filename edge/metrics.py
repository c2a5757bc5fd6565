"""Prometheus metrics. With several workers, prometheus_client's multiprocess
mode (PROMETHEUS_MULTIPROC_DIR, set by `kairos serve`) sums them across workers."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram,
                               generate_latest, multiprocess)

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
RULE_BUCKETS = (0.00001, 0.00002, 0.00003, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.005)


class Metrics:
    def __init__(self) -> None:
        # A private registry per app keeps test apps from colliding.
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
        self._routes: dict[str, RouteMetrics] = {}
        self.events = Counter("kairos_events", "Events accepted", ["type", "outcome"],
                              registry=self.registry)

    def route(self, route: str) -> "RouteMetrics":
        found = self._routes.get(route)
        if found is None:
            found = self._routes[route] = RouteMetrics(self, route)
        return found

    def render(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RouteMetrics:
    """One route's latency histogram and status counters, resolved once rather than per request."""

    def __init__(self, metrics: Metrics, route: str) -> None:
        self._metrics = metrics
        self.route = route
        self.latency = metrics.latency.labels(route)
        self._by_status: dict[int, Any] = {}

    def observe(self, seconds: float, status: int) -> None:
        self.latency.observe(seconds)
        counter = self._by_status.get(status)
        if counter is None:
            counter = self._by_status[status] = self._metrics.requests.labels(self.route, str(status))
        counter.inc()
