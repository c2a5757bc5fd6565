"""Journeys as pure state machines: `advance(run, stimulus, now) -> (run', effects, wake_at)`.

A run is one person's way through one version of a journey. Stimuli are the
person's events, the run's own timer and entry (an event, an enrolment, a date
sweep, inactivity, a catalog change). `JourneyBook.process` takes one stimulus
for one person across every journey and returns what changes: the runs, the
effects (sends, traits, tags, webhooks) and a typed record of every step's
outcome. Nothing here reads a clock or does I/O: the worker (edge/worker/) reads
the person, calls this, and writes the result atomically; `kairos simulate`
calls the same code over recorded events on a simulated clock.

Invariants the worker and the tests rely on:
- a live run always has a wake-up time (`wake_at`): every wait has a deadline,
  and a run that finished its steps waits out its goal window, so no run is
  left without a timer or an end;
- an ended run produces no effects;
- a send's idempotency key is (run id, step, attempt), so the same stimulus
  computed twice yields the same keys.
"""

from __future__ import annotations

import math

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec

from .arbitration import Person, SendChecks, channel_preference
from .calendars import NameDays, occurs_on, shifted_date, year_of, yearly_date
from .content import RenderScope
from .definitions import ExperimentDef, Origin
from .experiments import CONTROL, assign
from .journey_defs import (
    DATE_BIRTHDAY,
    DATE_NAME_DAY,
    DATE_SIGNUP,
    ENTRY_CATALOG,
    ENTRY_DATE,
    ENTRY_EVENT,
    ENTRY_SEGMENT,
    ENTRY_INACTIVE,
    REENTRY_AFTER,
    REENTRY_NEVER,
    Condition,
    JourneyDef,
    Matcher,
    Step,
)
from .journey_schema import END
from .localtime import WEEKDAYS, zone_named
from .outcomes import Kind, Outcome
from .reference import Environment

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
# Steps one stimulus may run through (a goto loop cannot spin the worker): past this
# the run wakes again at once and goes on.
MAX_STEPS_PER_ADVANCE = 64
MAX_DATA_KEYS = 50  # of the entry event's properties kept with a run, for its templates

# Record outcomes (StepRecord.outcome)
ENTERED, SENT, DEFERRED, DROPPED, SKIPPED_LATE, WAITING = (
    "entered", "sent", "deferred", "dropped", "skipped_late", "waiting")
SET, WEBHOOK, BRANCHED, HELD_OUT = "set", "webhook", "branched", "held_out"
# How a run ends (Run.ended, and the record of its last step)
COMPLETED, EXITED, GOAL, HOLDOUT_DONE, STRANDED = (
    "completed", "exited", "goal", "holdout_completed", "stranded")
ENDINGS = (COMPLETED, EXITED, GOAL, HOLDOUT_DONE, STRANDED)


class Deferral(msgspec.Struct, frozen=True):
    """A send held back: why (an arbitration outcome kind), on which channel, until when."""

    reason: str
    channel: str
    until: int
    detail: str = ""


class Run(msgspec.Struct, kw_only=True, omit_defaults=True):
    journey: str
    version: str
    key: str
    id: str
    entered_at: int
    step: str | None               # the current step; None: its steps are done (goal window)
    since: int                     # when the current step began
    wake_at: int                   # when its timer is due; a live run always has one
    seq: int = 0                   # steps taken: a stale timer names an older one
    attempt: int = 0               # tries of the current step (deferred sends)
    arm: str | None = None         # the split arm it took, "control" when held out
    data: dict[str, Any] = {}      # the entry event's properties, for templates
    site: str = ""                 # the entry event's site: its time zone and consent defaults
    deferred: Deferral | None = None
    ended: str | None = None
    ended_at: int = 0


@dataclass(frozen=True)
class SendEffect:
    key: str                       # idempotency key: run id, step, attempt
    run: str
    journey: str
    version: str
    step: str
    channel: str
    title: str | None
    body: str
    link: str | None
    caps: tuple[tuple[str, int, int], ...]   # checked and recorded atomically with the send


