"""Segment-compatible ingestion: /v1/track, page, screen, identify, alias, group, batch.

Each single-event call answers with the person's decisions. A batch is
checked whole before anything is written, so a bad event rejects the batch
without half of it landing; its events are then applied person by person, in
order for each person and concurrently across people.
"""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from edge.ingest.auth import AuthError, Caller, origin_allowed
from edge.http import errors
from edge.http.common import check_json_content_type, header_map, json_response, read_body
from edge.ingest.normalize import normalize
from edge.pipeline.handler import EMPTY_ANSWER, RequestInfo
from edge.http.state import EdgeState
from edge.ingest.wire import InputError, batch_decoder, event_decoder


def _authenticate(headers: dict[str, str], state: EdgeState, body_key: str | None) -> Caller:
    caller = state.keyring.authenticate(headers.get("authorization"), body_key)
    if not caller.is_public and not caller.may("ingest"):
        raise AuthError(403, "the key lacks scope 'ingest'")
    origin = headers.get("origin")
    if not origin_allowed(caller, origin, headers.get("host"), state.own_pages_site):
        raise AuthError(403, f"the origin {origin[:200]} is not among the origins of this write key's "
                             "site (its origins in kairos.yaml)")
    return caller


REFUSALS = frozenset({401, 403})


def _cors(headers: dict[str, str], state: EdgeState, response: Response) -> Response:
    """Lets the browser read the answer: every answer for an allowed origin, and a refused
    key or origin for any origin, so the snippet can say why nothing works (a refusal
    carries nothing but its reason)."""
    origin = headers.get("origin")
    if origin and (origin in state.allowed_origins or response.status_code in REFUSALS):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Vary"] = "Origin"
    return response


def _request_info(headers: dict[str, str]) -> RequestInfo:
    return RequestInfo(user_agent=headers.get("user-agent"),
                       country=headers.get("cf-ipcountry") or headers.get("x-country"))


def single(event_type: str | None, route: str):
    """An endpoint for one event: of the given type, or (None) of the type the body names."""

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        state: EdgeState = request.app.state.edge
        headers = header_map(request)
        try:
            response = await _single(request, headers, state, event_type)
        except Exception as exc:
            # Answered here rather than by the fast path so the answer gets its CORS
            # headers (a browser cannot read it without them) and is counted per route.
            response = errors.answer(request, exc, fallback=EMPTY_ANSWER)
        state.metrics.route(route).observe(time.perf_counter() - started, response.status_code)
        return _cors(headers, state, response)

    endpoint.__name__ = f"ingest_{event_type or 'event'}"
    endpoint.__doc__ = (
        f"Ingest one {event_type} event and answer with the person's decisions." if event_type else
        "Ingest one event of any type (the body's `type`) and answer with the person's decisions.")
    return endpoint


async def _single(request: Request, headers: dict[str, str], state: EdgeState,
                  event_type: str | None) -> Response:
    settings = state.settings
    received = state.pipeline.clock.now_ms()
    check_json_content_type(headers)
    body = await read_body(request, headers, settings.limits.max_body_bytes,
                           settings.limits.max_depth)
    event = event_decoder.decode(body)
    caller = _authenticate(headers, state, event.writeKey)
    incoming = normalize(event, caller, settings.limits, received, forced_type=event_type)
    async with state.event_deadline():
        outcome = await state.pipeline.handle(incoming, caller, _request_info(headers))
    state.metrics.events.inc((incoming.event["type"],
                              "duplicate" if outcome.duplicate else "accepted"))
    body: dict[str, Any] = {"success": True, "duplicate": outcome.duplicate, **outcome.answer}
    if not caller.is_public:
        body["profileId"] = outcome.profile_id
    response = json_response(body)
    _visitor_cookie(request, headers, caller, incoming.event.get("anonymousId"), response)
    return response


VISITOR_COOKIE = "kairos_aid"
VISITOR_COOKIE_MAX_AGE = 365 * 86_400
_COOKIE_SAFE = re.compile(r"[A-Za-z0-9._-]{1,128}")


def _visitor_cookie(request: Request, headers: dict[str, str], caller: Caller,
                    anonymous_id: str | None, response: Response) -> None:
    """Set the visitor's anonymous id as a cookie from the server.

    Browsers cap the life of cookies that scripts set (Safari: 7 days); a
    cookie in an HTTP response from the site's own domain keeps its Max-Age.
    Only for browsers (a public key from an allowed Origin), and only for ids
    that are safe inside a cookie header.
    """
    if not caller.is_public or "origin" not in headers or anonymous_id is None:
        return
    if not _COOKIE_SAFE.fullmatch(anonymous_id):
        return
    response.set_cookie(
        VISITOR_COOKIE, anonymous_id, max_age=VISITOR_COOKIE_MAX_AGE, path="/",
        domain=caller.site.cookie_domain or None, secure=request.url.scheme == "https",
        httponly=False,  # the snippet reads it
        samesite="lax")


def batch(route: str):
    async def endpoint(request: Request) -> Response:
        """Ingest up to limits.max_batch_events events of any type; idempotent by messageId."""
        started = time.perf_counter()
        state: EdgeState = request.app.state.edge
        headers = header_map(request)
        try:
            response = await _batch(request, headers, state)
        except Exception as exc:
            # Some events may have landed before a 503; a retry of the batch is counted once.
            response = errors.answer(request, exc, fallback=EMPTY_ANSWER)
        state.metrics.route(route).observe(time.perf_counter() - started, response.status_code)
        return _cors(headers, state, response)

    return endpoint


async def _batch(request: Request, headers: dict[str, str], state: EdgeState) -> Response:
    settings = state.settings
    received = state.pipeline.clock.now_ms()
    check_json_content_type(headers)
    body = await read_body(request, headers, settings.limits.max_body_bytes,
                           settings.limits.max_depth)
    payload = batch_decoder.decode(body)
    caller = _authenticate(headers, state, payload.writeKey)
    if not payload.batch:
        raise InputError("batch", "empty: expected at least one event")
    if len(payload.batch) > settings.limits.max_batch_events:
        raise InputError("batch", f"more than {settings.limits.max_batch_events} events")
    incoming = [
        normalize(event, caller, settings.limits, received, path=f"batch[{i}]",
                  batch_sent_at=payload.sentAt)
        for i, event in enumerate(payload.batch)
    ]

    async with state.batch_deadline():
        duplicates = await state.pipeline.handle_each(incoming, caller, _request_info(headers))
    state.metrics.events.inc(("batch", "accepted"), len(incoming) - duplicates)
    response = json_response({"success": True, "accepted": len(incoming) - duplicates,
                              "duplicates": duplicates})
    _visitor_cookie(request, headers, caller, incoming[-1].event.get("anonymousId"), response)
    return response


async def preflight(request: Request) -> Response:
    """CORS preflight for browsers posting JSON to the ingest routes."""
    state: EdgeState = request.app.state.edge
    origin = request.headers.get("origin")
    if not origin or origin not in state.allowed_origins:
        return errors.error_response(403, "forbidden", "origin not allowed")
    return Response(status_code=204, headers={
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    })

