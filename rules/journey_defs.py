"""What a journey document says, once read and checked: entry, steps and the journey-wide
rules (goal, exits, re-entry, run keys, concurrency, migration).

Made by rules.journey_schema; run by rules.journeys. Conditions are compiled
expressions of the rule language (rules.expression), evaluated on the event, the
person's profile and the clock the caller passes in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .definitions import Origin, Template, Trigger
from .names import CATALOG_LISTS
from .expression import CompiledExpression

# How an entry finds people.
ENTRY_EVENT = "event"          # an event of theirs, with a condition
ENTRY_ENROLL = "enrollment"    # only through the API
ENTRY_DATE = "date"            # a date from the profile (daily sweep per time zone)
ENTRY_INACTIVE = "inactive"    # no event matching `of` for a duration
ENTRY_CATALOG = "catalog"      # a product they viewed dropped in price or came back in stock
ENTRY_SEGMENT = "segment"      # entering (or leaving) a segment

# What a date entry reads.
DATE_BIRTHDAY, DATE_SIGNUP, DATE_NAME_DAY, DATE_TRAIT = "birthday", "signup", "name_day", "trait"

REENTRY_NEVER, REENTRY_ALWAYS, REENTRY_AFTER = "never", "always", "after"


@dataclass(frozen=True)
class Condition:
    """A compiled condition with the text it came from."""

    text: str
    compiled: CompiledExpression


@dataclass(frozen=True)
class Matcher:
    """Which events something reacts to: a trigger and, optionally, a condition."""

    trigger: Trigger
    when: Condition | None = None


@dataclass(frozen=True)
class EntryDef:
    kind: str
    matcher: Matcher | None = None       # event entry; inactivity: the events that count
    date: str | None = None              # date entry: DATE_*
    trait: str | None = None             # DATE_TRAIT: the trait holding the date
    offset_days: int = 0                 # date entry: before (-) or after (+) the date
    yearly: bool = True                  # date entry: every year (birthday) or once (an end date)
    inactive_ms: int = 0                 # inactivity entry
    catalog_change: str | None = None    # streams.PRICE_DROPPED | BACK_IN_STOCK names
    viewed_within_ms: int = 0            # catalog entry: how recent a view counts
    segment: str | None = None
    enters: bool = True                  # segment entry: entering (True) or leaving


@dataclass(frozen=True)
class SendDef:
    channels: tuple[str, ...]            # one, or several: chosen per person
    fields: dict[str, Template]          # title, body
    link: Template | None = None
    purpose: str | None = "marketing"
    on_hold: str = "defer"               # what a cap or quiet hours do: defer | drop


@dataclass(frozen=True)
class Arm:
    name: str
    weight: int
    goto: str | None                     # None: the next step


@dataclass(frozen=True)
class Step:
    id: str
    kind: str  # wait, wait_until, wait_for, if, split, send, set, webhook, exit, goto
    origin: Origin
    next: str | None = None              # the step after this one in the file; None: the end
    late_ms: int | None = None           # a step reached later than this after its time is skipped
    # wait
    duration_ms: int = 0
    # wait_until: a local time, weekdays, a date from the profile, the best send hour
    minute: int | None = None
    days: frozenset[str] | None = None
    date: Condition | None = None
    moment: Condition | None = None      # `at`: a moment (ISO time with its offset, epoch ms)
    offset_ms: int = 0
    best_hour: bool = False
    fallback_hour: int = 10
    # wait_for
    waits_for: Matcher | None = None
    timeout_ms: int = 0
    on_timeout: str | None = None
    # if
    condition: Condition | None = None
    then: str | None = None
    otherwise: str | None = None
    # split: arms, and the share kept out (holdout) that gets nothing
    arms: tuple[Arm, ...] = ()
    holdout: int = 0
    salt: str = ""
    # send, set, webhook
    send: SendDef | None = None
    traits: dict[str, object] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    url: Template | None = None
    body: Template | None = None
    # goto
    target: str | None = None


@dataclass(frozen=True)
class GoalDef:
    matcher: Matcher
    within_ms: int | None = None         # from entry; None: for as long as the run lasts


@dataclass(frozen=True)
class JourneyDef:
    id: str
    version: str                         # a hash of the document: an edit is a new version
    origin: Origin
    entry: EntryDef
    steps: tuple[Step, ...]
    description: str = ""
    run_key: Condition | None = None     # runs per cart, order, ...; None: one key per person
    reentry: str = REENTRY_NEVER
    reentry_after_ms: int = 0
    max_runs: int = 1                    # concurrent runs per person
    goal: GoalDef | None = None
    exits: tuple[Matcher, ...] = ()
    purpose: str | None = "marketing"
    caps: tuple[tuple[str, int, int], ...] = ()   # the journey's own, as (key, window ms, max)
    # runs of another version: old step id -> this version's step id ("*": same ids)
    migrate: dict[str, str] = field(default_factory=dict)
    document: str = field(default="", repr=False)  # the text it was read from, kept per version
    catalog_lists: frozenset[str] = field(default=frozenset(), init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_steps", {step.id: step for step in self.steps})
        # the catalog lists its messages read (`cross_sell`, ...): the worker fetches
        # them only for a send of a journey that names one
        templates = [t for step in self.steps for t in step_templates(step)]
        object.__setattr__(self, "catalog_lists", frozenset(
            name for template in templates for name in template.names if name in CATALOG_LISTS))

    def step(self, step_id: str | None) -> Step | None:
        return self._steps.get(step_id)  # type: ignore[attr-defined]

    @property
    def first(self) -> str | None:
        return self.steps[0].id if self.steps else None


def step_templates(step: Step) -> list[Template]:
    """The templates a step renders: a send's fields and link, a webhook's url and body."""
    found: list[Template | None] = [step.url, step.body]
    if step.send is not None:
        found += [*step.send.fields.values(), step.send.link]
    return [template for template in found if template is not None]