@dataclass(frozen=True)
class TraitsEffect:
    traits: dict[str, Any]


@dataclass(frozen=True)
class TagsEffect:
    tags: tuple[str, ...]


@dataclass(frozen=True)
class WebhookEffect:
    key: str
    run: str
    journey: str
    step: str
    url: str
    body: str


Effect = SendEffect | TraitsEffect | TagsEffect | WebhookEffect


@dataclass(frozen=True)
class StepRecord:
    """One step's outcome, typed: counted per journey and step, shown by simulate."""

    journey: str
    version: str
    step: str                      # the step id, or "entry"
    outcome: str
    at: int
    run: str
    channel: str | None = None
    reason: str | None = None      # why held back, dropped or skipped
    until: int | None = None       # a deferral's next try


@dataclass
class Facts:
    """What the machine reads about the person at `now`: the profile as rules read it,
    the person's delivery state for the send checks, and their time zone."""

    profile: dict[str, Any]
    person: Person
    zone: str | None
    checks: SendChecks
    locale: str | None = None


@dataclass
class Advance:
    run: Run
    effects: list[Effect] = field(default_factory=list)
    records: list[StepRecord] = field(default_factory=list)

    @property
    def wake_at(self) -> int | None:
        return None if self.run.ended else self.run.wake_at


# -- matching --------------------------------------------------------------------------------

def matches(matcher: Matcher, event: Mapping[str, Any] | None, facts: Facts, now: int) -> bool:
    if event is None:
        return False
    trigger = matcher.trigger
    if trigger.kind != "any":
        if event.get("type") != trigger.kind:
            return False
        if trigger.track_name is not None and event.get("event") != trigger.track_name:
            return False
    return matcher.when is None or holds(matcher.when, event, facts, now)


def holds(condition: Condition, event: Mapping[str, Any] | None, facts: Facts, now: int) -> bool:
    value = evaluate(condition, event, facts, now)
    return value is not None and value is not False and value != 0 and value != "" \
        and value != [] and value != {}


def evaluate(condition: Condition, event: Mapping[str, Any] | None, facts: Facts, now: int) -> Any:
    profile = facts.profile
    try:
        return condition.compiled(Environment(event=event or {}, profile=profile, context={},
                                              now=now, segments=profile.get("segments") or []))
    except Exception:  # a condition over a person's odd data is false, never a crash
        return None


# -- one run ---------------------------------------------------------------------------------

def start(journey: JourneyDef, key: str, now: int, facts: Facts,
          event: Mapping[str, Any] | None = None, number: int = 1) -> Advance:
    """A new run of `journey` for this person, taken through its first steps; `number`
    counts the person's entries into the journey, so every run has an id of its own
    (the person, the journey, the run key and the entry's number): send keys derive
    from it."""
    properties = (event or {}).get("properties") or {}
    data = dict(list(properties.items())[:MAX_DATA_KEYS]) if isinstance(properties, dict) else {}
    run = Run(journey=journey.id, version=journey.version, key=key,
              id=f"{facts.person.profile_id}/{journey.id}/{key}/{number}", entered_at=now, step=journey.first, since=now,
              wake_at=now, data=data, site=str((event or {}).get("site") or ""))
    advance = Advance(run)
    advance.records.append(_record(journey, run, "entry", ENTERED, now))
    if _exits_now(journey, event, facts, now):
        return _end(journey, advance, EXITED, now, "entry")
    return _go(journey, advance, journey.first, now, facts, late_from=None)


def on_event(journey: JourneyDef, run: Run, event: Mapping[str, Any], now: int,
             facts: Facts) -> Advance | None:
    """What an event of the person does to a live run: its goal, an exit, or the event a
    wait_for step waits for. None when it changes nothing."""
    if run.ended:
        return None
    advance = Advance(_copy(run))
    goal = journey.goal
    if goal is not None and matches(goal.matcher, event, facts, now) and (
            goal.within_ms is None or now - run.entered_at <= goal.within_ms):
        return _end(journey, advance, GOAL, now, run.step or END)
    if _exits_now(journey, event, facts, now):
        return _end(journey, advance, EXITED, now, run.step or END)
    step = journey.step(run.step)
    if step is not None and step.kind == "wait_for" and step.waits_for is not None \
            and matches(step.waits_for, event, facts, now):
        return _go(journey, advance, step.then or step.next or END, now, facts, late_from=None,
                   event=event)
    return None


