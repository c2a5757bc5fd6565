"""`kairos simulate`: replays recorded events through one journey on a simulated clock.

Nothing here decides what a journey does. A scratch embedded Redis (no persistence,
deleted afterwards) gets the real edge Pipeline and the real Worker with its
JourneyRunner, loaded with the named journey only and driven by a FakeClock: for
each recorded event, in time order, the clock first stops at every moment a timer
comes due (and, for date entries, at every quarter hour, when a zone's day may
begin) and the worker fires what is due, through the same methods its loops call;
then the event goes through Pipeline.handle as a trusted server-side call and the
entries it appended are handed to `Worker.handle_entries`. So a change to the
journey machine, the send checks or the commit shows up here as it would live.

Sends land in the scratch outbox, which nobody delivers; the live Redis is only read
(XRANGE of the event stream) when the events come from there. The report is read
back from the scratch Redis: the journey's per-step counts, the outbox, and the
step records the runner committed (who was deferred, dropped, exited, converted).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import orjson
import redis
import redis.asyncio as aioredis

from edge.ingest.auth import Caller
from edge.ingest.normalize import normalize
from edge.ingest.wire import Event as WireEvent
from edge.ingest.wire import InputError
from edge.pipeline.handler import Pipeline, RequestInfo
from edge.pipeline.journeybook import check_journeys
from edge.pipeline.rulebook import Rulebook, rule_files
from edge.runtime.clock import FakeClock
from edge.runtime.config import Settings
from edge.runtime.metrics import Metrics
from edge.store import streams
from edge.store.catalog import CatalogStore
from edge.store.embedded import EmbeddedRedis
from edge.store.journeys import WAITING
from edge.store.profiles import ProfileStore
from edge.worker import calendar_sweep
from edge.worker.consumer import Entry
from edge.worker.runner import JourneyRunner
from edge.worker.service import Worker
from rules.journey_defs import ENTRY_CATALOG, ENTRY_DATE, ENTRY_EVENT, ENTRY_INACTIVE, JourneyDef
from rules.journey_schema import END
from rules.journeys import (COMPLETED, DEFERRED, DROPPED, ENTERED, EXITED, GOAL, SKIPPED_LATE,
                            Change, PersonJourneys, StepRecord)
from rules.localtime import zone_named
from rules.problems import errors_of
from rules.suggest import did_you_mean

ENTRY_STEP = "entry"
QUARTER_HOUR_MS = 15 * 60_000  # every zone's day begins on a quarter hour
# Claims at one moment without the clock moving: past this the journey runs in a loop
# that never waits, which would keep a live worker busy just the same.
MAX_CLAIMS_AT_ONE_MOMENT = 1_000
STREAM_PAGE = 1_000
# Columns of the step table, in the order a run meets them; others follow by name.
OUTCOME_ORDER = ("entered", "branched", "held_out", "sent", "deferred", "dropped",
                 "skipped_late", "set", "webhook", "exited", "goal", "completed",
                 "holdout_completed", "stranded", WAITING)
_DIGITS = re.compile(r"-?\d{1,16}")


class SimulationError(Exception):
    """What keeps a simulation from starting: an unknown journey, bad dates, a bad file."""


# -- what is replayed ------------------------------------------------------------------------

@dataclass(frozen=True)
class Recorded:
    """One recorded event: as a client would send it, and when the edge received it."""

    at: int                          # the edge's clock when it came in (epoch ms)
    event: WireEvent | None          # None for a catalog change
    source: str                      # where it was read, for messages: "file.jsonl:3"
    profile_id: str | None = None    # the profile the live edge stored it under
    site: str | None = None
    # a product's price drop or return to stock, as the live stream recorded it: it
    # enrols the product's recent viewers in the catalog entries
    change: streams.CatalogChange | None = None
    imported: bool = False           # history `kairos import events` loaded: replayed as such


def parse_moment(text: str, zone_name: str, what: str, end_of_day: bool = False) -> int:
    """Epoch ms of a date or a time given on the command line.

    A date alone is a whole day in the site's zone: its start, or with `end_of_day`
    the start of the next one, so `--from 2026-01-05 --to 2026-01-11` covers both days.
    A time without an offset is on the site's clock too; digits alone are epoch ms."""
    text = text.strip()
    if _DIGITS.fullmatch(text):
        return int(text)
    zone = zone_named(zone_name)
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if end_of_day:
                day += timedelta(days=1)
            return _ms(datetime(day.year, day.month, day.day, tzinfo=zone))
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SimulationError(f"{what}: {text!r} is not a date (2026-01-05) or a time "
                              f"(2026-01-05T09:30, 2026-01-05T08:30:00Z)") from None
    return _ms(moment if moment.tzinfo is not None else moment.replace(tzinfo=zone))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _event_moment(value: Any, where: str) -> int | None:
    """Epoch ms of an event's time field: ISO text (UTC unless it says otherwise) or ms."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise SimulationError(f"{where}: expected ISO text or epoch milliseconds")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise SimulationError(f"{where}: {value!r} is not an ISO time") from None
        return _ms(moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc))
    raise SimulationError(f"{where}: expected ISO text or epoch milliseconds")


def _wire_event(fields: dict[str, Any], where: str) -> tuple[WireEvent, int]:
    """The wire event of a recorded object, and the moment the edge received it: its
    `receivedAt`, else its `timestamp`. Times are read here, not by msgspec, which
    would take a number for seconds."""
    times = {name: _event_moment(fields.get(name), f"{where}: {name}")
             for name in ("timestamp", "originalTimestamp", "sentAt", "receivedAt")}
    rest = {k: v for k, v in fields.items() if k not in times}
    try:
        event = msgspec.convert(rest, WireEvent)
    except msgspec.ValidationError as error:
        raise SimulationError(f"{where}: {error}") from None
    for name in ("timestamp", "originalTimestamp", "sentAt"):
        if times[name] is not None:
            setattr(event, name, datetime.fromtimestamp(times[name] / 1000, timezone.utc))
    received = times["receivedAt"] if times["receivedAt"] is not None else times["timestamp"]
    if received is None:
        received = times["originalTimestamp"]
    if received is None:
        raise SimulationError(f"{where}: the event has no timestamp (ISO text or epoch ms)")
    return event, received


def events_from_file(path: str | Path) -> list[Recorded]:
    """Segment-style events, one JSON object a line (blank lines skipped)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise SimulationError(f"{path}: {error.strerror or error}") from None
    found = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            fields = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise SimulationError(f"{where}: not JSON ({error})") from None
        if not isinstance(fields, dict):
            raise SimulationError(f"{where}: expected an event object")
        event, at = _wire_event(fields, where)
        found.append(Recorded(at, event, where))
    return found


