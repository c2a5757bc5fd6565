"""Checks across all documents: unique ids, and what each expression refers to."""

from __future__ import annotations

from dataclasses import dataclass, field

from .analysis import Findings, Scope, analyse
from .definitions import Definitions, Expression, Origin, Template, action_templates
from .names import ALL_ROOTS
from .problems import Problem

RULE_ROOTS = ALL_ROOTS
SEGMENT_ROOTS = ALL_ROOTS - {"segments"}
AGGREGATE_FILTER_ROOTS = frozenset({"event"})


@dataclass
class References:
    """Aggregates used by segments and rules (the ones the edge must maintain)."""

    aggregates: set[str] = field(default_factory=set)
    catalog: set[str] = field(default_factory=set)  # catalog lists the conditions read


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
        _note(references, _check(segment.when, scopes["segment"], problems))
    for rule in definitions.rules:
        for expression in (rule.when, rule.score):
            if expression is not None:
                _note(references, _check(expression, scopes["rule"], problems))
        for action in rule.actions:
            for template in action_templates(action):
                references.aggregates |= _check_template(template, rule.origin, aggregate_kinds,
                                                         problems)
    for expression, place in definitions.unbuilt:
        _check(expression, scopes[place], problems)
    _check_experiments(definitions, problems)
    if len(definitions.policies) > 1:
        origin = definitions.policies[1][1]
        problems.append(Problem(origin.source, origin.line, origin.column,
                                f"only one policy section is allowed (first at "
                                f"{definitions.policies[0][1]})"))
    return references


def _check_template(template: Template, origin: Origin, aggregate_kinds: dict[str, str],
                    problems: list[Problem]) -> set[str]:
    """Aggregates a template reads must exist; they are then maintained like any other."""
    found = set()
    for aggregate_id, _offset in sorted(template.aggregates):
        if aggregate_id in aggregate_kinds:
            found.add(aggregate_id)
        else:
            problems.append(Problem(origin.source, origin.line, origin.column,
                                    f"unknown aggregate {aggregate_id!r} in a template"))
    return found


def _check_experiments(definitions: Definitions, problems: list[Problem]) -> None:
    variants = {e.id: {name for name, _ in e.variants} for e in definitions.experiments}
    declared = {identifier for identifier, _ in definitions.ids["experiment"]}
    for experiment_id, origin in definitions.experiment_uses:
        if experiment_id not in declared:
            problems.append(Problem(origin.source, origin.line, origin.column,
                                    f"unknown experiment {experiment_id!r}"))
    for experiment_id, variant, origin in definitions.variant_uses:
        names = variants.get(experiment_id or "")
        if names is not None and (variant not in names or variant == "control"):
            choices = ", ".join(sorted(names - {"control"})) or "none"
            problems.append(Problem(origin.source, origin.line, origin.column,
                                    f"unknown variant {variant!r} of experiment "
                                    f"{experiment_id!r}; expected one of: {choices}"))


def _check(expression: Expression, scope: Scope, problems: list[Problem]) -> Findings:
    findings = analyse(expression.node, scope)
    for offset, message in findings.problems:
        line, column = expression.locate(offset)
        problems.append(Problem(expression.source, line, column, message))
    return findings


def _note(references: References, findings: Findings) -> None:
    references.aggregates |= findings.aggregates
    references.catalog |= findings.catalog


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
