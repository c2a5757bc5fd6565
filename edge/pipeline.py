"""One event: resolve identity → store (one script call) → decide → effects.

This is the hot path. On the common path (a page view or a track from a known
visitor) it makes exactly one Redis round trip; joining identities (identify,
alias) and writing changed segments or traits cost more, but only when they
happen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from edge.auth import Caller
from edge.clock import SystemClock
from edge.context import build_context
from edge.metrics import Metrics
from edge.normalize import Incoming
from edge.rulebook import ActiveRules, Rulebook
from edge.store.profiles import ProfileStore, decode_snapshot

EMPTY_ANSWER: dict[str, Any] = {"slots": {}, "messages": [], "push": [], "segments": []}


@dataclass(slots=True)
class Outcome:
    answer: dict[str, Any]
    duplicate: bool
    profile_id: str


@dataclass(slots=True)
class RequestInfo:
    user_agent: str | None = None
    country: str | None = None


def encode_update(kind: str, value: Any) -> str:
    if kind == "count":
        return "1"
    if kind == "sum":
        return repr(float(value))
    if kind == "last":
        return orjson.dumps(value).decode()
    return str(value)


class Pipeline:
    def __init__(self, store: ProfileStore, rulebook: Rulebook, metrics: Metrics,
                 clock: Any = None) -> None:
        self.store = store
        self.rulebook = rulebook
        self.metrics = metrics
        self.clock = clock or SystemClock()

    async def handle(self, incoming: Incoming, caller: Caller, request: RequestInfo) -> Outcome:
        active = self.rulebook.active
        layout = active.layout
        now = self.clock.now_ms()

        joins = bool(incoming.links or incoming.merge_from)
        joined_before = await self._join(incoming, active) if joins else None

        updates: list[Any] = []
        for spec, value in active.ruleset.aggregate_updates(incoming.event):
            updates += (active.index[spec.id] + 1, encode_update(spec.kind, value))
        status, reply = await self.store.apply_event(incoming, layout, updates, now)

        if joins and joined_before is None:
            # Nothing existed to join before this event created the profile: join now,
            # and decide on what the profile holds after the join.
            if await self._join(incoming, active) is not None:
                reread = await self.store.read(incoming.primary, layout, now)
                if reread is not None:
                    reply = reread

        profile = decode_snapshot(reply, layout)
        context = build_context(incoming.event, caller, request.user_agent, request.country,
                                profile["traits"])
        started = time.perf_counter()
        decision = active.ruleset.decide(incoming.event, profile, context, now)
        self.metrics.rule_seconds.observe(time.perf_counter() - started)

        await self._effects(profile, decision)
        return Outcome(decision.to_answer(), status == "dup", profile["id"])

    async def _join(self, incoming: Incoming, active: ActiveRules) -> str | None:
        """Point every verified identifier of the event at one profile, merging as needed.

        Returns that profile's id, or None when none of them has a profile yet.
        """
        store, layout = self.store, active.layout
        uid = incoming.user_id
        user_identifier = f"user:{uid}" if uid else None
        target = await store.resolve(incoming.primary)
        if target is None:
            for identifier in (*incoming.links, *incoming.merge_from):
                if identifier == incoming.primary:
                    continue
                found = await store.resolve(identifier)
                if found is None:
                    continue
                linked = await store.link(incoming.primary, found,
                                          uid if incoming.primary == user_identifier else None, layout)
                if linked is not None:
                    target = linked
                    break
            if target is None:
                return None
        for identifier in incoming.links:
            linked = await store.link(identifier, target,
                                      uid if identifier == user_identifier else None, layout)
            if linked is not None:
                target = linked
        for identifier in incoming.merge_from:
            other = await store.resolve(identifier)
            if other is not None and other != target:
                target = await store.merge(other, target, layout, force=True) or target
        return target

    async def _effects(self, profile: dict[str, Any], decision: Any) -> None:
        segments = decision.segments if decision.segments != profile["segments"] else None
        tags = None
        if decision.add_tags:
            merged = list(dict.fromkeys([*profile["tags"], *decision.add_tags]))
            if merged != profile["tags"]:
                tags = merged
        traits = {k: v for k, v in decision.set_traits.items() if profile["traits"].get(k) != v}
        if segments is not None or tags is not None or traits:
            await self.store.write_effects(profile["id"], segments, traits, tags)
