"""Meaning checks on a parsed expression: names, aggregates, segments, functions.

The parser only knows grammar; this module knows what the names refer to in a
given place (a rule condition may use `segments`, a segment condition may not,
an aggregate filter sees only the event).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .explain import unparse
from .expr_ast import (COMPARISON_OPS, Binary, Call, ListLit, Literal, Logical, Member, Name,
                       Node, Unary, walk)
from .names import (
    AGGREGATE_ROOTS,
    ALL_ROOTS,
    CATALOG_LISTS,
    CLOCK_FUNCTIONS,
    FUNCTION_ARITY,
    FUNCTION_KINDS,
    KNOWN_FIELD_KINDS,
    LOCAL_FIELDS,
    ZERO_DEFAULT_KINDS,
)


@dataclass(frozen=True)
class Scope:
    """What an expression in a given place may refer to."""

    roots: frozenset[str]
    aggregates: Mapping[str, str]  # declared aggregate id -> kind
    segments: frozenset[str] | None  # known segment ids; None skips the check
    place: str  # used in messages, e.g. "a segment condition"


@dataclass
class Findings:
    """Problems (offset, message) plus what the expression refers to."""

    problems: list[tuple[int, str]] = field(default_factory=list)
    # Comparisons whose outcome the kinds of their sides settle: valid code (it runs, and
    # the language defines the answer), but a rule file that holds one has a slip in it.
    settled: list[tuple[int, str]] = field(default_factory=list)
    aggregates: set[str] = field(default_factory=set)
    segments: set[str] = field(default_factory=set)
    catalog: set[str] = field(default_factory=set)  # catalog lists named


def analyse(node: Node, scope: Scope) -> Findings:
    findings = Findings()
    # Member nodes whose Name target was checked together with its key.
    handled_names: set[int] = set()
    for current in walk(node):
        if isinstance(current, Member) and isinstance(current.target, Name):
            _check_member_of_name(current, scope, findings)
            handled_names.add(id(current.target))
        elif isinstance(current, Name) and id(current) not in handled_names:
            _check_bare_name(current, scope, findings)
        elif isinstance(current, Call):
            _check_call(current, scope, findings)
        elif isinstance(current, Binary):
            _note_segment_reference(current, scope, findings)
            _check_comparison(current, scope, findings)
    return findings


# -- comparisons that can never hold ----------------------------------------------------------
ORDERINGS = frozenset({"<", "<=", ">", ">="})
# What each kind is called in messages.
KIND_WORDS = {"number": "a number", "text": "text", "bool": "a boolean", "null": "null",
              "list": "a list"}


def static_kind(node: Node, scope: Scope) -> str | None:
    """What a node's value always is, where that is known without running it: "number",
    "text", "bool", "null" or "list"; None when it depends on the data."""
    if isinstance(node, Literal):
        value = node.value
        if value is None:
            return "null"
        if value is True or value is False:
            return "bool"
        return "number" if isinstance(value, (int, float)) else "text"
    if isinstance(node, ListLit):
        return "list"
    if isinstance(node, Name):
        return "number" if node.name == "now" else ("list" if node.name == "segments" else None)
    if isinstance(node, Member) and isinstance(node.target, Name) and isinstance(node.key, Literal):
        root, key = node.target.name, node.key.value
        if root in AGGREGATE_ROOTS:
            return "number" if scope.aggregates.get(key) in ZERO_DEFAULT_KINDS else None  # type: ignore[arg-type]
        return KNOWN_FIELD_KINDS.get((root, key))  # type: ignore[arg-type]
    if isinstance(node, Call):
        return FUNCTION_KINDS.get(node.name)
    if isinstance(node, Unary) and node.op == "not":
        return "bool"
    if isinstance(node, Logical) or (isinstance(node, Binary) and node.op in COMPARISON_OPS):
        return "bool"
    return None


def _check_comparison(binary: Binary, scope: Scope, findings: Findings) -> None:
    """`profile.visits <= "one"`: sides whose kinds can never compare true."""
    if binary.op not in ORDERINGS and binary.op not in ("==", "!="):
        return
    left, right = static_kind(binary.left, scope), static_kind(binary.right, scope)
    if left is None or right is None or left == right:
        return
    if binary.op in ORDERINGS:
        if left == "null" or right == "null":
            return  # reads as "is it missing?" wrongly, but can be meant for optional values
        verdict = "is never true: only two numbers or two texts are ordered"
    elif "null" in (left, right):
        return  # `traits.x == null`: is it missing
    else:
        verdict = ("is never true" if binary.op == "==" else "is always true") + \
            ": values of different kinds are never equal"
    hint = ""
    for side, other in ((binary.left, right), (binary.right, left)):
        if other == "number" and isinstance(side, Literal) and isinstance(side.value, str) \
                and _is_number_text(side.value):
            hint = f"; write {side.value} without quotes"
    findings.settled.append((
        binary.pos,
        f"{unparse(binary.left)} is {KIND_WORDS[left]} and {unparse(binary.right)} is "
        f"{KIND_WORDS[right]}, so `{binary.op}` between them {verdict}{hint}"))


def _is_number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text and text != ""


def _check_root(name: Name, scope: Scope, findings: Findings) -> bool:
    if name.name not in ALL_ROOTS:
        hint = {"True": "true", "False": "false", "None": "null", "nil": "null"}.get(name.name)
        suffix = (
            f" (did you mean {hint}?)"
            if hint
            else f"; expected one of: {', '.join(sorted(ALL_ROOTS))}"
        )
        findings.problems.append((name.pos, f"unknown name {name.name!r}{suffix}"))
        return False
    if name.name not in scope.roots:
        findings.problems.append((name.pos, f"{name.name!r} cannot be used in {scope.place}"))
        return False
    return True


def _check_bare_name(name: Name, scope: Scope, findings: Findings) -> None:
    if not _check_root(name, scope, findings):
        return
    if name.name in AGGREGATE_ROOTS:
        findings.problems.append(
            (
                name.pos,
                f"'{name.name}' must be followed by an aggregate name, e.g. {name.name}.views_7d",
            )
        )
    elif name.name == "local":
        findings.problems.append(
            (name.pos, f"'local' must be followed by one of: {', '.join(LOCAL_FIELDS)}")
        )
    elif name.name == "catalog":
        findings.problems.append(
            (name.pos, f"'catalog' must be followed by one of: {', '.join(CATALOG_LISTS)}")
        )


def _check_member_of_name(member: Member, scope: Scope, findings: Findings) -> None:
    name = member.target
    assert isinstance(name, Name)
    if not _check_root(name, scope, findings):
        return
    key = member.key
    literal_key = key.value if isinstance(key, Literal) and isinstance(key.value, str) else None
    if name.name in AGGREGATE_ROOTS:
        if literal_key is None:
            findings.problems.append(
                (key.pos, "aggregates must be named literally, e.g. aggregates.views_7d")
            )
        elif literal_key not in scope.aggregates:
            findings.problems.append((key.pos, f"unknown aggregate {literal_key!r}"))
        else:
            findings.aggregates.add(literal_key)
    elif name.name == "local" and literal_key not in LOCAL_FIELDS:
        findings.problems.append(
            (key.pos, f"unknown local time field; use one of: {', '.join(LOCAL_FIELDS)}")
        )
    elif name.name == "catalog":
        # Only the lists named are read from Redis, so they must be named literally.
        if literal_key in CATALOG_LISTS:
            findings.catalog.add(literal_key)
        else:
            findings.problems.append(
                (key.pos, f"unknown catalog list; use one of: {', '.join(CATALOG_LISTS)}")
            )


def _check_call(call: Call, scope: Scope, findings: Findings) -> None:
    if call.name not in FUNCTION_ARITY:
        findings.problems.append(
            (
                call.pos,
                f"unknown function {call.name!r}; available: {', '.join(sorted(FUNCTION_ARITY))}",
            )
        )
        return
    least, most = FUNCTION_ARITY[call.name]
    count = len(call.args)
    if count < least or (most is not None and count > most):
        if most is None:
            expected = f"at least {least}"
        elif least == most:
            expected = str(least)
        else:
            expected = f"{least} to {most}"
        plural = "" if expected == "1" else "s"
        findings.problems.append(
            (call.pos, f"{call.name}() takes {expected} argument{plural}, got {count}")
        )
    if call.name in CLOCK_FUNCTIONS and "now" not in scope.roots:
        findings.problems.append((call.pos, f"{call.name}() cannot be used in {scope.place}"))


def _note_segment_reference(binary: Binary, scope: Scope, findings: Findings) -> None:
    """`"vip" in segments` and `segments contains "vip"` name a segment; check it exists."""
    if binary.op in ("in", "not in"):
        literal, collection = binary.left, binary.right
    elif binary.op == "contains":
        literal, collection = binary.right, binary.left
    else:
        return
    if not (isinstance(collection, Name) and collection.name == "segments"):
        return
    if not (isinstance(literal, Literal) and isinstance(literal.value, str)):
        return
    findings.segments.add(literal.value)
    if (
        scope.segments is not None
        and "segments" in scope.roots
        and literal.value not in scope.segments
    ):
        findings.problems.append((literal.pos, f"unknown segment {literal.value!r}"))
