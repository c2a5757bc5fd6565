"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from edge.http.common import json_response
from edge.ingest.auth import AuthError
from edge.http.state import EdgeState
from edge.worker import metrics as automation


async def healthz(request: Request) -> Response:
    """The process is up."""
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when Redis answers and rules are loaded."""
    state: EdgeState = request.app.state.edge
    checks = {"rules": state.rulebook.active is not None, "redis": False}
    try:
        checks["redis"] = bool(await asyncio.wait_for(state.redis.ping(), 1.0))
    except (RedisError, OSError, asyncio.TimeoutError):
        pass
    ready = all(checks.values())
    ruleset = state.rulebook.active.ruleset
    return json_response({"status": "ready" if ready else "unavailable", "checks": checks,
                          "rules_version": ruleset.version}, 200 if ready else 503)


async def metrics(request: Request) -> Response:
    """Prometheus metrics; a secret key with scope `metrics` unless `metrics.public`."""
    state: EdgeState = request.app.state.edge
    if not state.settings.metrics.public:
        caller = state.keyring.authenticate(request.headers.get("authorization"))
        if caller.is_public or not caller.may("metrics"):
            raise AuthError(403, "reading /metrics needs a secret key with scope 'metrics' "
                                 "(or metrics.public: true in kairos.yaml)")
    body, content_type = state.metrics.render()
    try:
        body += (await automation.render(state.redis, state.settings,
                                         state.pipeline.clock.now_ms())).encode()
    except (RedisError, OSError):
        pass  # the edge's own metrics still answer while Redis is away
    return Response(body, media_type=content_type)
