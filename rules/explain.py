"""Why a person got what they got: every condition with its value, for /v1/explain.

Pure, like the rest of rules/. Conditions are re-evaluated with the reference
evaluator (rules.reference), which is written independently of the compiled
code, so an explanation is also a second opinion: tests check that both agree
on which rules match.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .definitions import Expression, SegmentDef
from .dispatch import triggered_by
from .expr_ast import (
    COMPARISON_OPS,
    Binary,
    Call,
    ListLit,
    Literal,
    Logical,
    Member,
    Name,
    Node,
    Unary,
    children,
)
from .lexer import ExpressionSyntaxError, tokenize
from .outcomes import Outcome
from .reference import Environment, evaluate, truthy
from .aggregates import distinct_key, last_value
from .runtime import score_value, summand_problem

_LOWEST_INT, _HIGHEST_INT = -(2**63), 2**63 - 1
_OPENERS, _CLOSERS = frozenset("(["), frozenset(")]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # what the lexer reads as a name

# A matching rule missing from the trace would mean the compiled code disagrees.
_NOT_CONSIDERED = "not considered by arbitration"


# -- conditions ------------------------------------------------------------------------------
def explain_condition(expression: Expression | None, env: Environment) -> dict[str, Any]:
    """{"text", "value", "children"}: the expression, its value, and the same for each
    operand of and / or / not and of comparisons (literals left out: their text is their
    value). No expression (a rule without `when`) always holds."""
    if expression is None:
        return {"text": None, "value": True, "children": []}
    return _explain(expression.node, env, _Source(expression.text))


def _explain(node: Node, env: Environment, source: _Source) -> dict[str, Any]:
    if isinstance(node, Logical) or (isinstance(node, Unary) and node.op == "not"):
        parts = children(node)
    elif isinstance(node, Binary) and node.op in COMPARISON_OPS:
        parts = tuple(side for side in (node.left, node.right) if not isinstance(side, Literal))
    else:
        parts = ()
    return {"text": source.text(node), "value": json_safe(evaluate(node, env)),
            "children": [_explain(part, env, source) for part in parts]}


class _Source:
    """The source text of any node. Nodes record only where they start, so the end is
    found from the tokens: the last token of the subtree, widened until brackets balance
    (which also brings back the parentheses the parser dropped)."""

    def __init__(self, text: str) -> None:
        self.source = text
        try:
            self.tokens = tokenize(text)[:-1]  # the "end" token has no text
        except ExpressionSyntaxError:
            self.tokens = []
        self.at = {token.pos: index for index, token in enumerate(self.tokens)}
        self.partner: dict[int, int] = {}
        open_at: list[int] = []
        for index, token in enumerate(self.tokens):
            if token.kind == "op" and token.value in _OPENERS:
                open_at.append(index)
            elif token.kind == "op" and token.value in _CLOSERS and open_at:
                start = open_at.pop()
                self.partner[start], self.partner[index] = index, start

    def text(self, node: Node) -> str:
        try:
            first, last = self._balanced(*self._span(node))
        except (KeyError, IndexError):
            return unparse(node)  # a text that does not match its tree: still readable
        end = self.tokens[last]
        return self.source[self.tokens[first].pos : end.pos + len(end.text)]

    def _span(self, node: Node) -> tuple[int, int]:
        first = self.at[node.pos]
        if isinstance(node, Literal):
            last = first
            while self.tokens[last].kind == "op":  # `-1` is folded into one literal
                last += 1
            return first, last
        if isinstance(node, Call):
            return first, self.partner[first + 1]
        if isinstance(node, ListLit):
            return first, self.partner[first]
        last = first
        for child in children(node):
            child_first, child_last = self._span(child)
            first, last = min(first, child_first), max(last, child_last)
        return first, last

    def _balanced(self, first: int, last: int) -> tuple[int, int]:
        while True:
            pending: list[int] = []
            for index in range(first, last + 1):
                token = self.tokens[index]
                if token.kind == "op" and token.value in _OPENERS:
                    pending.append(index)
                elif token.kind == "op" and token.value in _CLOSERS:
                    if not pending:
                        first = self.partner[index]
                        break
                    pending.pop()
            else:
                if not pending:
                    return first, last
                last = max(self.partner[index] for index in pending)


def unparse(node: Node) -> str:
    """Readable text for a tree, with parentheses around every compound operand."""
    def operand(child: Node) -> str:
        text = unparse(child)
        return f"({text})" if isinstance(child, (Binary, Logical, Unary)) or text[0] == "-" \
            else text

    if isinstance(node, Literal):
        if isinstance(node.value, str):
            return _quoted(node.value)
        return json.dumps(node.value) if node.value is None or isinstance(node.value, bool) \
            else repr(node.value)
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Member):
        key = node.key
        if isinstance(key, Literal) and isinstance(key.value, str) and _NAME.fullmatch(key.value):
            return f"{operand(node.target)}.{key.value}"
        return f"{operand(node.target)}[{unparse(key)}]"
    if isinstance(node, Call):
        return f"{node.name}({', '.join(unparse(arg) for arg in node.args)})"
    if isinstance(node, ListLit):
        return f"[{', '.join(unparse(item) for item in node.items)}]"
    if isinstance(node, Unary):
        return f"not {operand(node.operand)}" if node.op == "not" else f"-{operand(node.operand)}"
    if isinstance(node, Logical):
        return f" {node.op} ".join(operand(item) for item in node.items)
    return f"{operand(node.left)} {node.op} {operand(node.right)}"


def _quoted(text: str) -> str:
    """A string literal in the language's own escapes (it has no surrogate pairs)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 else c for c in escaped) + '"'


