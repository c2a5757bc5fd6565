"""Checks across all documents: unique ids, and what each expression refers to."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .analysis import Findings, Scope, analyse
from .definitions import (EVENT_TYPES, Definitions, Expression, Origin, Template,
                          action_templates)
from .event_names import KNOWN_EVENTS
from .names import ALL_ROOTS
from .problems import Problem
from .suggest import near_miss

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
    _check_track_names(definitions, problems)
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


def _check_track_names(definitions: Definitions, problems: list[Problem]) -> None:
    """A warning for each trigger that is a slip away from a known event: one of Segment's,
    one the edge sends, an event type, or one that other definitions name. (An event of
    the site's own can be meant, hence a warning.)"""
    fixed = KNOWN_EVENTS | frozenset(EVENT_TYPES)
    uses = Counter(name for name, _ in definitions.track_names)
    for name, origin in definitions.track_names:
        if name in fixed:
            continue
        # A name that more definitions use is the likelier spelling: it is not warned
        # about for the rarer one, which is (with equal use, both are).
        used = {other for other, count in uses.items() if count >= uses[name] and other != name}
        match = near_miss(name, [*sorted(fixed), *sorted(used)])  # fixed names first
        if match is not None:
            problems.append(Problem(
                origin.source, origin.line, origin.column,
                f"no event named {name!r} is known; did you mean {match!r}? (known: Segment's "
                "spec, the edge's own events, event types and what other rules and "
                "aggregates name; if the site sends this name, ignore this)", warning=True))


def _check(expression: Expression, scope: Scope, problems: list[Problem]) -> Findings:
    findings = analyse(expression.node, scope)
    for offset, message in findings.problems + findings.settled:
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
