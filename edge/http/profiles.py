"""Profiles: read (scope profiles:read) and erase (scope profiles:delete).

`{id}` is a profile id or any identifier typed as "kind:value" (anon:…, user:…,
email:<sha256>, phone:<sha256>, device:…); a bare value is taken as a user id.
Failures (a key without the scope, Redis down) are answered by edge/http/errors.py.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from edge.http.common import json_response, require_scope
from edge.http.errors import error_response
from edge.http.state import EdgeState
from edge.pipeline.delivery import profile_from

IDENTIFIER_KINDS = ("anon", "user", "email", "phone", "device")


def _identifier(raw: str) -> str:
    kind, sep, _ = raw.partition(":")
    return raw if sep and kind in IDENTIFIER_KINDS else f"user:{raw}"


def _authorize(request: Request, state: EdgeState, scope: str) -> None:
    caller = state.keyring.authenticate(request.headers.get("authorization"))
    require_scope(caller, scope)


async def get_profile(request: Request) -> Response:
    """The person's profile, identities, segments and aggregates."""
    state: EdgeState = request.app.state.edge
    _authorize(request, state, "profiles:read")
    identifier = _identifier(request.path_params["profile_id"])
    layout = state.rulebook.active.layout
    now = state.pipeline.clock.now_ms()
    reply = await state.store.read(identifier, layout, now)
    if reply is None:
        return error_response(404, "not_found", "no profile for this identifier", field="id")
    profile = profile_from(reply, layout)
    profile["identities"] = await state.store.identifiers(profile["id"])
    return json_response(profile)


async def delete_profile(request: Request) -> Response:
    """Erase every key of the person, its identity links and its events in the stream."""
    state: EdgeState = request.app.state.edge
    _authorize(request, state, "profiles:delete")
    identifier = _identifier(request.path_params["profile_id"])
    profile_id = await state.store.resolve(identifier)
    if profile_id is None:
        return error_response(404, "not_found", "no profile for this identifier", field="id")
    counts = await state.store.erase(profile_id, state.rulebook.active.layout)
    return json_response({"deleted": True, "id": profile_id, **counts})
