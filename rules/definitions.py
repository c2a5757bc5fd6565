"""What the schema reads out of rule documents, before code generation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .expr_ast import Node
from .runtime import DEFAULT_SUMMAND_BOUND
from .yaml_source import Locator

# Event types a trigger can name; "track" with no name means every track event.
EVENT_TYPES = ("page", "screen", "identify", "group", "alias", "track")


@dataclass(frozen=True)
class Trigger:
    """Which events something reacts to: `kind` is "any", an event type, or "track"."""

    kind: str
    track_name: str | None = None

    def label(self) -> str:
        if self.kind == "track" and self.track_name is not None:
            return f"track:{self.track_name}"
        return self.kind


@dataclass(frozen=True)
class Origin:
    """Where a definition starts, for messages such as duplicate ids."""

    source: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}"


@dataclass
class Expression:
    """A parsed expression plus the way back from its offsets to the file."""

    text: str
    node: Node
    locate: Locator
    source: str


@dataclass
class AggregateDef:
    id: str
    kind: str
    triggers: tuple[Trigger, ...]
    window_ms: int
    of: Expression | None
    where: Expression | None
    origin: Origin
    # sum only: the largest value (either sign) one event may add; larger ones are skipped
    max_value: float = DEFAULT_SUMMAND_BOUND


@dataclass
class SegmentDef:
    id: str
    when: Expression
    origin: Origin


@dataclass
class Template:
    """Content text compiled once into a sandboxed jinja2 template (rules.content).

    `aggregates` lists the aggregate ids it reads, so the edge maintains them;
    `names` the top-level variables it reads (catalog data is fetched only when
    a winning template needs it).
    """

    text: str
    compiled: Any  # rules.content.CompiledTemplate
    aggregates: frozenset[tuple[str, int]] = frozenset()  # (aggregate id, offset in text)
    names: frozenset[str] = frozenset()


# JSON content of a json slot: nested dicts/lists whose strings may be templates.
JsonTemplate = dict | list | Template | str | int | float | bool | None


@dataclass
class SlotAction:
    slot: str
    html: Template | None = None
    json: JsonTemplate = None


@dataclass
class MessageAction:
    type: str
    fields: dict[str, Template] = field(default_factory=dict)  # title, body
    cta: dict[str, Template] | None = None  # label, url


@dataclass
class PushAction:
    title: Template
    body: Template | None
    link: Template | None


@dataclass
class NotifyAction:
    """A message that may travel by several channels; the edge picks one per person."""

    channels: tuple[str, ...]
    type: str  # how an in_app choice shows: banner, modal or toast
    fields: dict[str, Template] = field(default_factory=dict)  # title, body
    link: Template | None = None
    cta: dict[str, Template] | None = None


@dataclass
class SetTraitAction:
    values: dict[str, object]


@dataclass
class TagAction:
    tags: tuple[str, ...]


Action = SlotAction | MessageAction | PushAction | NotifyAction | SetTraitAction | TagAction

# Channels a rule's content can reach a person by, and the purposes consent is given for.
CHANNELS = ("web", "in_app", "push", "email", "sms", "whatsapp")
NOTIFY_CHANNELS = ("in_app", "push", "email", "sms", "whatsapp")
PURPOSES = ("personalization", "marketing", "advertising")


@dataclass(frozen=True)
class CapDef:
    """At most `max` deliveries within any `per_ms` window."""

    max: int
    per_ms: int


@dataclass(frozen=True)
class ScheduleDef:
    """When a rule may fire. Days and hours are read in the person's time zone."""

    start_ms: int | None = None  # active from (inclusive), epoch ms: a UTC time was given
    end_ms: int | None = None  # active until (exclusive), epoch ms
    # A date alone is the person's date: "YYYY-MM-DD", both ends inclusive
    start_date: str | None = None
    end_date: str | None = None
    days: frozenset[str] | None = None  # "mon".."sun"; None means every day
    hours: tuple[int, int] | None = None  # minutes of the day [from, until); may wrap midnight
    quiet: tuple[int, int] | None = None  # minutes of the day when nothing is sent


@dataclass(frozen=True)
class ExperimentDef:
    """Weighted variants plus a control group that gets nothing, assigned per person."""

    id: str
    salt: str
    variants: tuple[tuple[str, int], ...]  # (name, weight), control included as "control"
    origin: Origin


@dataclass(frozen=True)
class PolicyDef:
    """Site-wide arbitration settings (the `policy` section; at most one)."""

    max_messages: int = 1
    # "global", a channel name -> caps; "global" counts every channel but web
    caps: tuple[tuple[str, tuple[CapDef, ...]], ...] = ()
    channel_order: tuple[str, ...] = NOTIFY_CHANNELS
    quiet: tuple[int, int] | None = None  # quiet hours for push, email, sms and whatsapp


@dataclass
class RuleDef:
    id: str
    triggers: tuple[Trigger, ...]
    when: Expression | None
    priority: int
    actions: list[Action]
    origin: Origin
    score: Expression | None = None
    group: str | None = None
    caps: tuple[CapDef, ...] = ()
    experiment: str | None = None
    variant: str | None = None
    schedule: ScheduleDef | None = None
    purpose: str = "personalization"


@dataclass
class Definitions:
    """Everything read from all documents.

    Besides the complete definitions, it keeps what could be read of incomplete
    ones, so that one problem does not hide others: their ids still count for
    duplicate checks and references, and their expressions are still checked.
    """

    aggregates: list[AggregateDef] = field(default_factory=list)
    segments: list[SegmentDef] = field(default_factory=list)
    rules: list[RuleDef] = field(default_factory=list)
    experiments: list[ExperimentDef] = field(default_factory=list)
    policies: list[tuple[PolicyDef, Origin]] = field(default_factory=list)
    # experiment ids and (experiment, variant) pairs that rules name, for reference checks
    experiment_uses: list[tuple[str, Origin]] = field(default_factory=list)
    variant_uses: list[tuple[str | None, str, Origin]] = field(default_factory=list)
    # "aggregate" / "segment" / "rule" / "experiment" -> every id read, in order, with where it is
    ids: dict[str, list[tuple[str, Origin]]] = field(
        default_factory=lambda: {"aggregate": [], "segment": [], "rule": [], "experiment": []}
    )
    # every aggregate id whose kind could be read -> kind
    aggregate_kinds: dict[str, str] = field(default_factory=dict)
    # expressions of incomplete definitions, with their place: "filter", "segment" or "rule"
    unbuilt: list[tuple[Expression, str]] = field(default_factory=list)
    # every track event name a trigger names, with where it is
    track_names: list[tuple[str, Origin]] = field(default_factory=list)


def json_templates(content: JsonTemplate) -> list[Template]:
    """All templates inside json slot content."""
    if isinstance(content, Template):
        return [content]
    if isinstance(content, dict):
        return [t for value in content.values() for t in json_templates(value)]
    if isinstance(content, list):
        return [t for value in content for t in json_templates(value)]
    return []


def action_templates(action: Action) -> list[Template]:
    if isinstance(action, SlotAction):
        return [action.html] if action.html is not None else json_templates(action.json)
    if isinstance(action, (MessageAction, NotifyAction)):
        found = list(action.fields.values()) + list((action.cta or {}).values())
        if isinstance(action, NotifyAction) and action.link is not None:
            found.append(action.link)
        return found
    if isinstance(action, PushAction):
        return [t for t in (action.title, action.body, action.link) if t is not None]
    return []
