"""Checks across all documents: unique ids, and what each expression refers to."""

from __future__ import annotations

from dataclasses import dataclass, field

from .analysis import Scope, analyse
from .definitions import Definitions, Expression, Origin, action_expressions
from .names import ALL_ROOTS
from .problems import Problem

RULE_ROOTS = ALL_ROOTS
SEGMENT_ROOTS = ALL_ROOTS - {"segments"}
AGGREGATE_FILTER_ROOTS = frozenset({"event"})


@dataclass
class References:
    """Aggregates used by segments and rules (the ones the edge must maintain)."""

    aggregates: set[str] = field(default_factory=set)


def check_definitions(definitions: Definitions, problems: list[Problem]) -> References:
    for what, ids in definitions.ids.items():
        _report_duplicates(what, ids, problems)

    # Ids of incomplete definitions count too, so one problem does not cause more.
    aggregate_kinds = definitions.aggregate_kinds
    segment_ids = frozenset(identifier for identifier, _ in definitions.ids["segment"])
    scopes = {
        "filter": Scope(
            AGGREGATE_FILTER_ROOTS, {}, None, "an aggregate's where or of (only event is available)"
        ),
        "segment": Scope(SEGMENT_ROOTS, aggregate_kinds, None, "a segment condition"),
        "rule": Scope(RULE_ROOTS, aggregate_kinds, segment_ids, "a rule"),
    }

    references = References()
    for aggregate in definitions.aggregates:
        for expression in (aggregate.where, aggregate.of):
            if expression is not None:
                _check(expression, scopes["filter"], problems)
    for segment in definitions.segments:
        references.aggregates |= _check(segment.when, scopes["segment"], problems)
    for rule in definitions.rules:
        expressions = [rule.when] if rule.when is not None else []
        for action in rule.actions:
            expressions.extend(action_expressions(action))
        for expression in expressions:
            references.aggregates |= _check(expression, scopes["rule"], problems)
    for expression, place in definitions.unbuilt:
        _check(expression, scopes[place], problems)
    return references


def _check(expression: Expression, scope: Scope, problems: list[Problem]) -> set[str]:
    findings = analyse(expression.node, scope)
    for offset, message in findings.problems:
        line, column = expression.locate(offset)
        problems.append(Problem(expression.source, line, column, message))
    return findings.aggregates


def _report_duplicates(what: str, ids: list[tuple[str, Origin]], problems: list[Problem]) -> None:
    first_seen: dict[str, Origin] = {}
    for identifier, origin in ids:
        if identifier in first_seen:
            problems.append(
                Problem(
                    origin.source,
                    origin.line,
                    origin.column,
                    f"duplicate {what} id {identifier!r} "
                    f"(first defined at {first_seen[identifier]})",
                )
            )
        else:
            first_seen[identifier] = origin
