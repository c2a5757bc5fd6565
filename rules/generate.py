"""Writes the Python module behind a Ruleset: one decide function and one
aggregate-update function per group of events that trigger the same things.

Rules inside a decide function are listed by priority (highest first), then id;
which of them the person gets is arbitration's job (rules.arbitration), and
content is rendered only for the winners (rules.content).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .aggregates import AggregateSpec, distinct_key, last_value
from .codegen import RUNTIME_NAMES, ConstantPool, Emitter, FunctionScope
from .decision import Decision
from .definitions import AggregateDef, RuleDef, SegmentDef
from .localtime import LocalTimeCache
from .runtime import score_value

INDENT = "    "


class ModuleWriter:
    def __init__(
        self,
        aggregate_kinds: Mapping[str, str],
        segments: list[SegmentDef],
        aggregate_specs: Mapping[str, AggregateSpec],
        rule_positions: Mapping[str, int],
    ) -> None:
        self.aggregate_kinds = aggregate_kinds
        self.segments = segments  # sorted by id
        self.aggregate_specs = aggregate_specs  # the specs aggregate_updates() hands out
        self.rule_positions = rule_positions  # rule id -> its place in Ruleset.rules
        self.pool = ConstantPool()
        self.lines: list[str] = []
        self.function_count = 0

    def _new_function_name(self, prefix: str) -> str:
        self.function_count += 1
        return f"{prefix}_{self.function_count}"

    # -- decide ------------------------------------------------------------
    def add_decide(self, rules: list[RuleDef]) -> str:
        """Writes a decide function for events that trigger `rules`; returns its name.

        It computes segment membership and lists the rules whose condition holds,
        as (rule position, score) in priority order; rules.arbitration then picks
        what the person actually gets.
        """
        rules = sorted(rules, key=lambda rule: (-rule.priority, rule.id))
        conditions = [segment.when.node for segment in self.segments]
        for rule in rules:
            conditions += [e.node for e in (rule.when, rule.score) if e is not None]
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
        body.append("found = []")
        for group in _priority_groups(rules):
            # Candidates go out in arbitration order: by priority, then score (highest
            # first), then id. Only a group of equal priority holding a scored rule can
            # need sorting; its candidates are gathered apart and sorted (stable: ties
            # keep id order) before they join the rest.
            ordered = len(group) > 1 and any(rule.score is not None for rule in group)
            into = "tied" if ordered else "found"
            if ordered:
                body.append("tied = []")
            for rule in group:
                score = (f"_score({emitter.value(rule.score.node)})" if rule.score is not None
                         else "0.0")
                test = emitter.condition(rule.when.node) if rule.when is not None else "True"
                body.append(f"if {test}:  # rule {rule.id!r} (priority {rule.priority})")
                body.append(f"{INDENT}{into}.append(({self.rule_positions[rule.id]}, {score}))")
            if ordered:
                body.append("if tied:")
                body.append(f"{INDENT}tied.sort(key=_by_score)")
                body.append(f"{INDENT}found += tied")
        body.append("return _Decision(segs, found)")
        body = scope.prologue + body

        name = self._new_function_name("_decide")
        self.lines.append(f"def {name}(event, profile, context, now):")
        self.lines.extend(INDENT + line for line in body)
        self.lines.append("")
        return name

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
                bound = self.pool.literal(aggregate.max_value)
                body.append(f"{INDENT}_u = _summand({value}, {bound})")
                body.append(f"{INDENT}if _u is not None: out.append(({spec_name}, _u))")
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
        namespace["_score"] = score_value
        namespace["_by_score"] = _by_score
        namespace["_local"] = LocalTimeCache().fields
        namespace["_distinct_key"] = distinct_key
        namespace["_last_value"] = last_value
        exec(compile(source, module_name, "exec"), namespace)  # noqa: S102 - source is generated, see codegen
        return namespace, source  # type: ignore[return-value]


def _priority_groups(rules: list[RuleDef]) -> list[list[RuleDef]]:
    """Rules (sorted by priority, then id) in runs of equal priority."""
    groups: list[list[RuleDef]] = []
    for rule in rules:
        if groups and groups[-1][0].priority == rule.priority:
            groups[-1].append(rule)
        else:
            groups.append([rule])
    return groups


def _by_score(candidate: tuple[int, float]) -> float:
    return -candidate[1]  # highest score first