# The fields of a normalized event that a client sends; the rest the edge adds itself.
_CLIENT_FIELDS = ("type", "messageId", "anonymousId", "userId", "previousId", "groupId",
                  "event", "name", "properties", "traits", "context", "timestamp", "receivedAt")


def events_from_stream(redis_url: str, stream_key: str, start_ms: int, end_ms: int) -> list[Recorded]:
    """The accepted events of the live stream received within the window, read-only.

    Its records are normalized already: each is replayed as the client's event it was
    made from, on the profile it was stored under (the edge's own records, exposures
    and the like, are left out: the replay makes its own). The window is read from the
    events' own `receivedAt`, not from the entry ids: an id is Redis's clock at the
    append, which is not the edge's where the edge keeps another time (a host's skew,
    a simulated clock), so the whole stream (capped in length) is read."""
    client = redis.Redis.from_url(redis_url)
    found: list[Recorded] = []
    try:
        low: str = "-"
        while True:
            page = client.xrange(stream_key, low, "+", STREAM_PAGE)
            for entry_id, fields in page:
                text_id = entry_id.decode()
                try:
                    record = streams.decode(fields)
                except (msgspec.ValidationError, ValueError):
                    continue
                if isinstance(record, streams.CatalogChange):
                    if start_ms <= record.timestamp <= end_ms:
                        found.append(Recorded(record.timestamp, None, text_id, change=record))
                    continue
                if not isinstance(record, streams.Event) or not isinstance(record.event, dict):
                    continue
                normalized = record.event
                where = f"{stream_key} {text_id}"
                wanted = {k: normalized[k] for k in _CLIENT_FIELDS if normalized.get(k) is not None}
                event, at = _wire_event(wanted, where)
                if not start_ms <= at <= end_ms:
                    continue
                site = normalized.get("site")
                found.append(Recorded(at, event, where, record.profile_id or None,
                                      site if isinstance(site, str) else None,
                                      imported=record.imported))
            if len(page) < STREAM_PAGE:
                break
            low = "(" + page[-1][0].decode()
    except redis.RedisError as error:
        raise SimulationError(f"reading {stream_key}: {error}") from None
    finally:
        client.close()
    return found