def on_timer(journey: JourneyDef, run: Run, now: int, facts: Facts) -> Advance | None:
    """The run's timer fired: go on from the step it waits in. None for a timer that is
    early (rescheduled since) or for an ended run."""
    if run.ended or now < run.wake_at:
        return None
    advance = Advance(_copy(run))
    if _exits_now(journey, None, facts, now):
        return _end(journey, advance, EXITED, now, run.step or END)
    if run.step is None:  # its steps are done; its goal window has passed
        return _end(journey, advance, HOLDOUT_DONE if run.arm == CONTROL else COMPLETED, now, END)
    step = journey.step(run.step)
    if step is None:
        return _end(journey, advance, STRANDED, now, run.step)
    due = run.wake_at
    if step.kind in ("wait", "wait_until"):
        return _go(journey, advance, step.next or END, now, facts, late_from=due)
    if step.kind == "wait_for":
        return _go(journey, advance, step.on_timeout or step.next or END, now, facts, late_from=due)
    # a deferred send, or a chain cut short by MAX_STEPS_PER_ADVANCE: this step again
    return _go(journey, advance, step.id, now, facts, late_from=due, again=True)


def _go(journey: JourneyDef, advance: Advance, step_id: str | None, now: int, facts: Facts,
        late_from: int | None, event: Mapping[str, Any] | None = None,
        again: bool = False) -> Advance:
    """Run steps from `step_id` until one waits or the run ends."""
    run = advance.run
    for _ in range(MAX_STEPS_PER_ADVANCE):
        if step_id is None or step_id == END:
            return _steps_done(journey, advance, now)
        step = journey.step(step_id)
        if step is None:
            return _end(journey, advance, STRANDED, now, step_id)
        if not again:
            run.step, run.since, run.seq, run.attempt = step.id, now, run.seq + 1, 0
            run.deferred = None
        else:
            run.attempt += 1
        again = False
        if _exits_now(journey, None, facts, now, conditions_only=True):
            return _end(journey, advance, EXITED, now, step.id)
        if step.late_ms is not None and late_from is not None and now - late_from > step.late_ms:
            advance.records.append(_record(journey, run, step.id, SKIPPED_LATE, now,
                                           reason=f"{(now - late_from) // 1000}s late"))
            step_id = step.next or END
            continue
        outcome = _step(journey, step, advance, now, facts, event)
        if outcome is None:  # it waits
            return advance
        step_id = outcome
    run.wake_at = now  # a long chain of instant steps: go on with the next stimulus
    return advance