def json_safe(value: object) -> object:
    """Values as JSON can carry them: text for infinities and for integers beyond 64 bits."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if _LOWEST_INT <= value <= _HIGHEST_INT else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return str(value)


# -- segments and rules ----------------------------------------------------------------------
def aggregate_kinds(ruleset: Any) -> dict[str, str]:
    """Kinds of the aggregates conditions read (the ruleset keeps exactly those)."""
    return {spec.id: spec.kind for spec in ruleset.aggregates}


def explain_segments(segments: Sequence[SegmentDef], event: dict, profile: dict, context: dict,
                     now: int, kinds: Mapping[str, str]) -> list[dict[str, Any]]:
    """Each segment: member after this event, member before it, and its condition."""
    # Segment conditions may not read `segments`, so they see none (as decide() does).
    env = Environment(event, profile, context, now, [], kinds)
    before = profile.get("segments") or []
    found = []
    for segment in segments:
        condition = explain_condition(segment.when, env)
        found.append({"id": segment.id, "member": truthy(evaluate(segment.when.node, env)),
                      "was_member": segment.id in before, "condition": condition})
    return found


def explain_rules(ruleset: Any, event: dict, profile: dict, context: dict, now: int,
                  selection_trace: Mapping[str, Outcome],
                  segments: list[str]) -> list[dict[str, Any]]:
    """Every rule this event triggers, in arbitration order, with its condition and outcome.

    `segments` are the person's segments after the event (what rule conditions see);
    `selection_trace` is rules.arbitration.Selection.trace for the same inputs.
    """
    env = Environment(event, profile, context, now, list(segments), aggregate_kinds(ruleset))
    kind, name = _dispatch_key(event)
    rows = []
    for plan in ruleset.plans:
        rule = plan.rule
        if not any(triggered_by(trigger, kind, name) for trigger in rule.triggers):
            continue
        matched = rule.when is None or truthy(evaluate(rule.when.node, env))
        score = score_value(evaluate(rule.score.node, env)) if rule.score is not None else 0.0
        if not matched:
            outcome, removed_by = "condition is false", "condition"
        else:
            found = selection_trace.get(rule.id)
            if found is None:
                outcome, removed_by = _NOT_CONSIDERED, "other"
            else:
                outcome, removed_by = found.text(), found.removed_by
        rows.append({
            "id": rule.id, "priority": rule.priority, "score": score,
            "score_text": rule.score.text if rule.score is not None else None,
            "group": rule.group, "purpose": rule.purpose, "experiment": rule.experiment,
            "variant": rule.variant, "condition": explain_condition(rule.when, env),
            "matched": matched, "outcome": outcome, "removed_by": removed_by,
        })
    # Arbitration order (a rule without a score scores 0).
    rows.sort(key=lambda row: (-row["priority"], -row["score"], row["id"]))
    return rows


def explain_aggregate_updates(ruleset: Any, event: dict) -> list[dict[str, Any]]:
    """Each aggregate this event triggers: what it adds ("added"), or why it adds
    nothing ("skipped"). What is added is the compiled code's answer, as ingest counts
    it; the reasons come from the reference evaluator."""
    added = {spec.id: value for spec, value in ruleset.aggregate_updates(event)}
    env = Environment(event, {}, {}, 0, [], {})  # `where` and `of` read only the event
    kind, name = _dispatch_key(event)
    rows = []
    for aggregate in ruleset.aggregate_definitions:
        if not any(triggered_by(trigger, kind, name) for trigger in aggregate.triggers):
            continue
        row: dict[str, Any] = {"id": aggregate.id, "kind": aggregate.kind}
        if aggregate.id in added:
            row["added"] = added[aggregate.id]
        else:
            row["skipped"] = _skip_reason(aggregate, env)
        rows.append(row)
    return rows


def _skip_reason(aggregate: Any, env: Environment) -> str:
    if aggregate.where is not None and not truthy(evaluate(aggregate.where.node, env)):
        return f"where is false: {aggregate.where.text}"
    value = evaluate(aggregate.of.node, env) if aggregate.of is not None else None
    where = aggregate.of.text if aggregate.of is not None else "the event"
    if aggregate.kind == "sum":
        problem = summand_problem(value, aggregate.max_value)
    elif value is None:
        problem = "the event has no value there"
    elif (distinct_key if aggregate.kind == "distinct" else last_value)(value) is None:
        problem = "not a value this aggregate keeps"
    else:
        problem = None
    if problem is None:  # the reference evaluator would have counted it
        return "skipped by the compiled rules; please report"
    return f"{where}: {problem}"


def not_triggered(ruleset: Any, event: dict) -> list[str]:
    """Ids of the rules this event does not trigger (they wait for other events)."""
    kind, name = _dispatch_key(event)
    return [plan.id for plan in ruleset.plans
            if not any(triggered_by(trigger, kind, name) for trigger in plan.rule.triggers)]


def _dispatch_key(event: dict) -> tuple[str | None, str | None]:
    """(type, track name) as Ruleset.decide dispatches: anything odd triggers only `any`."""
    kind = event.get("type")
    if not isinstance(kind, str):
        return None, None
    name = event.get("event") if kind == "track" else None
    return kind, name if isinstance(name, str) else None


def cap_usage(ruleset: Any, deliveries: Mapping[str, Sequence[int]], now: int,
              rule_ids: Iterable[str]) -> list[dict[str, Any]]:
    """Each cap of the given rules and of the policy: deliveries counted in its window."""
    wanted = set(rule_ids)
    caps = [cap for plan in ruleset.plans if plan.id in wanted for cap in plan.caps]
    for channel_caps in ruleset.arbiter.checks.channel_caps.values():
        caps += [cap for cap in channel_caps if cap not in caps]  # "global" is on every channel
    return [{"key": key, "max": most, "per_ms": per_ms,
             "used": sum(1 for t in deliveries.get(key, ()) if t > now - per_ms)}
            for key, per_ms, most in caps]