# -- the report ------------------------------------------------------------------------------

@dataclass
class Send:
    """A message the journey would send."""

    profile_id: str
    step: str
    channel: str
    title: str | None
    body: str
    link: str | None
    at: int
    local: str                      # on the person's clock, with its offset
    zone: str
    run: str | None


@dataclass
class Happening:
    """A step outcome worth naming: a held-back or dropped send, a late skip, an exit,
    a goal, a run completed."""

    profile_id: str
    step: str
    outcome: str
    at: int
    local: str
    zone: str
    run: str
    channel: str | None = None
    reason: str | None = None
    until: int | None = None        # a deferral's next try
    until_local: str | None = None


@dataclass
class Conversions:
    entered: int                    # runs
    goal: int                       # runs that reached the goal
    rate: float                     # goal / entered (0 with none entered)
    after_send: int                 # of those, runs that had been sent something first


@dataclass
class Report:
    journey: str
    version: str
    start: int
    end: int
    zone: str                       # the site's, in which the window was read
    events: int                     # replayed through the edge
    duplicates: int                 # replayed, but already seen (their message id)
    outside: int                    # recorded outside the window: not replayed
    rejected: list[str]             # what ingest would refuse, with the reason
    entered: int                    # runs started
    people: int                     # distinct people who entered
    steps: dict[str, dict[str, int]]   # step ("entry", ..., "end") -> outcome -> count
    sends: list[Send]
    deferred: list[Happening]
    dropped: list[Happening]
    skipped_late: list[Happening]
    exits: list[Happening]
    goals: list[Happening]
    completed: int
    running: int                    # runs still live at the end of the window
    conversions: Conversions
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)


# -- the journey -----------------------------------------------------------------------------

def find_journey(settings: Settings, journey_id: str,
                 rulebook: Rulebook | None = None) -> JourneyDef:
    """The journey `journey_id` as the worker would load it; SimulationError if there is
    none or it has problems."""
    journeys, problems = check_journeys(
        settings.journeys_dir, rulebook or Rulebook(settings.rules_dir, settings.scenarios_dir))
    for journey in journeys:
        if journey.id == journey_id:
            return journey
    known = sorted(j.id for j in journeys)
    message = f"unknown journey {journey_id!r}{did_you_mean(journey_id, known)}; " + (
        f"the journeys in {settings.journeys_dir}: {', '.join(known)}" if known
        else f"there are no journeys in {settings.journeys_dir}")
    errors = errors_of(problems)
    if errors:  # a journey with problems is left out: it may be this one
        message += "\nthe journey files have problems:\n" + "\n".join(str(p) for p in errors)
    raise SimulationError(message)


