"""One event in named stages: resolve identity and apply the event (one script call)
→ decide → render → effects. /v1/explain runs the same stages in read mode.

This is the hot path. On the common path (a page view or a track from a known
visitor) it makes exactly one Redis round trip; joining identities (identify,
alias) and writing changed segments or traits cost more, but only when they
happen.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any

import orjson

from edge.ingest.auth import Caller
from edge.runtime.clock import SystemClock
from edge.catalog.lists import CATALOG_NAMES, catalog_variables
from edge.ingest.context import build_context
from edge.ingest.location import locate
from edge.pipeline.delivery import local_hour, person_for, profile_from
from edge.runtime.metrics import Metrics
from edge.ingest.normalize import Incoming
from edge.pipeline.rulebook import ActiveRules, Rulebook
from edge.store import streams
from edge.store.profiles import OutcomeWrite, ProfileStore
from edge.store.scripts import EventArgs, flat_json
from rules import outcomes
from rules.arbitration import Fired, Selection
from rules.render import Rendered, needed_names, render

EMPTY_ANSWER: dict[str, Any] = {"slots": {}, "messages": [], "push": [], "segments": []}
# Channels whose content travels in the answer itself.
ANSWER_CHANNELS = frozenset({"web", "in_app", "push"})


@dataclass(slots=True)
class Outcome:
    answer: dict[str, Any]
    duplicate: bool
    profile_id: str


@dataclass(slots=True)
class Applied:
    """The apply stage's result: the profile as decide reads it, after the event."""
    duplicate: bool  # a retry of an event already applied: applied once, answered without
    profile: dict[str, Any]


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


def event_write(incoming: Incoming, now_ms: int) -> EventArgs:
    """What the event script stores of this event (its aggregate updates travel apart)."""
    write = EventArgs(
        now_text=str(now_ms), ts_text=str(incoming.ts_ms), message_id=incoming.message_id,
        payload=orjson.dumps(incoming.event).decode(),
        traits_set=flat_json(incoming.traits_set), traits_set_once=flat_json(incoming.traits_set_once),
        traits_unset=incoming.traits_unset, recent_product=incoming.product,
        recent_category=incoming.category, unverified_claim=incoming.claim or "",
        location=incoming.location)
    cart = incoming.cart
    if cart is not None:
        write.cart_op, write.cart_product = cart.op, cart.product_id
        write.cart_item, write.cart_quantity = cart.item_json.decode(), cart.quantity
    return write


