"""Every known failure, answered once: a table from exception type to HTTP answer.

In the spirit of Starlette's `_exception_handler.py`: an exception is looked up
by its class and then its bases (so msgspec's ValidationError, a DecodeError,
finds its own row first), and the row says the status, the error code, the
reason, the field and any headers. The Starlette app registers every row as an
exception handler; the ingest fast path, which skips Starlette's middleware,
calls `answer` itself; what no row names answers a generic 500, logged once
with its traceback.

Bodies carry `field` and `reason` for people and Segment's `code` and `message`
for its SDKs: analytics-python reads exactly those two and reports "unknown"
with the raw body when they are missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Callable, Mapping

import msgspec
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.http.common import PREFLIGHT_ROUTE, json_response
from edge.ingest.auth import AuthError
from edge.ingest.wire import InputError, field_from_validation_error
from edge.store.catalog import CatalogError
from edge.store.profiles import StoreError

log = logging.getLogger("kairos")

RETRY_AFTER = {"Retry-After": "1"}


@dataclass(frozen=True, slots=True)
class Failure:
    """How one failure is answered. `expected` failures (the caller's or Redis's) are
    logged as one line; the rest are bugs, logged with their traceback."""

    status: int
    code: str
    reason: str
    field: str | None = None
    headers: Mapping[str, str] | None = None
    expected: bool = True

    @property
    def message(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"success": False, "error": self.code, "code": self.code,
                                "message": self.message, "reason": self.reason}
        if self.field is not None:
            body["field"] = self.field
        return body


def error_response(status: int, code: str, reason: str, field: str | None = None,
                   headers: Mapping[str, str] | None = None) -> Response:
    """An error a route answers itself (404 for an unknown id and the like)."""
    return _respond(Failure(status, code, reason, field, headers))


INTERNAL = Failure(500, "internal", "unexpected error; it has been logged", expected=False)


def _input(exc: InputError, request: Request) -> Failure:
    return Failure(exc.status, "invalid_request", exc.reason, exc.field)


def _auth(exc: AuthError, request: Request) -> Failure:
    if exc.status == 401:
        return Failure(401, "unauthorized", exc.reason,
                       headers={"WWW-Authenticate": 'Basic realm="kairos"'})
    return Failure(exc.status, "forbidden", exc.reason)


def _invalid_shape(exc: msgspec.ValidationError, request: Request) -> Failure:
    field, reason = field_from_validation_error(str(exc))
    return Failure(400, "invalid_request", reason, field)


def _not_json(exc: msgspec.DecodeError, request: Request) -> Failure:
    return Failure(400, "invalid_request", f"not valid JSON: {exc}", "body")


def _redis_unavailable(exc: BaseException, request: Request) -> Failure:
    return Failure(503, "unavailable",
                   f"Redis did not answer in time ({type(exc).__name__}); retry",
                   headers=RETRY_AFTER)


def _store_unsettled(exc: StoreError, request: Request) -> Failure:
    # Concurrent merges of the same person kept moving the profile; a retry settles it.
    return Failure(503, "unavailable", f"the profile store is busy: {exc}; retry",
                   headers=RETRY_AFTER)


def _catalog_unsettled(exc: CatalogError, request: Request) -> Failure:
    return Failure(503, "unavailable", f"the catalog store is busy: {exc}; retry",
                   headers=RETRY_AFTER)


def _disconnected(exc: ClientDisconnect, request: Request) -> Failure:
    # Nobody reads this answer; it keeps a dropped upload out of the 500s and the tracebacks.
    return Failure(400, "client_disconnected", "the connection closed before the body was read",
                   "body")


def _http(exc: HTTPException, request: Request) -> Failure:
    """What Starlette's router raises: no route, or not this method."""
    allowed = _allowed_methods(request) if exc.status_code in (404, 405) else []
    if not allowed:
        return Failure(404, "not_found", f"no route {request.url.path}", "path")
    if exc.status_code == 405:
        # Every method of every route of this path (Starlette names only the first route's).
        return Failure(405, "method_not_allowed", f"{request.method} is not allowed here; "
                       f"allowed: {', '.join(allowed)}", "method", {"Allow": ", ".join(allowed)})
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    return Failure(exc.status_code, code, exc.detail, headers=exc.headers)


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route answers on this request's path; empty when none does (the
    preflight alone, which answers OPTIONS under /v1/, makes no path a route)."""
    app = request.scope.get("app")
    found: set[str] = set()
    for route in getattr(app, "routes", ()):
        if getattr(route, "name", None) == PREFLIGHT_ROUTE or not getattr(route, "methods", None):
            continue
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            found |= route.methods
    if found and request.url.path.startswith("/v1/"):
        found.add("OPTIONS")
    return sorted(found)


Describe = Callable[[Any, Request], Failure]

TABLE: dict[type[Exception], Describe] = {
    InputError: _input,
    AuthError: _auth,
    msgspec.ValidationError: _invalid_shape,
    msgspec.DecodeError: _not_json,
    RedisError: _redis_unavailable,
    ConnectionError: _redis_unavailable,  # the socket under a Redis client
    TimeoutError: _redis_unavailable,  # the request's deadline; asyncio.TimeoutError is this class
    StoreError: _store_unsettled,
    CatalogError: _catalog_unsettled,
    ClientDisconnect: _disconnected,
    HTTPException: _http,
}


def describe(exc: BaseException, request: Request) -> Failure:
    for cls in type(exc).__mro__:
        row = TABLE.get(cls)
        if row is not None:
            return row(exc, request)
    return INTERNAL


def answer(request: Request, exc: BaseException,
           fallback: Mapping[str, Any] | None = None) -> Response:
    """The answer to `exc`, logged and counted. `fallback` goes into a 503's body:
    what the caller shows meanwhile (ingest: empty decisions, so a page keeps its defaults)."""
    failure = describe(exc, request)
    path = request.scope.get("path", "")
    if not failure.expected:
        log.error("unhandled error on %s %s", request.method, path, exc_info=exc)
    elif failure.status >= 500:
        log.warning("%s %s: %d %s", request.method, path, failure.status, failure.message)
    else:
        log.info("%s %s: %d %s", request.method, path, failure.status, failure.message)
    if failure.status == 503:
        state = getattr(request.app.state, "edge", None)
        if state is not None:
            state.metrics.redis_errors.inc()
    if fallback and failure.status == 503:
        return _respond(failure, fallback)
    return _respond(failure)


def _respond(failure: Failure, extra: Mapping[str, Any] | None = None) -> Response:
    body = failure.body()
    if extra:
        body.update(extra)
    return json_response(body, failure.status, dict(failure.headers) if failure.headers else None)


async def handle(request: Request, exc: Exception) -> Response:
    """A Starlette exception handler."""
    return answer(request, exc)


def exception_handlers() -> dict[Any, Callable[[Request, Exception], Any]]:
    """Every row of the table as Starlette exception handlers (Starlette looks them up by
    the exception's class and its bases, as `describe` does)."""
    return {cls: handle for cls in TABLE}


class UnexpectedErrors:
    """Answers what no row of the table names, as `answer` does.

    Starlette's own last resort (ServerErrorMiddleware) answers such errors too,
    but then raises them again for the server to log a second time; this sits
    inside it, so each bug is logged once, with its traceback.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:  # too late to answer: the server closes the connection
                raise
            await answer(Request(scope, receive), exc)(scope, receive, send)
