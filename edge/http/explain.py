"""POST /v1/explain: what one event would do for one person, and why; changes nothing.

Secret key with scope profiles:read. The event runs through the hot path's own
stages in read mode: the event script tries it on scratch copies of the profile
(aggregates, traits, consent, cart, recently viewed, counters, exactly as ingest
would apply it, writing nothing), then the same decide, arbitration and
rendering run, and the effects stage is left out. The answer lists every rule
the event triggers with each condition's value and what arbitration removed,
so "why didn't she see the banner?" needs nothing else.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from edge.ingest import consent
from edge.ingest.auth import Caller
from edge.runtime.config import Limits
from edge.ingest.context import build_context
from edge.pipeline.delivery import local_clock, reachable_channels
from edge.http.common import (check_json_content_type, header_map, json_response, read_body,
                              require_scope)
from edge.http.errors import error_response
from edge.http.profiles import identifier_of
from edge.ingest.normalize import Incoming, normalize
from edge.pipeline.rulebook import ActiveRules
from edge.http.state import EdgeState
from edge.ingest.wire import EVENT_TYPES, Event, InputError
from rules.explain import (aggregate_kinds, cap_usage, explain_aggregate_updates, explain_rules,
                           explain_segments, json_safe, not_triggered)

SCOPE = "profiles:read"
AGGREGATES_NOTE = ("aggregates include this event, counted by the event script as ingest "
                   "would count it (count, sum, distinct and last alike)")
NOT_STORED = ("nothing was written: no delivery, segment, trait, tag or experiment variant "
              "was stored and the event is not in the stream")


class ExplainRequest(msgspec.Struct):
    profile: str | None = None  # a profile id or an identifier "kind:value"; a bare value is a user id
    event: Event | None = None  # as sent to /v1/track, /v1/page, ...: type, event, properties, ...
    user_agent: str | None = None  # the person's browser, which ingest reads from the request
    country: str | None = None  # the country header ingest would see


_decoder = msgspec.json.Decoder(ExplainRequest)


async def explain(request: Request) -> Response:
    """Explain what an event would decide for a profile: every rule, condition and removal."""
    state: EdgeState = request.app.state.edge
    headers = header_map(request)
    # Failures (no scope, bad input, Redis down) are answered by edge/http/errors.py.
    caller = state.keyring.authenticate(headers.get("authorization"))
    require_scope(caller, SCOPE)
    now = state.pipeline.clock.now_ms()
    check_json_content_type(headers)
    body = await read_body(request, headers, state.settings.limits.max_body_bytes,
                           state.settings.limits.max_depth)
    asked = _decoder.decode(body)
    identifier, incoming = _hypothetical(asked, caller, state.settings.limits, now)
    active = state.rulebook.active
    tried = await state.pipeline.try_apply(identifier, incoming, active, now)
    if tried is None:
        return error_response(404, "not_found", "no profile for this identifier", field="profile")
    answer = await _explanation(state, active, tried.profile, incoming, caller, asked, now)
    return json_response(answer)


def _hypothetical(asked: ExplainRequest, caller: Caller, limits: Limits,
                  now: int) -> tuple[str, Incoming]:
    """The identifier asked for, and the event checked exactly as ingest would check it."""
    if asked.profile is None or not asked.profile.strip():
        raise InputError("profile", "required: a profile id or an identifier such as user:42")
    event = asked.event
    if event is None:
        raise InputError("event", 'required: the event to try, e.g. {"type": "page"}')
    if event.type is None:
        raise InputError("event.type", "required: one of " + ", ".join(EVENT_TYPES))
    identifier = identifier_of(asked.profile.strip())
    if event.userId is None and event.anonymousId is None:
        # The event is the person's own; ingest wants an id, and the one asked for will do.
        kind, _, value = identifier.partition(":")
        if kind == "user":
            event.userId = value
        else:
            event.anonymousId = value if kind == "anon" else "explain"
    return identifier, normalize(event, caller, limits, now, path="event")


async def _explanation(state: EdgeState, active: ActiveRules, profile: dict[str, Any],
                       incoming: Incoming, caller: Caller, asked: ExplainRequest,
                       now: int) -> dict[str, Any]:
    ruleset = active.ruleset
    event = incoming.event
    # What the effects stage would compare with: the profile after the event, before effects.
    before = {"segments": list(profile["segments"]), "tags": list(profile["tags"]),
              "traits": dict(profile["traits"])}
    context = build_context(event, caller, asked.user_agent, asked.country, profile["traits"])
    decision, selection = await state.pipeline.choose(ruleset, event, profile, context, now,
                                                      caller.site)
    # The hot path's own rendering (catalog data only read), so explain cannot drift from it.
    rendered = await state.pipeline.render(ruleset, selection, event, profile, context)

    rules = explain_rules(ruleset, event, profile, context, now, selection.trace,
                          decision.segments)
    candidates = {ruleset.plans[position].id for position, _ in decision.candidates}
    notes = [NOT_STORED]
    disagree = [row["id"] for row in rules if row["matched"] != (row["id"] in candidates)]
    if disagree:
        notes.append("the compiled rules and the reference evaluator disagree on "
                     f"{', '.join(disagree)}: the outcome follows the compiled rules; please report")
    segments = explain_segments(ruleset.segments, event, profile, context, now,
                                aggregate_kinds(ruleset))
    traits, tags = selection.traits_and_tags()
    return json_safe({
        "profile": profile["id"],
        "ruleset": ruleset.version,
        "now": now,
        "event": event,
        "segments": segments,
        "rules": rules,
        "not_triggered": not_triggered(ruleset, event),
        "decision": rendered.answer(decision.segments),
        "outbound": rendered.outbound,
        "effects": {
            "segments_before": before["segments"],
            "set_traits": {k: v for k, v in traits.items() if before["traits"].get(k) != v},
            "add_tags": [tag for tag in tags if tag not in before["tags"]],
        },
        "person": _person(profile, context, now),
        "consent": consent.resolve(profile["consent"], caller.site.consent_defaults),
        "experiments": {**profile["experiments"], **selection.variants},
        "new_variants": selection.new_variants,
        "caps": cap_usage(ruleset, profile["deliveries"], now, [row["id"] for row in rules]),
        "aggregates": profile["aggregates"],
        "aggregates_note": AGGREGATES_NOTE,
        "aggregate_updates": explain_aggregate_updates(ruleset, event),
        "context": context,
        "notes": notes,
    })  # type: ignore[return-value]


def _person(profile: dict[str, Any], context: dict[str, Any], now: int) -> dict[str, Any]:
    """The clock and channels arbitration read: schedules and quiet hours use local time."""
    weekday, minute, _ = local_clock(now, context.get("timezone"))
    return {"timezone": context.get("timezone"), "weekday": weekday,
            "local_time": f"{minute // 60:02d}:{minute % 60:02d}",
            "reachable": sorted(reachable_channels(profile["traits"])),
            "last_channel": profile["last_channel"]}