def _step(journey: JourneyDef, step: Step, advance: Advance, now: int, facts: Facts,
          event: Mapping[str, Any] | None) -> str | None:
    """Carry out one step: the next step's id, or None when the run now waits."""
    run = advance.run
    kind = step.kind
    following = step.next or END
    if kind == "wait":
        run.wake_at = run.since + step.duration_ms
        return None
    if kind == "wait_until":
        # its moment belongs to the run: read from the event the run began with
        run.wake_at = wait_until(step, now, facts, {"properties": run.data})
        return None
    if kind == "wait_for":
        run.wake_at = run.since + step.timeout_ms
        return None
    if kind == "if":
        assert step.condition is not None
        # woken by a timer, `event` is the one the run began with (as in the templates)
        taken = holds(step.condition, event or {"properties": run.data}, facts, now)
        target = (step.then or following) if taken else (step.otherwise or following)
        advance.records.append(_record(journey, run, step.id, BRANCHED, now,
                                       reason="yes" if taken else "no"))
        return target
    if kind == "split":
        arm = _arm(journey, step, facts.person.profile_id)
        run.arm = arm
        if arm == CONTROL:
            advance.records.append(_record(journey, run, step.id, HELD_OUT, now))
            return END
        advance.records.append(_record(journey, run, step.id, BRANCHED, now, reason=arm))
        chosen = next(a for a in step.arms if a.name == arm)
        return chosen.goto or following
    if kind == "send":
        return _send(journey, step, advance, now, facts)
    if kind == "set":
        advance.effects.append(TraitsEffect(dict(step.traits)))
        advance.records.append(_record(journey, run, step.id, SET, now))
        return following
    if kind == "tag":
        advance.effects.append(TagsEffect(step.tags))
        advance.records.append(_record(journey, run, step.id, SET, now))
        return following
    if kind == "webhook":
        scope = _scope(run, facts)
        assert step.url is not None
        advance.effects.append(WebhookEffect(
            f"{run.id}:{step.id}:{run.attempt}", run.id, journey.id, step.id,
            step.url.compiled.render_in(scope),
            step.body.compiled.render_in(scope) if step.body is not None else ""))
        advance.records.append(_record(journey, run, step.id, WEBHOOK, now))
        return following
    if kind == "exit":
        _end(journey, advance, EXITED, now, step.id)
        return None
    if kind == "goto":
        return step.target
    raise ValueError(f"unknown step kind {kind!r}")


def _send(journey: JourneyDef, step: Step, advance: Advance, now: int, facts: Facts) -> str | None:
    """Send now, defer to the next moment the person's budget allows, or drop."""
    run = advance.run
    send = step.send
    assert send is not None
    person, checks = facts.person, facts.checks
    purpose = send.purpose if send.purpose is not None else journey.purpose
    reasons: list[tuple[str, Outcome]] = []
    for channel in channel_preference(send.channels, person, checks.policy.channel_order):
        why = checks.why_not(person, channel, purpose, journey.caps)
        if why is None:
            scope = _scope(run, facts)
            title = send.fields.get("title")
            body = send.fields.get("body")
            advance.effects.append(SendEffect(
                f"{run.id}:{step.id}:{run.attempt}", run.id, journey.id, journey.version, step.id,
                channel, title.compiled.render_in(scope) if title is not None else None,
                body.compiled.render_in(scope) if body is not None else "",
                send.link.compiled.render_in(scope) if send.link is not None else None,
                tuple(journey.caps) + checks.channel_caps[channel]))
            advance.records.append(_record(journey, run, step.id, SENT, now, channel=channel))
            _count_delivery(person, advance.effects[-1].caps, now)  # type: ignore[union-attr]
            return step.next or END
        reasons.append((channel, why))
    deferrable = [(until, channel, why) for channel, why in reasons
                  if (until := next_allowed(why, person, checks, now)) is not None]
    if send.on_hold == "defer" and deferrable:
        until, channel, why = min(deferrable, key=lambda found: found[0])
        run.deferred = Deferral(why.kind.value, channel, until, why.text())
        run.wake_at = until
        advance.records.append(_record(journey, run, step.id, DEFERRED, now, channel=channel,
                                       reason=why.text(), until=until))
        return None
    channel, why = reasons[0] if reasons else (None, None)
    advance.records.append(_record(journey, run, step.id, DROPPED, now, channel=channel,
                                   reason=why.text() if why is not None else "no channel"))
    return step.next or END


def _count_delivery(person: Person, caps: Sequence[tuple[str, int, int]], now: int) -> None:
    """A send's delivery, in the person's history for the steps after it in this advance
    (the commit records it in the store, under the same caps)."""
    deliveries = dict(person.deliveries)
    for key in {key for key, _, _ in caps}:
        deliveries[key] = [*deliveries.get(key, ()), now]
    person.deliveries = deliveries