def _only(settings: Settings, journey: JourneyDef, folder: Path) -> Settings:
    """The settings with a journeys folder holding this journey alone, and the scenario
    pack's rules without its journeys."""
    journeys = folder / "journeys"
    journeys.mkdir(parents=True, exist_ok=True)
    (journeys / f"{journey.id}.yaml").write_text(journey.document, encoding="utf-8")
    automation = msgspec.structs.replace(settings.automation, journeys=str(journeys.resolve()))
    pack = folder / "scenarios"
    for path in rule_files(settings.rules_dir, settings.scenarios_dir):
        if path.is_relative_to(settings.scenarios_dir):
            target = pack / path.relative_to(settings.scenarios_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return msgspec.structs.replace(settings, automation=automation, scenarios=str(pack.resolve()))


class _RecordingRunner(JourneyRunner):
    """The runner, keeping each committed step record with the person it was for (the
    records name runs, not people): the report's deferrals, exits and goals."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.records: list[tuple[str, StepRecord]] = []

    async def after_commit(self, profile_id: str, before: PersonJourneys, change: Change) -> None:
        self.records += [(profile_id, record) for record in change.records]
        await super().after_commit(profile_id, before, change)


# -- the replay ------------------------------------------------------------------------------

def simulate(settings: Settings, journey_id: str, start_ms: int, end_ms: int,
             events: Iterable[Recorded]) -> Report:
    """Replays `events` through the journey `journey_id` from `start_ms` to `end_ms` on a
    scratch Redis and reports what it did. Call from the main thread (the scratch
    Redis ends with the thread that started it)."""
    if end_ms <= start_ms:
        raise SimulationError("--to must be later than --from")
    rulebook = Rulebook(settings.rules_dir, settings.scenarios_dir)
    journey = find_journey(settings, journey_id, rulebook)
    with tempfile.TemporaryDirectory(prefix="kairos-simulate-") as scratch:
        folder = Path(scratch)
        scratch_settings = _only(settings, journey, folder)
        server = EmbeddedRedis(folder / "redis", persistent=False)
        url = server.start()
        try:
            return asyncio.run(_replay(scratch_settings, url, journey, start_ms, end_ms,
                                       list(events)))
        finally:
            server.stop()


class _Replay:
    def __init__(self, settings: Settings, url: str, journey: JourneyDef, start_ms: int) -> None:
        self.settings = settings
        self.journey = journey
        self.clock = FakeClock(start_ms)
        self.worker = Worker(settings, url, self.clock, consumer_name="simulate")
        worker = self.worker
        self.runner = _RecordingRunner(settings, worker.profiles, worker.journey_store,
                                       worker.timers, worker.rulebook,
                                       lambda: worker.journeys.book, self.clock)
        worker.runner = self.runner  # the loops and the calendar sweep reach it from here
        self.client = aioredis.from_url(url, decode_responses=False)
        self.store = ProfileStore(self.client, settings, url)
        self.pipeline = Pipeline(self.store, worker.rulebook, Metrics(), self.clock,
                                 CatalogStore(self.client, settings, self.clock))
        self.site_name = next(iter(settings.sites), "")
        self.last_id = "0-0"
        self.dated = bool(worker.journeys.book.dated)
        self.next_sweep = start_ms

    async def prepare(self) -> None:
        """What the edge and the worker do when they start."""
        await self.store.batcher.load_scripts()
        await self.store.register_aggregates(self.worker.rulebook.active.layout)
        await self.worker.profiles.batcher.load_scripts()
        await self.worker.consumer.ensure_group()
        await self.worker.journey_store.remember_documents(self.worker.journeys.documents())

    async def close(self) -> None:
        await self.client.aclose()
        self.store.batcher.close()
        await self.worker.client.aclose()
        self.worker.profiles.batcher.close()

    def caller(self, site: str | None) -> Caller:
        """A server-side caller of the event's site: trusted, so its identities join."""
        name = site if site in self.settings.sites else self.site_name
        return Caller("secret", name, self.settings.sites[name], frozenset({"ingest"}))

    async def advance(self, target: int) -> None:
        """Moves the clock to `target`, stopping at every moment something comes due."""
        timers = self.worker.timers
        claims = 0
        while True:
            now = self.clock.now_ms()
            due = (await timers.counts(target)).oldest_overdue_ms
            sweep = self.next_sweep if self.dated and self.next_sweep <= target else None
            moments = [m for m in (due, sweep) if m is not None]
            if not moments:
                break
            moment = max(min(moments), now)
            claims = claims + 1 if moment == now else 0
            if claims > MAX_CLAIMS_AT_ONE_MOMENT:
                raise SimulationError(
                    f"journey {self.journey.id!r} keeps stepping at {_utc(moment)} without "
                    f"waiting: a loop of steps with no wait in it")
            self.clock.set(moment)
            if sweep is not None and moment >= sweep:
                await calendar_sweep.sweep_due(self.worker)
                self.next_sweep = moment - moment % QUARTER_HOUR_MS + QUARTER_HOUR_MS
            if due is not None and due <= moment:
                if not await self.worker.fire_due_timers(moment):
                    raise SimulationError(f"timers due at {_utc(due)} could not be claimed")
        self.clock.set(max(target, self.clock.now_ms()))

    async def replay(self, recorded: Recorded) -> str | None:
        """One event through the edge and the worker: None, or why ingest refused it."""
        await self.advance(recorded.at)
        if recorded.change is not None:  # the stream's own entry id, acknowledged as live
            await self.worker.handle_entries([Entry(recorded.source, recorded.change)])
            return None
        assert recorded.event is not None
        caller = self.caller(recorded.site)
        try:
            incoming = normalize(msgspec.structs.replace(recorded.event), caller,
                                 self.settings.limits, self.clock.now_ms(),
                                 imported=recorded.imported)
        except InputError as error:
            return f"{recorded.source}: {error}"
        if recorded.profile_id:
            incoming.primary = recorded.profile_id
        context = incoming.event.get("context") or {}
        agent = context.get("userAgent") if isinstance(context, dict) else None
        outcome = await self.pipeline.handle(
            incoming, caller, RequestInfo(user_agent=agent if isinstance(agent, str) else None))
        entries = await self.new_entries()
        if entries:
            await self.worker.handle_entries(entries)
        return "duplicate" if outcome.duplicate else None

    async def new_entries(self) -> list[Entry]:
        found: list[Entry] = []
        while True:
            page = await self.client.xrange(self.settings.stream.key, f"({self.last_id}", "+",
                                            STREAM_PAGE)
            for entry_id, fields in page:
                self.last_id = entry_id.decode()
                try:
                    found.append(Entry(self.last_id, streams.decode(fields)))
                except (msgspec.ValidationError, ValueError):
                    found.append(Entry(self.last_id, None))
            if len(page) < STREAM_PAGE:
                return found

    async def zone_of(self, profile_id: str, now: int) -> str:
        """The person's zone as the runner reads it: their timezone trait, or the site's."""
        facts = await self.runner.facts(profile_id, self.site_name, now)
        zone = facts.zone if facts is not None else None
        return zone or self.settings.sites[self.site_name].timezone


async def _replay(settings: Settings, url: str, journey: JourneyDef, start_ms: int,
                  end_ms: int, events: Sequence[Recorded]) -> Report:
    replay = _Replay(settings, url, journey, start_ms)
    try:
        await replay.prepare()
        inside = sorted((e for e in events if start_ms <= e.at <= end_ms), key=lambda e: e.at)
        rejected: list[str] = []
        duplicates = 0
        for recorded in inside:
            problem = await replay.replay(recorded)
            if problem == "duplicate":
                duplicates += 1
            elif problem is not None:
                rejected.append(problem)
        await replay.advance(end_ms)
        changes = sum(1 for e in inside if e.change is not None)
        return await _report(replay, journey, start_ms, end_ms,
                             len(inside) - changes - len(rejected), duplicates,
                             sum(1 for e in events if not start_ms <= e.at <= end_ms), rejected,
                             changes)
    finally:
        await replay.close()


async def _report(replay: _Replay, journey: JourneyDef, start_ms: int, end_ms: int,
                  replayed: int, duplicates: int, outside: int, rejected: list[str],
                  changes: int) -> Report:
    worker = replay.worker
    counted = (await worker.journey_store.stats([journey.id]))[journey.id]
    order = [ENTRY_STEP, *(step.id for step in journey.steps), END]
    steps = {step: _ordered(counted.get(step, {})) for step in order}
    steps.update({step: _ordered(found) for step, found in sorted(counted.items())
                  if step not in steps})

    zones: dict[str, str] = {}

    async def local(profile_id: str, at: int | None) -> tuple[str, str]:
        if profile_id not in zones:
            zones[profile_id] = await replay.zone_of(profile_id, end_ms)
        zone = zones[profile_id]
        return (_local(at, zone) if at is not None else ""), zone

    sends: list[Send] = []
    sent_runs: dict[str, int] = {}
    for _, fields in await replay.client.xrange(streams.OUTBOX):
        message = streams.decode(fields)
        if not isinstance(message, streams.OutboundMessage) or message.journey != journey.id:
            continue
        when, zone = await local(message.profile_id, message.timestamp)
        sends.append(Send(message.profile_id, message.step or "", message.channel, message.title,
                          message.body, message.link, message.timestamp, when, zone, message.run))
        if message.run is not None:
            sent_runs.setdefault(message.run, message.timestamp)

    named: dict[str, list[Happening]] = {DEFERRED: [], DROPPED: [], SKIPPED_LATE: [],
                                         EXITED: [], GOAL: []}
    entered_by: set[str] = set()
    entered = completed = after_send = 0
    for profile_id, record in replay.runner.records:
        if record.journey != journey.id:
            continue
        if record.outcome == ENTERED:
            entered += 1
            entered_by.add(profile_id)
        elif record.outcome == COMPLETED:
            completed += 1
        if record.outcome == GOAL and sent_runs.get(record.run, end_ms + 1) <= record.at:
            after_send += 1
        if record.outcome in named:
            when, zone = await local(profile_id, record.at)
            until = (await local(profile_id, record.until))[0] if record.until is not None else None
            named[record.outcome].append(Happening(
                profile_id, record.step, record.outcome, record.at, when, zone, record.run,
                record.channel, record.reason, record.until, until))
    goals = len(named[GOAL])
    running = sum(found.get(WAITING, 0) for found in counted.values())
    notes = []
    if journey.entry.kind not in (ENTRY_EVENT, ENTRY_INACTIVE, ENTRY_DATE, ENTRY_CATALOG):
        notes.append(f"this journey's entry ({journey.entry.kind}) does not come from events: "
                     f"nobody enters it in a replay")
    elif journey.entry.kind == ENTRY_CATALOG and not changes:
        notes.append("this journey's entry comes from catalog changes, which the live "
                     "stream records (a file of events does not): none were replayed")
    return Report(
        journey=journey.id, version=journey.version, start=start_ms, end=end_ms,
        zone=replay.settings.sites[replay.site_name].timezone, events=replayed,
        duplicates=duplicates, outside=outside, rejected=rejected, entered=entered,
        people=len(entered_by), steps=steps, sends=sends, deferred=named[DEFERRED],
        dropped=named[DROPPED], skipped_late=named[SKIPPED_LATE], exits=named[EXITED],
        goals=named[GOAL], completed=completed, running=running,
        conversions=Conversions(entered, goals, round(goals / entered, 4) if entered else 0.0,
                                after_send),
        notes=notes)


def _ordered(counts: dict[str, int]) -> dict[str, int]:
    known = [name for name in OUTCOME_ORDER if counts.get(name)]
    return {name: counts[name] for name in [*known, *sorted(set(counts) - set(OUTCOME_ORDER))]
            if counts[name]}


def _local(ms: int, zone: str) -> str:
    return datetime.fromtimestamp(ms / 1000, zone_named(zone)).isoformat(timespec="minutes")


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# -- the report as text ----------------------------------------------------------------------

def _clock(ms: int, zone: str) -> str:
    moment = datetime.fromtimestamp(ms / 1000, zone_named(zone))
    return f"{moment:%Y-%m-%d %H:%M} {moment.tzname() or zone}"


def format_report(report: Report) -> str:
    """The report for people: counts per step, then who would get what, and when."""
    lines = [f"Journey {report.journey} (version {report.version}), "
             f"{_clock(report.start, report.zone)} to {_clock(report.end, report.zone)}",
             f"Events replayed: {report.events}"
             + (f" ({report.duplicates} already seen)" if report.duplicates else "")
             + (f"; {report.outside} outside the window" if report.outside else "")
             + (f"; {len(report.rejected)} refused" if report.rejected else "")]
    lines += [f"  refused: {reason}" for reason in report.rejected]
    lines.append(f"Entered: {report.entered} run(s) by {report.people} person(s)")
    columns = [name for name in OUTCOME_ORDER
               if any(name in counts for counts in report.steps.values())]
    columns += sorted({name for counts in report.steps.values() for name in counts} - set(columns))
    width = max(len(step) for step in report.steps)
    lines.append("")
    lines.append("  ".join([f"{'step':<{width}}", *(f"{name:>{max(len(name), 5)}}" for name in columns)]))
    for step, counts in report.steps.items():
        cells = [f"{counts.get(name, 0) or '':>{max(len(name), 5)}}" for name in columns]
        lines.append("  ".join([f"{step:<{width}}", *cells]).rstrip())
    if columns and WAITING in columns:
        lines.append(f"({WAITING}: runs still waiting at that step when the window ends)")
    lines.append("")
    lines.append(f"Would send: {len(report.sends)}")
    for send in report.sends:
        text = send.title + ": " + send.body if send.title else send.body
        lines.append(f"  {_clock(send.at, send.zone)}  {send.profile_id}  {send.step} "
                     f"by {send.channel}  {_short(text)}")
    for title, happenings in (("Deferred", report.deferred), ("Dropped", report.dropped),
                              ("Skipped as late", report.skipped_late),
                              ("Exited", report.exits), ("Reached the goal", report.goals)):
        lines.append(f"{title}: {len(happenings)}")
        for happening in happenings:
            detail = f"  {_clock(happening.at, happening.zone)}  {happening.profile_id}  " \
                     f"at {happening.step}"
            if happening.channel:
                detail += f" ({happening.channel})"
            if happening.reason and happening.outcome not in (EXITED, GOAL):
                detail += f": {happening.reason}"
            if happening.until is not None:
                detail += f", next try {_clock(happening.until, happening.zone)}"
            lines.append(detail)
    conversions = report.conversions
    lines.append(f"Conversions: {conversions.goal} of {conversions.entered} run(s) reached the "
                 f"goal ({conversions.rate:.1%}), {conversions.after_send} after a send")
    lines.append(f"Completed: {report.completed}; still running at the end: {report.running}")
    lines += [f"Note: {note}" for note in report.notes]
    return "\n".join(lines)


def _short(text: str, most: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= most else text[:most - 1] + "…"

