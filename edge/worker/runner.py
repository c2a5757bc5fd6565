"""The journey runner: one stimulus for one person, read → rules.journeys → one atomic commit.

For each stimulus (an event from the stream, a due timer, an enrolment, a date
sweep) the runner reads the person's journey state and profile, lets the pure
JourneyBook compute what changes, and commits it with effects.lua in one atomic
step: the runs, the sends (checked against the person's caps and appended to the
outbox), traits and tags. The commit applies only if the state is still the
version it was read at and the stimulus was not applied before, so a redelivered
event or a timer fired twice never sends twice or advances a run twice; a commit
that lost a race is computed again from what is stored now.

Timers are written after the commit (they live in another slot), and so are the
per-step counts: `flush()` writes what a batch of stimuli left, in one round trip,
before the batch's events are acknowledged and its timers released. A worker killed
in between leaves a run whose timer is missing; its stimulus comes again, is found
applied already, and re-arms the timers of the person's live runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import msgspec
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge.ingest.location import locate, shops_of
from edge.catalog.lists import catalog_variables
from edge.pipeline.delivery import person_for, profile_from
from edge.pipeline.rulebook import Rulebook
from edge.runtime.config import Settings
from edge.store import streams
from edge.store.catalog import CatalogStore
from edge.store.journeys import (JourneyStore, StoredJourneys, commit_for, parse_member,
                                 timer_member)
from edge.store.profiles import OutcomeWrite, ProfileStore
from edge.store.timers import TimerStore, TimerWrites
from rules.journeys import (Change, Facts, JourneyBook, PersonJourneys, SendEffect, TagsEffect,
                            TraitsEffect, WebhookEffect, run_field)

log = logging.getLogger("kairos.worker")

MAX_ATTEMPTS = 8  # commits lost to concurrent changes of the same person before giving up
INACTIVE_KEY = "~inactive"  # the run key of an inactivity entry's timer


@dataclass
class Counters:
    """What this worker did since it started; flushed to Redis for /metrics."""

    events: int = 0
    timers: int = 0
    sends: int = 0
    deferred: int = 0
    commits: int = 0
    conflicts: int = 0
    duplicates: int = 0
    skipped: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class JourneyRunner:
    def __init__(self, settings: Settings, profiles: ProfileStore, journeys: JourneyStore,
                 timers: TimerStore, rulebook: Rulebook, book: Callable[[], JourneyBook],
                 clock: Any, paused: Callable[[], frozenset[str]] = frozenset,
                 catalog: CatalogStore | None = None) -> None:
        self.settings = settings
        self.catalog = catalog  # for messages that show catalog lists
        self.profiles = profiles
        self.journeys = journeys
        self.timers = timers
        self.rulebook = rulebook
        self.book = book  # the current JourneyBook (swapped on reload)
        self.clock = clock
        self.paused = paused
        self.counters = Counters()
        self._default_site = next(iter(settings.sites), "")
        # timer writes and step counts since the last flush, for one pipeline
        self._timer_writes = TimerWrites()
        self._counts: Counter[tuple[str, str]] = Counter()
        # one flush at a time: a flush that finds nothing left must still wait for the
        # one in flight, whose pipeline may carry its writes
        self._flushing = asyncio.Lock()

    # -- stimuli ---------------------------------------------------------------------------
    async def on_event(self, record: streams.Event, stored: StoredJourneys | None = None) -> None:
        """An accepted event of a person: goals, exits, waits for it, entries, inactivity."""
        self.counters.events += 1
        if record.imported:
            # History (`kairos import events`): what it would have started, ended or
            # reached happened back then, or never will. It enters no journey, ends no
            # run (exit, goal), satisfies no wait, arms no inactivity timer (a timer keeps
            # the newest event's time, and history imported after newer events would pull
            # it earlier) and counts as no recent view for catalog entries.
            return
        event = record.event
        book = self.book()
        product = book.records_views(event)
        if product is not None:
            await self.journeys.record_view(product, record.profile_id, _event_time(event),
                                            book.views_kept_ms)
        if stored is not None and not stored.state.runs and not book.wants(event):
            return  # the common case: nothing of this person waits, nothing starts
        site = event.get("site") or self._default_site
        for journey in book.inactivity_for(event):
            due = _event_time(event) + journey.entry.inactive_ms
            member = timer_member(record.profile_id, run_field(journey.id, INACTIVE_KEY))
            self._timer_writes.schedule(record.profile_id, member, due)
        await self.apply(record.profile_id, f"e:{record.message_id}", site,
                         lambda state, facts, now: book.on_event(state, event, facts, now,
                                                                 self.paused()), stored)

    async def on_timer(self, member: str, stored: StoredJourneys | None = None) -> None:
        """A due timer: a run's wake-up, or an inactivity entry. `stored`: the person's
        state, when the caller read it already."""
        self.counters.timers += 1
        profile_id, name = parse_member(member)
        journey_id, _, key = name.partition("\x1f")
        book = self.book()
        if key == INACTIVE_KEY:
            journey = book.current.get(journey_id)
            if journey is None or journey_id in self.paused():
                return
            now = self.clock.now_ms()
            await self.apply(profile_id, f"i:{journey_id}:{now // 60_000}", self._default_site,
                             lambda state, facts, at: book.enter(state, journey, None, facts, at))
            return
        if stored is None:
            stored = await self.journeys.read(profile_id)
        run = stored.state.runs.get(name)
        if run is None:
            return  # ended meanwhile: its timer was cancelled, or is stale
        if journey_id in self.paused():
            # held where it is: fires again after the pause ends (checked once a minute)
            again = self.clock.now_ms() + 60_000
            self._timer_writes.schedule(profile_id, member, again)
            return
        await self.apply(profile_id, f"t:{name}:{run.seq}:{run.attempt}",
                         run.site or self._default_site,
                         lambda state, facts, now: book.on_timer(state, name, facts, now),
                         stored)

    async def on_segments(self, record: streams.SegmentChange) -> None:
        """The person entered or left segments (the edge's record of it)."""
        book = self.book()
        if not book.by_segment or record.imported:
            return  # an imported event's change is history, as the event itself
        await self.apply(record.profile_id, f"s:{record.message_id}", self._default_site,
                         lambda state, facts, now: book.on_segments(
                             state, record.entered, record.left, facts, now, self.paused()))

    async def on_catalog(self, change: streams.CatalogChange) -> int:
        """A product's price dropped or it came back in stock: enrol its recent viewers."""
        book = self.book()
        enrolled = 0
        for journey in book.catalog_entries(change.change):
            if journey.id in self.paused():
                continue
            since = change.timestamp - journey.entry.viewed_within_ms
            data = {name: value for name, value in msgspec.structs.asdict(change).items()
                    if value is not None}
            for profile_id in await self.journeys.viewers(change.product_id, since):
                status = await self.enroll(profile_id, journey.id, change.product_id,
                                           change.message_id, data)
                enrolled += status == "ok"
        return enrolled

    async def enroll(self, profile_id: str, journey_id: str, key: str | None, idempotency: str,
                     data: Mapping[str, Any] | None = None, site: str | None = None) -> str:
        """An enrolment through the API (or a date sweep): the status of the commit."""
        book = self.book()
        journey = book.current.get(journey_id)
        if journey is None:
            return "unknown_journey"
        event = {"properties": dict(data or {})}
        return await self.apply(
            profile_id, f"n:{journey_id}:{idempotency}", site or self._default_site,
            lambda state, facts, now: book.enter(state, journey, event, facts, now, key=key))

    # -- one stimulus, committed once ------------------------------------------------------
    async def apply(self, profile_id: str, stimulus: str, site: str,
                    compute: Callable[[PersonJourneys, Facts, int], Change],
                    stored: StoredJourneys | None = None) -> str:
        for _ in range(MAX_ATTEMPTS):
            if stored is None:
                stored = await self.journeys.read(profile_id)
            if stimulus in stored.applied:
                self.counters.duplicates += 1
                await self.rearm(profile_id, stored.state)
                return "dup"
            now = self.clock.now_ms()
            facts = await self.facts(profile_id, site, now)
            if facts is None:
                return "missing"
            change = compute(stored.state, facts, now)
            if not change:
                return "unchanged"
            if await self.read_catalog(change, facts):  # its messages name catalog lists
                change = compute(stored.state, facts, now)
            outcome = self.outcome(profile_id, change, facts, now)
            status, moved = await self.profiles.commit_journeys(
                profile_id, outcome, commit_for(stored, stimulus, change))
            if status == "ok":
                await self.after_commit(profile_id, stored.state, change)
                return "ok"
            if status == "dup":
                self.counters.duplicates += 1
                await self.rearm(profile_id, (await self.journeys.read(profile_id)).state)
                return "dup"
            if status == "missing":
                return "missing"
            if status == "moved":
                # merged into another profile since the event: the runs stay where they are
                return "moved"
            self.counters.conflicts += 1  # stale or capped: compute again from what is stored
            stored = None
        log.warning("journeys of %s: gave up on %s after %d concurrent changes",
                    profile_id, stimulus, MAX_ATTEMPTS)
        return "conflict"

    async def facts(self, profile_id: str, site_name: str, now: int) -> Facts | None:
        active = self.rulebook.active
        reply = await self.profiles.read(profile_id, active.layout, now)
        if reply is None:
            return None
        profile = profile_from(reply, active.layout)
        site = self.settings.sites.get(site_name) or next(iter(self.settings.sites.values()))
        locate(profile, shops_of(site), now)  # the location as conditions read it: its shop now
        zone = profile["traits"].get("timezone")
        zone = zone if isinstance(zone, str) else site.timezone
        locale = profile["traits"].get("locale")
        person = person_for(profile, zone, now, site.consent_defaults)
        return Facts(profile, person, zone, active.ruleset.arbiter.checks,
                     locale if isinstance(locale, str) else None)

    async def read_catalog(self, change: Change, facts: Facts) -> bool:
        """Puts the catalog lists that the change's messages read into the profile (once),
        so the change is computed again with them: True if it must be. Fetched only for
        a send of a journey that names one, not for every stimulus."""
        if self.catalog is None or "catalog" in facts.profile:
            return False
        book = self.book()
        needed: set[str] = set()
        bought: list[str] = []
        for effect in change.effects:
            if not isinstance(effect, (SendEffect, WebhookEffect)):
                continue
            run = next((r for r in change.runs.values() if r.id == effect.run), None)
            journey = (book.version_of(run) if run is not None else None) \
                or book.current.get(effect.journey)
            if journey is None or not journey.catalog_lists:
                continue
            needed |= journey.catalog_lists
            if run is not None:
                bought += _products_of(run.data)
        if not needed:
            return False
        facts.profile["catalog"] = await catalog_variables(self.catalog, facts.profile, needed,
                                                           bought)
        return True

    def outcome(self, profile_id: str, change: Change, facts: Facts, now: int) -> OutcomeWrite:
        """The change's effects as the effects script writes them."""
        write = OutcomeWrite(now_ms=now, horizon_ms=self.rulebook.active.cap_horizon_ms)
        tags = list(facts.profile.get("tags") or [])
        for effect in change.effects:
            if isinstance(effect, SendEffect):
                write.deliveries.append(list(effect.caps))
                write.horizon_ms = max(write.horizon_ms, *(w for _, w, _ in effect.caps), 0)
                write.messages.append((len(write.deliveries), streams.OutboundMessage(
                    profile_id=profile_id, message_id=effect.key, timestamp=now, rule="",
                    channel=effect.channel, title=effect.title, body=effect.body,
                    link=effect.link, journey=effect.journey, version=effect.version,
                    step=effect.step, run=effect.run)))
            elif isinstance(effect, WebhookEffect):
                write.messages.append((0, streams.OutboundMessage(
                    profile_id=profile_id, message_id=effect.key, timestamp=now, rule="",
                    channel="webhook", body=effect.body, link=effect.url,
                    journey=effect.journey, step=effect.step, run=effect.run)))
            elif isinstance(effect, TraitsEffect):
                write.traits.update(effect.traits)
            elif isinstance(effect, TagsEffect):
                tags += [tag for tag in effect.tags if tag not in tags]
        if tags != list(facts.profile.get("tags") or []):
            write.tags = tags
        return write

    async def after_commit(self, profile_id: str, before: PersonJourneys, change: Change) -> None:
        """The commit's timers and step counts, for the next flush."""
        self.counters.commits += 1
        moves = []
        for name, run in change.runs.items():
            member = timer_member(profile_id, name)
            old = before.runs.get(name)
            old_step = None if old is None or old.ended else (old.step or "end")
            new_step = None if run.ended else (run.step or "end")
            if old_step != new_step:
                moves.append((run.journey, old_step, new_step))
            if run.ended:
                self._timer_writes.cancel(profile_id, member)
            else:
                self._timer_writes.schedule(profile_id, member, run.wake_at)
        self.journeys.count_changes(self._counts, change.records, moves)
        for record in change.records:
            self.counters.outcomes[record.outcome] = self.counters.outcomes.get(record.outcome, 0) + 1
            if record.outcome == "sent":
                self.counters.sends += 1
            elif record.outcome == "deferred":
                self.counters.deferred += 1

    async def rearm(self, profile_id: str, state: PersonJourneys) -> None:
        """Every live run keeps a timer: schedule them again (idempotent)."""
        for name, run in state.runs.items():
            if not run.ended:
                self._timer_writes.schedule(profile_id, timer_member(profile_id, name),
                                            run.wake_at)

    async def flush(self) -> None:
        """Write the timers and counts the stimuli since the last flush left."""
        async with self._flushing:
            writes, self._timer_writes = self._timer_writes, TimerWrites()
            counts, self._counts = self._counts, Counter()
            if not writes and not counts:
                return
            try:
                async with self.journeys.client.pipeline(transaction=False) as pipe:
                    self.timers.queue_writes(pipe, writes)
                    self.journeys.queue_counts(pipe, counts)
                    await pipe.execute()
            except BaseException:
                self._timer_writes = writes.then(self._timer_writes)  # kept for the next try
                self._counts.update(counts)
                raise


def _products_of(data: Mapping[str, Any]) -> list[str]:
    """The product ids of an entry event's properties: an order's products, or one product."""
    products = data.get("products")
    if isinstance(products, list):
        return [str(p["product_id"]) for p in products
                if isinstance(p, dict) and isinstance(p.get("product_id"), (str, int))]
    product = data.get("product_id")
    return [str(product)] if isinstance(product, (str, int)) else []


def _event_time(event: Mapping[str, Any]) -> int:
    for name in ("receivedAt", "timestamp"):
        value = event.get(name)
        if isinstance(value, int):
            return value
    return 0