def next_allowed(why: Outcome, person: Person, checks: SendChecks, now: int) -> int | None:
    """When a send held back for `why` may go: the end of quiet hours, or when the oldest
    delivery that fills the cap leaves its window. None: waiting does not help (consent,
    no address)."""
    if why.kind is Kind.QUIET_HOURS and checks.policy.quiet is not None:
        _, end = checks.policy.quiet
        minutes = (end - person.minute) % 1440 or 1440
        return now - now % MINUTE_MS + minutes * MINUTE_MS
    if why.kind is Kind.CAP and why.cap is not None:
        since = now - why.per_ms
        times = sorted(t for t in person.deliveries.get(why.cap, ()) if t > since)
        expiring = len(times) - why.most  # deliveries that must leave the window first
        if times and 0 <= expiring < len(times):
            return times[expiring] + why.per_ms + 1
    return None


def wait_until(step: Step, now: int, facts: Facts,
               event: Mapping[str, Any] | None = None) -> int:
    """The next moment at or after `now` that the step names, on the person's clock.
    `event`: what `event` means in its expressions (the run's entry event)."""
    zone = zone_named(facts.zone)
    local = datetime.fromtimestamp(now / 1000, zone)
    if step.moment is not None:
        at = moment_ms(evaluate(step.moment, event, facts, now))
        return now if at is None else max(now, at + step.offset_ms)  # none: go on at once
    if step.date is not None:
        value = evaluate(step.date, event, facts, now)
        # whole days move the date (the local hour stays across a DST change), the rest is added
        days, rest_ms = divmod(step.offset_ms, DAY_MS)
        day = shifted_date(value, days) if value is not None else None
        if day is None:
            return now  # no usable date: go on at once
        minute = step.minute if step.minute is not None else 9 * 60
        target = datetime.fromisoformat(day).replace(hour=minute // 60, minute=minute % 60,
                                                     tzinfo=zone)
        return max(now, int(target.timestamp() * 1000) + rest_ms)
    if step.best_hour:
        best = facts.profile.get("best_send_hour")
        minute = (best if isinstance(best, int) and 0 <= best < 24 else step.fallback_hour) * 60
    else:
        minute = step.minute if step.minute is not None else local.hour * 60 + local.minute
    days = step.days
    for offset in range(0, 8):
        day = (local + timedelta(days=offset)).date()
        if days is not None and WEEKDAYS[day.weekday()] not in days:
            continue
        target = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=zone)
        at = int(target.timestamp() * 1000)
        if at >= now - now % MINUTE_MS:
            return max(at, now)
    return now + DAY_MS  # unreachable with a valid day set: a day later, try again


