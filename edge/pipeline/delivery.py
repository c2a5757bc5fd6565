"""A person's delivery state: what arbitration reads and what the effects script writes.

The store decodes the profile field "dl" (see edge/store/effects.lua); this
module turns it into the profile's public parts (consent, experiments,
engagement) and into rules.arbitration.Person for this event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from edge.ingest import consent, engagement
from edge.store.profiles import AggregateLayout, decode_snapshot
from rules.arbitration import Person
from rules.localtime import WEEKDAYS, LocalTimeCache, zone_named

ALWAYS_REACHABLE = frozenset({"web", "in_app"})  # the answer itself reaches the page or app


def profile_from(reply: list[Any], layout: AggregateLayout) -> dict[str, Any]:
    """The profile as the rules read it, from the event script's reply: the stored
    parts, with the delivery state's public parts in place of the state itself."""
    profile = decode_snapshot(reply, layout)
    profile.update(decode_state(profile.pop("delivery_state")))
    return profile


def decode_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The profile's delivery-related parts, from the stored "dl" (decoded)."""
    hours = state.get("h") or [0] * engagement.HOURS
    last = state.get("l")
    return {
        "consent": {name: {"granted": bool(answer[0]), "at": answer[1], "source": answer[2]}
                    for name, answer in (state.get("k") or {}).items()},
        "experiments": dict(state.get("x") or {}),
        "deliveries": dict(state.get("c") or {}),
        "engagement_hours": hours,
        "best_send_hour": engagement.best_hour(hours),
        "last_channel": last[0] if last else None,
    }


def reachable_channels(traits: Mapping[str, Any]) -> frozenset[str]:
    """Channels with an address: a push subscription or token, an email, a phone number."""
    found = set(ALWAYS_REACHABLE)
    if traits.get("push_subscription") or traits.get("push_token"):
        found.add("push")
    if isinstance(traits.get("email"), str) and "@" in traits["email"]:
        found.add("email")
    if isinstance(traits.get("phone"), str) and traits["phone"].strip():
        found.update(("sms", "whatsapp"))
    return frozenset(found)


# Every event asks for the person's wall clock; per zone it changes once a minute.
_LOCAL_TIME = LocalTimeCache()


def local_clock(now_ms: int, timezone: str | None) -> tuple[str, int, str]:
    """(weekday, minute of the day, "YYYY-MM-DD") on the person's clock."""
    hour, minute, weekday, date = _LOCAL_TIME.fields(now_ms, timezone)
    if hour is None:  # a time the cache does not handle: as datetime works it out
        moment = datetime.fromtimestamp(now_ms / 1000, zone_named(timezone))
        return WEEKDAYS[moment.weekday()], moment.hour * 60 + moment.minute, moment.date().isoformat()
    return weekday, hour * 60 + minute, date


def local_hour(ts_ms: int, timezone: str | None) -> int:
    return local_clock(ts_ms, timezone)[1] // 60


def person_for(profile: dict[str, Any], timezone: str | None, now_ms: int,
               consent_defaults: Mapping[str, bool]) -> Person:
    weekday, minute, date = local_clock(now_ms, timezone)
    traits = profile["traits"]
    preferred = traits.get("preferred_channel")
    return Person(
        profile_id=profile["id"],
        now_ms=now_ms,
        weekday=weekday,
        minute=minute,
        consent=consent.resolve(profile["consent"], consent_defaults),
        deliveries=profile["deliveries"],
        variants=profile["experiments"],
        reachable=reachable_channels(traits),
        preferred_channel=preferred if isinstance(preferred, str) else None,
        last_channel=profile["last_channel"],
        date=date,
    )
