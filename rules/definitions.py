"""What the schema reads out of rule documents, before code generation."""

from __future__ import annotations

from dataclasses import dataclass, field

from .expr_ast import Node
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


@dataclass
class SegmentDef:
    id: str
    when: Expression
    origin: Origin


@dataclass
class Template:
    """Text with {{ expression }} placeholders: literal strings and expressions in order."""

    parts: tuple[str | Expression, ...]

    @property
    def expressions(self) -> list[Expression]:
        return [part for part in self.parts if isinstance(part, Expression)]


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
    body: Template
    link: Template | None


@dataclass
class SetTraitAction:
    values: dict[str, object]


@dataclass
class TagAction:
    tags: tuple[str, ...]


Action = SlotAction | MessageAction | PushAction | SetTraitAction | TagAction


@dataclass
class RuleDef:
    id: str
    triggers: tuple[Trigger, ...]
    when: Expression | None
    priority: int
    actions: list[Action]
    origin: Origin


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
    # "aggregate" / "segment" / "rule" -> every id read, in order, with where it is
    ids: dict[str, list[tuple[str, Origin]]] = field(
        default_factory=lambda: {"aggregate": [], "segment": [], "rule": []}
    )
    # every aggregate id whose kind could be read -> kind
    aggregate_kinds: dict[str, str] = field(default_factory=dict)
    # expressions of incomplete definitions, with their place: "filter", "segment" or "rule"
    unbuilt: list[tuple[Expression, str]] = field(default_factory=list)


def template_json_expressions(content: JsonTemplate) -> list[Expression]:
    """All placeholder expressions inside json slot content."""
    if isinstance(content, Template):
        return content.expressions
    if isinstance(content, dict):
        return [expr for value in content.values() for expr in template_json_expressions(value)]
    if isinstance(content, list):
        return [expr for value in content for expr in template_json_expressions(value)]
    return []


def action_expressions(action: Action) -> list[Expression]:
    if isinstance(action, SlotAction):
        if action.html is not None:
            return action.html.expressions
        return template_json_expressions(action.json)
    if isinstance(action, MessageAction):
        templates = list(action.fields.values()) + list((action.cta or {}).values())
        return [expr for template in templates for expr in template.expressions]
    if isinstance(action, PushAction):
        templates = [action.title, action.body] + ([action.link] if action.link else [])
        return [expr for template in templates for expr in template.expressions]
    return []