def moment_ms(value: Any) -> int | None:
    """Epoch ms of a moment: ISO text that names its offset ("2026-05-04T18:00:00+02:00",
    "...Z"), or epoch milliseconds. A time without an offset is no moment: which zone it
    meant is not known."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return int(value)
    if not isinstance(value, str):
        return None
    try:
        found = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if found.tzinfo is None:
        return None
    return int(found.timestamp() * 1000)


def _steps_done(journey: JourneyDef, advance: Advance, now: int) -> Advance:
    """Its steps are done: wait out the goal window if there is one, else end."""
    run = advance.run
    goal = journey.goal
    if goal is not None and goal.within_ms is not None and now < run.entered_at + goal.within_ms:
        run.step, run.since, run.wake_at, run.deferred = None, now, run.entered_at + goal.within_ms, None
        return advance
    return _end(journey, advance, HOLDOUT_DONE if run.arm == CONTROL else COMPLETED, now, END)


def _end(journey: JourneyDef, advance: Advance, ending: str, now: int, step: str) -> Advance:
    run = advance.run
    run.ended, run.ended_at, run.deferred = ending, now, None
    advance.records.append(_record(journey, run, step, ending, now))
    return advance


def _exits_now(journey: JourneyDef, event: Mapping[str, Any] | None, facts: Facts, now: int,
               conditions_only: bool = False) -> bool:
    for matcher in journey.exits:
        if matcher.trigger.kind == "any" and matcher.when is not None:
            if holds(matcher.when, event, facts, now):
                return True
        elif not conditions_only and matches(matcher, event, facts, now):
            return True
    return False


def _arm(journey: JourneyDef, step: Step, profile_id: str) -> str:
    variants = [(arm.name, arm.weight) for arm in step.arms]
    if step.holdout:
        variants.append((CONTROL, step.holdout))
    experiment = ExperimentDef(f"{journey.id}:{step.id}", f"{journey.id}:{step.id}",
                               tuple(variants), Origin("", 0, 0))
    return assign(experiment, profile_id)


def _scope(run: Run, facts: Facts) -> RenderScope:
    profile = facts.profile
    return RenderScope({**(profile.get("catalog") or {}),  # the lists the worker fetched
                        "profile": profile, "traits": profile.get("traits") or {},
                        "cart": profile.get("cart") or {}, "event": {"properties": run.data},
                        "journey": {"id": run.journey, "run": run.id}},
                       facts.locale, facts.zone)


def _record(journey: JourneyDef, run: Run, step: str, outcome: str, at: int,
            **details: Any) -> StepRecord:
    return StepRecord(journey.id, journey.version, step, outcome, at, run.id, **details)


def _copy(run: Run) -> Run:
    return msgspec.structs.replace(run)


# -- calendar entries ------------------------------------------------------------------------

def calendar_keys(journey: JourneyDef, profile: Mapping[str, Any],
                  name_days: NameDays | None) -> tuple[str, ...]:
    """The date keys ("MM-DD" yearly, "YYYY-MM-DD" once) on which a date-entry journey
    enrols this person, its offset applied; () when the profile holds no such date."""
    entry = journey.entry
    traits = profile.get("traits") or {}
    if entry.date == DATE_BIRTHDAY:
        days = [yearly_date(traits.get("birthday"))]
    elif entry.date == DATE_SIGNUP:
        created = traits.get("created_at", traits.get("createdAt"))
        days = [yearly_date(created if created is not None else profile.get("first_seen"))]
    elif entry.date == DATE_NAME_DAY:
        if name_days is None:
            return ()
        name = traits.get("first_name", traits.get("firstName"))
        days = list(name_days.days_for(name, traits.get("country"), traits.get("locale")))
    else:
        return tuple(d for d in [shifted_date(traits.get(entry.trait or ""), entry.offset_days)]
                     if d is not None)
    return tuple(sorted({_shift_month_day(d, entry.offset_days) for d in days if d is not None}))


def celebrated_on(journey: JourneyDef, profile: Mapping[str, Any],
                  name_days: NameDays | None, day: str) -> bool:
    """Whether a date-entry journey enrols this person on the local date `day`
    ("YYYY-MM-DD"): one of their date keys falls on it, and for a registration
    anniversary it is not the day of the sign-up itself (the first comes a year later)."""
    if not any(occurs_on(key, day) for key in calendar_keys(journey, profile, name_days)):
        return False
    if journey.entry.date == DATE_SIGNUP:
        traits = profile.get("traits") or {}
        created = traits.get("created_at", traits.get("createdAt"))
        signed_up = year_of(created if created is not None else profile.get("first_seen"))
        return signed_up is None or int(day[:4]) > signed_up
    return True


def _shift_month_day(month_day: str, days: int) -> str:
    """A yearly "MM-DD" moved by whole days, counted in a leap year so 02-29 stays itself."""
    if not days:
        return month_day
    moved = datetime(2000, int(month_day[:2]), int(month_day[3:])) + timedelta(days=days)
    return moved.strftime("%m-%d")


# -- migration between versions --------------------------------------------------------------

def migrated(run: Run, journey: JourneyDef) -> Run | None:
    """The run moved onto `journey` (a newer version) as its migration says; None when it
    says nothing for this run's step (then the run finishes the version it entered)."""
    if run.version == journey.version or not journey.migrate:
        return None
    if run.step is None:
        target: str | None = None
    elif "*" in journey.migrate:
        target = run.step if journey.step(run.step) is not None else None
        if target is None:
            return None
    else:
        target = journey.migrate.get(run.step)
        if target is None or (target != END and journey.step(target) is None):
            return None
    moved = msgspec.structs.replace(run, version=journey.version,
                                    step=None if target == END else target)
    return moved


# -- every journey, for one person -----------------------------------------------------------

