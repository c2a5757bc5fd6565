"""A short way in for the ingest routes: the hot path skips Starlette's stack.

Every event goes through the ingest endpoints. Starlette's error middleware,
exception middleware, router (a regular expression per route) and its wrappers
around `send` cost about a fifth of a worker's CPU per event in profiles. For
POSTs to the ingest paths this wrapper calls the endpoint directly and answers
what escapes it through the same error table as the app's exception handlers
(edge/http/errors.py); everything else (other routes, lifespan) goes to the
Starlette app unchanged.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from edge.http import errors

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
                request = Request(scope, receive)
                try:
                    response = await endpoint(request)
                except Exception as exc:
                    response = errors.answer(request, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    # Tests and tools reach the Starlette app's routes and state through the wrapper.
    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)
