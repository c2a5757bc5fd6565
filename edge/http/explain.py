"""POST /v1/explain: what one event would do for one person, and why; changes nothing.

Secret key with scope profiles:read. The profile is read (the event script's
read mode writes nothing), what the event itself would add (aggregates,
traits, consent, cart, recently viewed, counters) is applied in memory, and the
same pure decide + arbitration as the hot path runs. The answer lists every
rule the event triggers with each condition's value and what arbitration
removed, so "why didn't she see the banner?" needs nothing else.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response

from edge.ingest import consent
from edge.ingest.auth import Caller
from edge.runtime.config import Limits
from edge.ingest.context import build_context
from edge.pipeline.delivery import local_clock, profile_from, reachable_channels
from edge.http.common import (check_json_content_type, header_map, json_response, read_body,
                              require_scope)
from edge.http.errors import error_response
from edge.http.profiles import _identifier
from edge.ingest.normalize import Incoming, normalize
from edge.pipeline.handler import overlay_consent
from edge.pipeline.rulebook import ActiveRules
from edge.http.state import EdgeState
from edge.ingest.wire import EVENT_TYPES, Event, InputError
from rules.explain import (aggregate_kinds, cap_usage, explain_rules, explain_segments,
                           json_safe, not_triggered, with_updates)

SCOPE = "profiles:read"
AGGREGATES_NOTE = ("aggregates include this event: count +1, sum +value, last = value; "
                   "distinct counts assume the value is new in the window")
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
    body = await read_body(request, headers, state.settings.limits.max_body_bytes)
    asked = _decoder.decode(body)
    identifier, incoming = _hypothetical(asked, caller, state.settings.limits, now)
    active = state.rulebook.active
    reply = await state.store.read(identifier, active.layout, now)
    if reply is None:
        return error_response(404, "not_found", "no profile for this identifier", field="profile")
    answer = await _explanation(state, active, profile_from(reply, active.layout),
                                incoming, caller, asked, now)
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
    identifier = _identifier(asked.profile.strip())
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
    before = {"segments": list(profile["segments"]), "tags": list(profile["tags"]),
              "traits": dict(profile["traits"])}
    profile["aggregates"] = with_updates(profile["aggregates"], ruleset.aggregate_updates(event),
                                         incoming.ts_ms, now)
    _apply_event(profile, incoming, state.settings)
    context = build_context(event, caller, asked.user_agent, asked.country, profile["traits"])
    await state.pipeline.read_catalog(ruleset, profile)
    decision, selection = state.pipeline.decide(ruleset, event, profile, context, now, caller.site)
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


def _apply_event(profile: dict[str, Any], incoming: Incoming, settings: Any) -> None:
    """What the event script would change before decide reads the profile (edge/store/event.lua),
    in memory: counters, traits, consent given with the event, recent lists, cart."""
    ts, last = incoming.ts_ms, profile["last_seen"]
    if last is not None and ts - last > settings.profiles.session_gap_minutes * 60_000:
        profile["visits"] += 1
    profile["events"] += 1
    profile["last_seen"] = max(ts, last or ts)
    traits = profile["traits"]
    traits.update(incoming.traits_set)
    for key, value in incoming.traits_set_once.items():
        traits.setdefault(key, value)
    for key in incoming.traits_unset:
        traits.pop(key, None)
    if incoming.consent:
        overlay_consent(profile, incoming.consent, ts)
    for key, item, cap in (("recent_products", incoming.product, settings.profiles.recent_products),
                           ("recent_categories", incoming.category,
                            settings.profiles.recent_categories)):
        if item:
            profile[key] = [item, *(x for x in profile[key] if x != item)][:cap]
    if incoming.cart is not None:
        profile["cart"] = _cart_after(profile["cart"], incoming.cart, ts)


def _cart_after(cart: dict[str, Any], change: Any, ts: int) -> dict[str, Any]:
    items = {item["product_id"]: dict(item) for item in cart.get("items", [])}
    if change.op == "clear":
        items = {}
    elif change.op == "add":
        quantity = items.get(change.product_id, {}).get("quantity", 0) + change.quantity
        items[change.product_id] = {**orjson.loads(change.item_json), "quantity": quantity}
    elif change.op == "remove" and change.product_id in items:
        left = items[change.product_id]["quantity"] - change.quantity
        if left > 0:
            items[change.product_id]["quantity"] = left
        else:
            del items[change.product_id]
    value = sum(item["price"] * item["quantity"] for item in items.values()
                if isinstance(item.get("price"), (int, float)) and not isinstance(item["price"], bool))
    return {"items": sorted(items.values(), key=lambda item: item["product_id"]),
            "value": round(value, 2), "updated_at": ts}


