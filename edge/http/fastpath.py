"""A short way in for the ingest routes: the hot path skips Starlette's stack.

Every event goes through the ingest endpoints. Starlette's error middleware,
exception middleware, router (a regular expression per route) and its wrappers
around `send` cost about a fifth of a worker's CPU per event in profiles. For
POSTs to the ingest paths this wrapper calls the endpoint directly and answers
unexpected errors as the error middleware would; everything else (other
routes, lifespan) goes to the Starlette app unchanged.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from edge.http.common import error_response

log = logging.getLogger("kairos")

Endpoint = Callable[[Request], Awaitable[Response]]


class IngestFastPath:
    def __init__(self, app: Starlette, endpoints: dict[str, Endpoint]) -> None:
        self.app = app
        self.endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.endpoints.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self.app
                try:
                    response = await endpoint(Request(scope, receive))
                except Exception:
                    log.exception("unhandled error on %s", scope["path"])
                    response = error_response(500, "internal", "unexpected error; it has been logged")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    # Tests and tools reach the Starlette app's routes and state through the wrapper.
    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)