class Entry(msgspec.Struct, array_like=True):
    """A person's entries into one journey: when last, how many times."""

    last: int
    count: int


@dataclass
class PersonJourneys:
    """One person's journey state as stored: runs by field (journey + run key), entries."""

    runs: dict[str, Run] = field(default_factory=dict)
    entries: dict[str, Entry] = field(default_factory=dict)


@dataclass
class Change:
    """What one stimulus changes for one person."""

    runs: dict[str, Run] = field(default_factory=dict)       # field -> new state (ended ones too)
    entries: dict[str, Entry] = field(default_factory=dict)
    effects: list[Effect] = field(default_factory=list)
    records: list[StepRecord] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.runs or self.entries)

    def add(self, field_name: str, advance: Advance) -> None:
        self.runs[field_name] = advance.run
        self.effects += advance.effects
        self.records += advance.records


# Events by which a person shows interest in a product (Segment's e-commerce names).
INTEREST_EVENTS = frozenset({"Product Viewed", "Product Added", "Product Added to Wishlist",
                             "Back In Stock Requested"})


def run_field(journey_id: str, key: str) -> str:
    return f"{journey_id}\x1f{key}"


def labels(event: Mapping[str, Any]) -> tuple[str, ...]:
    """The trigger labels an event answers to (see rules.definitions.Trigger.label)."""
    kind = event.get("type")
    if kind == "track":
        return ("any", "track", f"track:{event.get('event')}")
    return ("any", str(kind))