class Pipeline:
    def __init__(self, store: ProfileStore, rulebook: Rulebook, metrics: Metrics,
                 clock: Any = None, catalog: Any = None) -> None:
        self.store = store
        self.catalog = catalog  # edge.store.catalog.CatalogStore, for content that shows products
        self.rulebook = rulebook
        self.metrics = metrics
        self.clock = clock or SystemClock()

    async def handle(self, incoming: Incoming, caller: Caller, request: RequestInfo,
                     answered: bool = True) -> Outcome:
        """One event through the stages: resolve identity and apply the event (one
        script call) → decide → render → effects.

        `answered`: whether the caller receives this event's decisions. Events of a
        batch are answered with none, so nothing shown on the page (slots, in-app
        messages, push) is chosen, counted against caps or exposed for them."""
        active = self.rulebook.active
        now = self.clock.now_ms()
        applied = await self.apply(incoming, active, now)
        profile = applied.profile
        context = build_context(incoming.event, caller, request.user_agent, request.country,
                                profile["traits"])
        decision, selection = await self.choose(active.ruleset, incoming.event, profile, context,
                                                now, caller.site, answered and not applied.duplicate)
        rendered = await self.render(active.ruleset, selection, incoming.event, profile, context)
        rendered = await self.effects(active, incoming, applied, decision, selection, rendered,
                                      context, now)
        return Outcome(rendered.answer(decision.segments), applied.duplicate, profile["id"])

    async def handle_each(self, items: Sequence[Incoming], caller: Caller,
                          request: RequestInfo) -> int:
        """The events of a batch (`/v1/batch`, an import), answered with no decisions: each
        person's in the order given, people side by side. Returns how many were duplicates."""
        by_person: dict[str, list[Incoming]] = defaultdict(list)
        for item in items:
            by_person[item.primary].append(item)

        async def run(person: list[Incoming]) -> int:
            duplicates = 0
            for item in person:
                outcome = await self.handle(item, caller, request, answered=False)
                duplicates += outcome.duplicate
            return duplicates

        return sum(await asyncio.gather(*(run(person) for person in by_person.values())))

    # -- the stages ----------------------------------------------------------------------------

    async def apply(self, incoming: Incoming, active: ActiveRules, now: int) -> Applied:
        """Resolve identity (joining the event's verified identifiers) and apply the event:
        the profile as decide reads it, after this event."""
        layout = active.layout
        joins = bool(incoming.links or incoming.merge_from)
        joined_before = await self._join(incoming, active) if joins else None
        status, reply = await self.store.apply_event(incoming.primary, event_write(incoming, now),
                                                     layout, self._updates(incoming, active))
        if incoming.purchased and status != "dup" and self.catalog is not None:
            # Counted once per order: products bought together feed cross-sell.
            await self.catalog.record_purchase(incoming.purchased)
        if joins and joined_before is None:
            # Nothing existed to join before this event created the profile: join now,
            # and decide on what the profile holds after the join.
            if await self._join(incoming, active) is not None:
                reread = await self.store.read(incoming.primary, layout, now)
                if reread is not None:
                    reply = reread
        return Applied(status == "dup", self._profile(reply, layout, incoming, now))

    async def try_apply(self, identifier: str, incoming: Incoming, active: ActiveRules,
                        now: int) -> Applied | None:
        """The apply stage in read mode: the profile `identifier` names as the event would
        leave it, computed by the same event script on scratch copies; nothing is
        written, joined or counted. None when there is no such profile."""
        reply = await self.store.try_event(identifier, event_write(incoming, now), active.layout,
                                           self._updates(incoming, active))
        if reply is None:
            return None
        return Applied(False, self._profile(reply, active.layout, incoming, now))

    async def choose(self, ruleset: Any, event: dict[str, Any], profile: dict[str, Any],
                     context: dict[str, Any], now: int, site: Any,
                     answered: bool = True) -> tuple[Any, Selection]:
        """The decide stage: the catalog lists the conditions read, then decide()."""
        await self.read_catalog(ruleset, profile)
        started = time.perf_counter()
        chosen = self.decide(ruleset, event, profile, context, now, site, answered)
        self.metrics.rule_seconds.observe(time.perf_counter() - started)
        return chosen

    async def effects(self, active: ActiveRules, incoming: Incoming, applied: Applied,
                      decision: Any, selection: Selection, rendered: Rendered,
                      context: dict[str, Any], now: int) -> Rendered:
        """The effects stage: what the decision changes (segments, traits, tags, caps,
        variants, consent, engagement, exposures, messages), in one script call when there
        is any. Returns the rendering to answer with: without the rules that lost a cap
        to a concurrent event of the same person."""
        profile = applied.profile
        write = self._outcome(profile, decision, selection, rendered, incoming, context, now,
                              duplicate=applied.duplicate)
        if write.is_empty():
            return rendered
        accepted = await self.store.write_outcome(profile["id"], write)
        refused = {id(f) for f, ok in zip(write_fired(selection), accepted) if not ok}
        if not refused:
            return rendered
        # Another event of this person used the cap first: those rules give way.
        selection.fired = [f for f in selection.fired if id(f) not in refused]
        return await self.render(active.ruleset, selection, incoming.event, profile, context)

    async def send_check(self, identifier: str, channel: str, site: Any,
                         purpose: str | None = None,
                         caps: Sequence[tuple[str, int, int]] = ()) -> outcomes.Outcome | None:
        """The send-time checks on their own, for what goes out later than the event that
        chose it (a journey step, a retried delivery): why `channel` may not reach the
        person `identifier` names now, under the current rules' policy; None when it may.

        Read at the moment of sending, because consent, addresses, the person's clock
        and their delivery history change after an event. A person without a profile
        (never seen, or erased) has no address. Nothing is written: the caller records
        the delivery when it sends. `site`: the site's settings (consent defaults, the
        time zone of people who have none); `purpose` and `caps` as in SendChecks.why_not.
        """
        active = self.rulebook.active
        now = self.clock.now_ms()
        reply = await self.store.read(identifier, active.layout, now)
        if reply is None:
            return outcomes.Outcome(outcomes.Kind.NO_ADDRESS, channel=channel)
        profile = profile_from(reply, active.layout)
        zone = profile["traits"].get("timezone")
        person = person_for(profile, zone if isinstance(zone, str) else site.timezone, now,
                            site.consent_defaults)
        return active.ruleset.arbiter.checks.why_not(person, channel, purpose, caps)

    @staticmethod
    def _updates(incoming: Incoming, active: ActiveRules) -> list[Any]:
        """The aggregate updates this event feeds: flat position (1-based), value, ..."""
        updates: list[Any] = []
        for spec, value in active.ruleset.aggregate_updates(incoming.event):
            updates += (active.index[spec.id] + 1, encode_update(spec.kind, value))
        return updates

    @staticmethod
    def _profile(reply: list[Any], layout: Any, incoming: Incoming, now: int) -> dict[str, Any]:
        profile = profile_from(reply, layout)
        locate(profile, incoming.shops, now)  # the location as rules read it: its shop now
        if incoming.consent:
            # The answers given with this event count for this event's decision.
            overlay_consent(profile, incoming.consent, incoming.ts_ms)
        return profile

    def decide(self, ruleset: Any, event: dict[str, Any], profile: dict[str, Any],
               context: dict[str, Any], now: int, site: Any,
               answered: bool = True) -> tuple[Any, Selection]:
        """Conditions, then arbitration: pure, so /v1/explain can run it without writing.

        An event whose answer nobody sees (batched, or a retry of one already
        answered) reaches the person only by the channels that deliver later. An
        imported one is history and reaches them by none: only the rules that set
        traits or tags, and deliver nothing, fire for it.
        """
        decision = ruleset.decide(event, profile, context, now)
        if not decision.candidates:
            return decision, Selection(decision.segments)
        person = person_for(profile, context.get("timezone"), now, site.consent_defaults)
        if event.get(streams.IMPORTED):
            person.reachable = frozenset()
        elif not answered:
            person.reachable = person.reachable - ANSWER_CHANNELS
        return decision, ruleset.arbiter.select(decision.segments, decision.candidates, person)

    async def read_catalog(self, ruleset: Any, profile: dict[str, Any]) -> None:
        """Puts the catalog lists the rules' conditions read into profile["catalog"]."""
        lists = ruleset.catalog_lists
        if not lists:
            return
        if self.catalog is None:
            profile["catalog"] = {name: [] for name in lists}
        else:
            profile["catalog"] = await catalog_variables(self.catalog, profile, set(lists))

    async def render(self, ruleset: Any, selection: Selection, event: dict[str, Any],
                     profile: dict[str, Any], context: dict[str, Any]) -> Rendered:
        if not selection.fired:
            return Rendered()
        variables = {
            "event": event, "profile": profile, "traits": profile["traits"],
            "cart": profile["cart"], "aggregates": profile["aggregates"], "context": context,
            "segments": selection.segments,
        }
        if self.catalog is not None and not ruleset.content_names.isdisjoint(CATALOG_NAMES):
            await self._catalog_for_content(selection, profile, variables)
        locale = profile["traits"].get("locale") or context.get("locale")
        return render(selection, variables, locale if isinstance(locale, str) else None,
                      context.get("timezone"))

    async def _catalog_for_content(self, selection: Selection, profile: dict[str, Any],
                                   variables: dict[str, Any]) -> None:
        """Adds the catalog lists the winners' templates read to their variables."""
        needed = needed_names(selection) & CATALOG_NAMES
        if needed:
            read = profile.get("catalog") or {}  # what the conditions read is not read twice
            variables.update(read)
            missing = needed - read.keys()
            if missing:
                variables.update(await catalog_variables(self.catalog, profile, missing))

    def _outcome(self, profile: dict[str, Any], decision: Any, selection: Selection,
                 rendered: Rendered, incoming: Incoming, context: dict[str, Any], now: int,
                 duplicate: bool) -> OutcomeWrite:
        # Delivery times younger than the longest cap window stay, whatever this writes.
        write = OutcomeWrite(now, horizon_ms=self.rulebook.active.cap_horizon_ms)
        if decision.segments != profile["segments"]:
            write.segments = decision.segments
            # for journeys that start when a person enters or leaves a segment
            entered = sorted(set(decision.segments) - set(profile["segments"]))
            left = sorted(set(profile["segments"]) - set(decision.segments))
            write.records.append((0, streams.SegmentChange(
                profile_id=profile["id"], message_id=streams.new_message_id(), timestamp=now,
                entered=entered, left=left, imported=bool(incoming.event.get(streams.IMPORTED)))))
        traits, tags = selection.traits_and_tags()
        if tags:
            merged = list(dict.fromkeys([*profile["tags"], *tags]))
            if merged != profile["tags"]:
                write.tags = merged
        write.traits = {k: v for k, v in traits.items() if profile["traits"].get(k) != v}
        write.variants = dict(selection.new_variants)
        if not duplicate:
            # A retried event was applied the first time; answering again must not count twice.
            self._deliveries(selection, rendered, write, profile["id"], now)
            write.consent = [(c.name, int(c.granted), incoming.ts_ms, c.source)
                             for c in incoming.consent]
            found = incoming.engagement
            if found is not None:
                hour = local_hour(incoming.ts_ms, context.get("timezone"))
                write.engagement = (hour, found.channel, int(found.engaged), incoming.ts_ms)
        return write

    def _deliveries(self, selection: Selection, rendered: Rendered, write: OutcomeWrite,
                    profile_id: str, now: int) -> None:
        index_of: dict[str, int] = {}
        for fired in write_fired(selection):
            write.deliveries.append(fired.caps)
            index_of[fired.plan.id] = len(write.deliveries)
        for experiment, variant, rule_id in selection.exposures:
            write.records.append((index_of.get(rule_id, 0), streams.Exposure(
                profile_id=profile_id, message_id=streams.new_message_id(), timestamp=now,
                experiment=experiment, variant=variant, rule=rule_id,
                exposed=variant != "control")))
        for message in rendered.outbound:
            write.messages.append((index_of.get(message["rule"], 0), streams.OutboundMessage(
                profile_id=profile_id, message_id=streams.new_message_id(), timestamp=now,
                **message)))

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


def write_fired(selection: Selection) -> list[Fired]:
    """The fired rules that count towards a cap, in the order their deliveries are written."""
    return [fired for fired in selection.fired if fired.caps]


def overlay_consent(profile: dict[str, Any], changes: list[Any], ts_ms: int) -> None:
    stored = dict(profile["consent"])
    for change in changes:
        previous = stored.get(change.name)
        if previous is None or previous["at"] <= ts_ms:
            stored[change.name] = {"granted": change.granted, "at": ts_ms, "source": change.source}
    profile["consent"] = stored
