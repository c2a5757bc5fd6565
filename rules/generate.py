"""Writes the Python module behind a Ruleset: one decide function and one
aggregate-update function per group of events that trigger the same things.

Rules inside a decide function are ordered by priority (highest first), then id,
so the first rule to claim a slot is its winner.  Once a slot may be taken,
later rules that only fill taken slots skip their condition entirely.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .aggregates import AggregateSpec, distinct_key, last_value
from .codegen import RUNTIME_NAMES, ConstantPool, Emitter, FunctionScope
from .decision import Decision
from .definitions import (
    AggregateDef,
    JsonTemplate,
    MessageAction,
    PushAction,
    RuleDef,
    SegmentDef,
    SetTraitAction,
    SlotAction,
    TagAction,
    Template,
)
from .localtime import LocalTimeCache

INDENT = "    "


@dataclass
class _RuleEffects:
    """What earlier rules in the same function may already have produced."""

    slots: set[str] = field(default_factory=set)
    traits: set[str] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)


class ModuleWriter:
    def __init__(
        self,
        aggregate_kinds: Mapping[str, str],
        segments: list[SegmentDef],
        aggregate_specs: Mapping[str, AggregateSpec],
    ) -> None:
        self.aggregate_kinds = aggregate_kinds
        self.segments = segments  # sorted by id
        self.aggregate_specs = aggregate_specs  # the specs aggregate_updates() hands out
        self.pool = ConstantPool()
        self.lines: list[str] = []
        self.function_count = 0

    def _new_function_name(self, prefix: str) -> str:
        self.function_count += 1
        return f"{prefix}_{self.function_count}"

    # -- decide ------------------------------------------------------------
    def add_decide(self, rules: list[RuleDef]) -> str:
        """Writes a decide function for events that trigger `rules`; returns its name."""
        rules = sorted(rules, key=lambda rule: (-rule.priority, rule.id))
        conditions = [segment.when.node for segment in self.segments]
        conditions += [rule.when.node for rule in rules if rule.when is not None]
        scope = FunctionScope(conditions, self.aggregate_kinds, "segs")
        flags = {segment.id: f"_s{index}" for index, segment in enumerate(self.segments)}
        emitter = Emitter(self.pool, scope, flags)

        body: list[str] = []
        for segment in self.segments:
            # Flags are exact booleans so that `"id" in segments` can read them directly.
            body.append(
                f"{flags[segment.id]} = {emitter.boolean(segment.when.node)}"
                f"  # segment {segment.id!r}"
            )
        if self.segments:
            body.append(f"segs = list(_compress(_SEGMENT_IDS, ({', '.join(flags.values())},)))")
        else:
            body.append("segs = []")
        body += ["slots = {}", "messages = []", "push = []", "traits_set = {}", "tags = []"]
        effects = _RuleEffects()
        for rule in rules:
            body.extend(self._rule_block(rule, emitter, effects))
        body.append("return _Decision(slots, messages, push, segs, traits_set, tags)")
        body = scope.prologue + body

        name = self._new_function_name("_decide")
        self.lines.append(f"def {name}(event, profile, context, now):")
        self.lines.extend(INDENT + line for line in body)
        self.lines.append("")
        return name

    def _rule_block(self, rule: RuleDef, emitter: Emitter, effects: _RuleEffects) -> list[str]:
        statements: list[str] = []
        slot_names = [action.slot for action in rule.actions if isinstance(action, SlotAction)]
        only_slots = len(slot_names) == len(rule.actions)
        # A rule that can only fill slots already taken need not be evaluated.
        guard = None
        distinct_slots = list(dict.fromkeys(slot_names))
        if only_slots and all(slot in effects.slots for slot in slot_names):
            guard = " or ".join(f"{slot!r} not in slots" for slot in distinct_slots)
            if len(distinct_slots) == 1:
                # The guard already proved the one slot free; its store needs no second check.
                effects.slots.discard(distinct_slots[0])
        for action in rule.actions:
            statements.extend(self._action(rule.id, action, emitter, effects))

        tests = []
        if guard is not None:
            tests.append(f"({guard})")
        if rule.when is not None:
            tests.append(emitter.condition(rule.when.node))
        header = f"if {' and '.join(tests)}:" if tests else "if True:"
        return [f"# rule {rule.id!r} (priority {rule.priority})", header] + [
            INDENT + line for line in statements
        ]

    def _action(
        self, rule_id: str, action: object, emitter: Emitter, effects: _RuleEffects
    ) -> list[str]:
        if isinstance(action, SlotAction):
            if action.html is not None:
                content = f"{{'rule': {rule_id!r}, 'html': {self._html(action.html, emitter)}}}"
            else:
                content = f"{{'rule': {rule_id!r}, 'json': {self._json(action.json, emitter)}}}"
            slot = action.slot
            store = f"slots[{slot!r}] = {content}"
            taken = slot in effects.slots
            effects.slots.add(slot)
            return [f"if {slot!r} not in slots: {store}" if taken else store]
        if isinstance(action, MessageAction):
            entries = [f"'rule': {rule_id!r}", f"'type': {action.type!r}"]
            entries += [
                f"{key!r}: {self._text(template, emitter)}"
                for key, template in action.fields.items()
            ]
            if action.cta is not None:
                cta = ", ".join(
                    f"{key!r}: {self._text(t, emitter)}" for key, t in action.cta.items()
                )
                entries.append(f"'cta': {{{cta}}}")
            return [f"messages.append({{{', '.join(entries)}}})"]
        if isinstance(action, PushAction):
            link = self._text(action.link, emitter) if action.link is not None else "None"
            title, body = self._text(action.title, emitter), self._text(action.body, emitter)
            return [
                f"push.append({{'rule': {rule_id!r}, 'title': {title}, 'body': {body}, "
                f"'link': {link}}})"
            ]
        if isinstance(action, SetTraitAction):
            statements = []
            for key, value in action.values.items():
                store = f"traits_set[{key!r}] = {self.pool.literal(value)}"
                statements.append(
                    f"if {key!r} not in traits_set: {store}" if key in effects.traits else store
                )
                effects.traits.add(key)
            return statements
        if isinstance(action, TagAction):
            statements = []
            for tag in action.tags:
                store = f"tags.append({tag!r})"
                statements.append(
                    f"if {tag!r} not in tags: {store}" if tag in effects.tags else store
                )
                effects.tags.add(tag)
            return statements
        raise TypeError(f"unknown action {action!r}")

    # -- templates ---------------------------------------------------------
    @staticmethod
    def _concatenate(template: Template, emitter: Emitter, render: str) -> str:
        pieces = [
            repr(part) if isinstance(part, str) else f"{render}({emitter.value(part.node)})"
            for part in template.parts
        ]
        return " + ".join(pieces) if pieces else "''"

    def _html(self, template: Template, emitter: Emitter) -> str:
        return self._concatenate(template, emitter, "_html")

    def _text(self, template: Template, emitter: Emitter) -> str:
        return self._concatenate(template, emitter, "_text")

    def _json(self, content: JsonTemplate, emitter: Emitter) -> str:
        if isinstance(content, Template):
            if len(content.parts) == 1 and not isinstance(content.parts[0], str):
                # A string that is exactly one placeholder becomes the raw value.
                return emitter.value(content.parts[0].node)
            return self._text(content, emitter)
        if isinstance(content, dict):
            items = ", ".join(
                f"{str(key)!r}: {self._json(value, emitter)}" for key, value in content.items()
            )
            return "{" + items + "}"
        if isinstance(content, list):
            return "[" + ", ".join(self._json(item, emitter) for item in content) + "]"
        return self.pool.literal(content)

    # -- aggregate updates -------------------------------------------------
    def add_updates(self, aggregates: list[AggregateDef]) -> str:
        """Writes a function listing what an event adds to `aggregates`; returns its name."""
        aggregates = sorted(aggregates, key=lambda aggregate: aggregate.id)
        expressions = [e.node for a in aggregates for e in (a.where, a.of) if e is not None]
        scope = FunctionScope(expressions, {}, None)
        emitter = Emitter(self.pool, scope)
        body = ["out = []"]
        for aggregate in aggregates:
            spec_name = self._spec_name(aggregate)
            test = (
                emitter.condition(aggregate.where.node) if aggregate.where is not None else "True"
            )
            body.append(f"if {test}:  # aggregate {aggregate.id!r}")
            if aggregate.kind == "count":
                body.append(f"{INDENT}out.append(({spec_name}, 1))")
                continue
            value = emitter.value(aggregate.of.node)  # type: ignore[union-attr]
            if aggregate.kind == "sum":
                body.append(f"{INDENT}_u = {value}")
                body.append(f"{INDENT}if _finite(_u): out.append(({spec_name}, float(_u)))")
            else:
                convert = "_distinct_key" if aggregate.kind == "distinct" else "_last_value"
                body.append(f"{INDENT}_u = {convert}({value})")
                body.append(f"{INDENT}if _u is not None: out.append(({spec_name}, _u))")
        body.append("return out")
        body = scope.prologue + body
        name = self._new_function_name("_updates")
        self.lines.append(f"def {name}(event):")
        self.lines.extend(INDENT + line for line in body)
        self.lines.append("")
        return name

    def _spec_name(self, aggregate: AggregateDef) -> str:
        spec = self.aggregate_specs[aggregate.id]
        return self.pool.add(("aggregate", aggregate.id), spec, "_AG")

    # -- building ----------------------------------------------------------
    def build(self, module_name: str) -> tuple[dict[str, Callable], str]:
        """Compiles the module; returns its namespace and source."""
        source = "\n".join(self.lines) + "\n"
        namespace: dict[str, object] = {"__builtins__": {}}
        namespace.update(RUNTIME_NAMES)
        namespace.update(self.pool.values)
        namespace["_SEGMENT_IDS"] = tuple(segment.id for segment in self.segments)
        namespace["_Decision"] = Decision
        namespace["_local"] = LocalTimeCache().fields
        namespace["_distinct_key"] = distinct_key
        namespace["_last_value"] = last_value
        exec(compile(source, module_name, "exec"), namespace)  # noqa: S102 - source is generated, see codegen
        return namespace, source  # type: ignore[return-value]