class JourneyBook:
    """The loaded journeys (every version with runs in flight), indexed for the worker."""

    def __init__(self, journeys: Sequence[JourneyDef],
                 older: Iterable[JourneyDef] = ()) -> None:
        self.current = {journey.id: journey for journey in journeys}
        self.versions = {(j.id, j.version): j for j in (*older, *journeys)}
        self.dated = [j for j in journeys if j.entry.kind == ENTRY_DATE]
        self.by_segment = [j for j in journeys if j.entry.kind == ENTRY_SEGMENT]
        self.by_catalog = [j for j in journeys if j.entry.kind == ENTRY_CATALOG]
        # how long a product view counts for a catalog entry (the longest such window)
        self.views_kept_ms = max((j.entry.viewed_within_ms for j in self.by_catalog), default=0)
        self.entry_labels: dict[str, list[JourneyDef]] = {}
        self.inactivity_labels: dict[str, list[JourneyDef]] = {}
        for journey in journeys:
            entry = journey.entry
            if entry.kind in (ENTRY_EVENT, ENTRY_INACTIVE) and entry.matcher is not None:
                table = self.entry_labels if entry.kind == ENTRY_EVENT else self.inactivity_labels
                table.setdefault(entry.matcher.trigger.label(), []).append(journey)

    def version_of(self, run: Run) -> JourneyDef | None:
        """The definition a run follows: its own version, or the current one when that
        migrates it; None when neither is known (the version was lost)."""
        current = self.current.get(run.journey)
        if current is not None and current.version == run.version:
            return current
        if current is not None and migrated(run, current) is not None:
            return current
        return self.versions.get((run.journey, run.version))

    def wants(self, event: Mapping[str, Any]) -> bool:
        """Whether the event may start a run or reset an inactivity timer."""
        found = labels(event)
        return any(label in self.entry_labels or label in self.inactivity_labels
                   for label in found)

    def records_views(self, event: Mapping[str, Any]) -> str | None:
        """The product an event shows interest in, when catalog entries need to know."""
        if not self.by_catalog or event.get("event") not in INTEREST_EVENTS:
            return None
        product = (event.get("properties") or {}).get("product_id")
        return str(product) if isinstance(product, (str, int)) and product != "" else None

    def entries_for(self, event: Mapping[str, Any]) -> list[JourneyDef]:
        found: list[JourneyDef] = []
        for label in labels(event):
            found += self.entry_labels.get(label, ())
        return found

    def inactivity_for(self, event: Mapping[str, Any]) -> list[JourneyDef]:
        found: list[JourneyDef] = []
        for label in labels(event):
            found += self.inactivity_labels.get(label, ())
        return found

    # -- stimuli ---------------------------------------------------------------------------
    def on_event(self, state: PersonJourneys, event: Mapping[str, Any], facts: Facts,
                 now: int, paused: frozenset[str] = frozenset()) -> Change:
        change = Change()
        for name, run in state.runs.items():
            journey = self._follow(run, change, name)
            if journey is None:
                continue
            # a run per key (per order, per cart, per event) hears the events of its own
            # key, and those that name none
            if journey.run_key is not None and \
                    self.run_key(journey, event, facts, now) not in ("-", run.key):
                continue
            advance = on_event(journey, change.runs.get(name, run), event, now, facts)
            if advance is not None:
                change.add(name, advance)
        for journey in self.entries_for(event):
            if journey.id in paused:
                continue
            entry = journey.entry
            assert entry.matcher is not None
            if matches(entry.matcher, event, facts, now):
                self.enter(state, journey, event, facts, now, change)
        return change

    def on_segments(self, state: PersonJourneys, entered: Sequence[str], left: Sequence[str],
                    facts: Facts, now: int, paused: frozenset[str] = frozenset()) -> Change:
        """The person entered or left segments: segment entries."""
        change = Change()
        for journey in self.by_segment:
            segment = journey.entry.segment
            moved = segment in entered if journey.entry.enters else segment in left
            if moved and journey.id not in paused:
                self.enter(state, journey, {"properties": {"segment": segment}}, facts, now,
                           change)
        return change

    def catalog_entries(self, change_name: str) -> list[JourneyDef]:
        """The journeys a catalog change (product_price_dropped, product_back_in_stock)
        enrols the product's recent viewers into."""
        return [j for j in self.by_catalog if j.entry.catalog_change == change_name]

    def on_timer(self, state: PersonJourneys, name: str, facts: Facts, now: int) -> Change:
        change = Change()
        run = state.runs.get(name)
        if run is None:
            return change
        journey = self._follow(run, change, name)
        if journey is None:
            return change
        advance = on_timer(journey, change.runs.get(name, run), now, facts)
        if advance is not None:
            change.add(name, advance)
        return change

    def enter(self, state: PersonJourneys, journey: JourneyDef, event: Mapping[str, Any] | None,
              facts: Facts, now: int, change: Change | None = None, key: str | None = None) -> Change:
        """A new run when the journey's re-entry and concurrency rules allow one."""
        change = change if change is not None else Change()
        if key is None:
            key = self.run_key(journey, event, facts, now)
        name = run_field(journey.id, key)
        existing = change.runs.get(name) or state.runs.get(name)
        if existing is not None and not existing.ended:
            return change  # one run per key at a time
        entry = change.entries.get(journey.id) or state.entries.get(journey.id)
        if entry is not None:
            if journey.reentry == REENTRY_NEVER:
                return change
            if journey.reentry == REENTRY_AFTER and now - entry.last < journey.reentry_after_ms:
                return change
        live = [r for f, r in {**state.runs, **change.runs}.items()
                if r.journey == journey.id and not r.ended]
        if len(live) >= journey.max_runs:
            return change
        number = (entry.count if entry else 0) + 1
        change.add(name, start(journey, key, now, facts, event, number))
        change.entries[journey.id] = Entry(now, number)
        return change

    def run_key(self, journey: JourneyDef, event: Mapping[str, Any] | None, facts: Facts,
                now: int) -> str:
        if journey.run_key is None:
            return "-"
        value = evaluate(journey.run_key, event, facts, now)
        if value is None or isinstance(value, (dict, list)):
            return "-"
        return str(value).replace("\x1f", " ")[:200]

    def _follow(self, run: Run, change: Change, name: str) -> JourneyDef | None:
        """The definition for a run, moving it to the current version if that migrates it."""
        current = self.current.get(run.journey)
        if current is not None and current.version != run.version:
            moved = migrated(run, current)
            if moved is not None:
                change.runs[name] = moved
                return current
        return self.version_of(run)
