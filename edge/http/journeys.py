"""Journeys seen from outside: the list with counts per step, enrolments, pause and resume.

- `GET /v1/journeys` (scope admin, or journeys:enroll for the journeys the key names):
  each loaded journey, its version, entry, and per step the outcomes counted so far
  and the runs waiting there now.
- `POST /v1/journeys/{journey_id}/enrollments` (scope journeys:enroll, limited to the
  journeys the key names; or admin): enrols people. The request is appended to the
  event stream as an Enrollment record, which the automation worker carries out at
  least once; the idempotency key (body or `Idempotency-Key` header) makes a retried
  request enrol each person once.
- `POST /v1/journeys/{journey_id}/pause` and `/resume` (scope admin): a paused journey
  takes no one in, and its runs wait where they are until it resumes.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from edge.http.common import json_response, require_scope
from edge.http.errors import error_response
from edge.http.profiles import identifier_of
from edge.http.state import EdgeState
from edge.ingest.auth import AuthError
from edge.ingest.wire import InputError
from edge.store import streams

MAX_PEOPLE = 1_000


class Person(msgspec.Struct, forbid_unknown_fields=True):
    profile: str  # a profile id or "kind:value" identifier; a bare value is a user id
    key: str | None = None  # the run key (a cart, an order); default: the journey's own
    data: dict[str, Any] = {}


class EnrollmentRequest(msgspec.Struct, forbid_unknown_fields=True):
    people: list[Person]
    idempotency_key: str | None = None


_decode_request = msgspec.json.Decoder(EnrollmentRequest).decode


def _caller(request: Request, state: EdgeState) -> Any:
    return state.keyring.authenticate(request.headers.get("authorization"))


def _journey(state: EdgeState, journey_id: str) -> Any:
    return state.journeys.book.current.get(journey_id)


async def list_journeys(request: Request) -> Response:
    """Every loaded journey with its counts per step."""
    state: EdgeState = request.app.state.edge
    caller = _caller(request, state)
    if caller.may("admin"):
        visible = list(state.journeys.book.current.values())
    else:
        require_scope(caller, "journeys:enroll")
        visible = [j for j in state.journeys.book.current.values() if j.id in caller.journeys]
    stats = await state.journey_store.stats([j.id for j in visible])
    paused = await state.journey_store.paused()
    answer = []
    for journey in sorted(visible, key=lambda j: j.id):
        counts = stats.get(journey.id, {})
        answer.append({
            "id": journey.id, "version": journey.version, "description": journey.description,
            "entry": journey.entry.kind, "paused": journey.id in paused,
            "entered": counts.get("entry", {}).get("entered", 0),
            "steps": [{"id": step.id, "kind": step.kind, "counts": counts.get(step.id, {})}
                      for step in journey.steps],
            "ended": counts.get("end", {}),
        })
    return json_response({"journeys": answer})


async def enroll(request: Request) -> Response:
    """Enrol people into a journey (carried out by the automation worker)."""
    state: EdgeState = request.app.state.edge
    caller = _caller(request, state)
    journey_id = request.path_params["journey_id"]
    if not caller.may("admin"):
        require_scope(caller, "journeys:enroll")
        if journey_id not in caller.journeys:
            raise AuthError(403, f"the key may not enrol into journey {journey_id!r}")
    if _journey(state, journey_id) is None:
        return error_response(404, "not_found", f"no journey {journey_id!r}", field="journey_id")
    body = _decode_request(await request.body())
    if not body.people or len(body.people) > MAX_PEOPLE:
        raise InputError("people", f"must list from 1 to {MAX_PEOPLE} people")
    idempotency = body.idempotency_key or request.headers.get("idempotency-key")
    if not idempotency or len(idempotency) > 200:
        raise InputError("idempotency_key", "is required (in the body or the Idempotency-Key "
                                            "header), at most 200 characters")
    now = state.pipeline.clock.now_ms()
    accepted, missing = [], []
    for index, person in enumerate(body.people):
        identifier = identifier_of(person.profile)
        profile_id = await state.store.resolve(identifier)
        if profile_id is None:
            missing.append({"index": index, "profile": person.profile,
                            "reason": "no profile for this identifier"})
            continue
        record = streams.Enrollment(
            profile_id=profile_id, message_id=streams.new_message_id(), timestamp=now,
            journey=journey_id, idempotency_key=f"{idempotency}:{index}", key=person.key,
            data=person.data)
        await state.redis.xadd(state.settings.stream.key, streams.encode(record),
                               maxlen=state.settings.stream.max_length, approximate=True)
        accepted.append({"index": index, "profile": profile_id})
    return json_response({"journey": journey_id, "accepted": accepted, "rejected": missing},
                         202 if accepted else 422)


async def pause(request: Request) -> Response:
    """Pause a journey: no one enters; runs wait where they are."""
    return await _set_paused(request, True)


async def resume(request: Request) -> Response:
    """Resume a paused journey."""
    return await _set_paused(request, False)


async def _set_paused(request: Request, paused: bool) -> Response:
    state: EdgeState = request.app.state.edge
    require_scope(_caller(request, state), "admin")
    journey_id = request.path_params["journey_id"]
    if _journey(state, journey_id) is None:
        return error_response(404, "not_found", f"no journey {journey_id!r}", field="journey_id")
    await state.journey_store.set_paused(journey_id, paused)
    return json_response({"journey": journey_id, "paused": paused})
