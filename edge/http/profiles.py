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
from edge.ingest.auth import Caller
from edge.ingest.location import locate, shops_of
from edge.pipeline.delivery import profile_from
from edge.store import destinations
from edge.store.journeys import StoredJourneys
from edge.worker import erasure

IDENTIFIER_KINDS = ("anon", "user", "email", "phone", "device")


def identifier_of(raw: str) -> str:
    """The identifier a path or body names: `kind:value`, or a bare user id."""
    kind, sep, _ = raw.partition(":")
    return raw if sep and kind in IDENTIFIER_KINDS else f"user:{raw}"


def _authorize(request: Request, state: EdgeState, scope: str) -> Caller:
    caller = state.keyring.authenticate(request.headers.get("authorization"))
    require_scope(caller, scope)
    return caller


async def get_profile(request: Request) -> Response:
    """The person's profile, identities, segments and aggregates."""
    state: EdgeState = request.app.state.edge
    caller = _authorize(request, state, "profiles:read")
    identifier = identifier_of(request.path_params["profile_id"])
    layout = state.rulebook.active.layout
    now = state.pipeline.clock.now_ms()
    reply = await state.store.read(identifier, layout, now)
    if reply is None:
        return error_response(404, "not_found", "no profile for this identifier", field="id")
    profile = profile_from(reply, layout)
    locate(profile, shops_of(caller.site), now)  # as rules read it: the shop's name, open now
    profile["identities"] = await state.store.identifiers(profile["id"])
    profile["journeys"] = journeys_view(await state.journey_store.read(profile["id"]))
    return json_response(profile)


def journeys_view(stored: StoredJourneys) -> dict:
    """The person's runs (journey, version, step, next wake-up, a deferred send's reason)
    and entries, as GET /v1/profiles/{id} shows them."""
    runs = []
    for run in stored.state.runs.values():
        deferred = None
        if run.deferred is not None:
            deferred = {"reason": run.deferred.reason, "channel": run.deferred.channel,
                        "until": run.deferred.until, "detail": run.deferred.detail}
        runs.append({"journey": run.journey, "version": run.version, "key": run.key,
                     "run": run.id, "step": run.step, "entered_at": run.entered_at,
                     "next_wake_up": run.wake_at, "deferred": deferred})
    entries = {journey: {"last": entry.last, "count": entry.count}
               for journey, entry in stored.state.entries.items()}
    return {"runs": sorted(runs, key=lambda r: (r["journey"], r["key"])), "entries": entries}


async def delete_profile(request: Request) -> Response:
    """Erase every key of the person, its identity links and its events in the stream."""
    state: EdgeState = request.app.state.edge
    _authorize(request, state, "profiles:delete")
    identifier = identifier_of(request.path_params["profile_id"])
    profile_id = await state.store.resolve(identifier)
    if profile_id is None:
        return error_response(404, "not_found", "no profile for this identifier", field="id")
    forwarded = any(d.erasures for d in state.settings.destinations.values())
    identifiers = set(await state.store.identifiers(profile_id)) | {profile_id} \
        if state.journeys is not None or forwarded else set()
    if state.journeys is not None:
        await erasure.forget(state.redis, state.settings, state.journeys.book, identifiers)
    if forwarded:
        # before the keys go: a failure here leaves the person to be erased again
        await destinations.record_erasure(state.redis, profile_id, sorted(identifiers),
                                          state.pipeline.clock.now_ms())
    counts = await state.store.erase(profile_id, state.rulebook.active.layout)
    return json_response({"deleted": True, "id": profile_id, **counts})
