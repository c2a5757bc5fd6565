"""Syntax tree of the expression language.

Every node records `pos`, the character offset in the expression text where it
starts, so problems can point inside a YAML scalar.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Literal:
    value: object  # int, float, str, bool or None
    pos: int


@dataclass(frozen=True, slots=True)
class ListLit:
    items: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    pos: int


@dataclass(frozen=True, slots=True)
class Member:
    """`target.key` (key is a string Literal) or `target[key]` (any expression)."""

    target: Node
    key: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "not" or "neg"
    operand: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Binary:
    """Arithmetic and comparison operators; `op` is spelled as in the language."""

    op: str
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Logical:
    """`a and b and c` is one node with three items, so long chains stay shallow."""

    op: str  # "and" or "or"
    items: tuple[Node, ...]
    pos: int


Node = Literal | ListLit | Name | Member | Call | Unary | Binary | Logical

COMPARISON_OPS = frozenset(
    {
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "in",
        "not in",
        "contains",
        "starts_with",
        "ends_with",
        "matches",
    }
)
ARITHMETIC_OPS = frozenset({"+", "-", "*", "/", "%"})


def children(node: Node) -> tuple[Node, ...]:
    """Direct sub-expressions, for generic walks."""
    if isinstance(node, ListLit):
        return node.items
    if isinstance(node, Member):
        return (node.target, node.key)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Logical):
        return node.items
    if isinstance(node, Binary):
        return (node.left, node.right)
    return ()


def walk(node: Node):
    """Every node of the tree, parents before children."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))


def shape(node: Node) -> tuple:
    """The tree without positions: equal for expressions that are written the same way."""
    if isinstance(node, Literal):
        # The type is part of the shape: 1, 1.0 and true are different literals.
        return ("lit", type(node.value).__name__, repr(node.value))
    if isinstance(node, Name):
        return ("name", node.name)
    parts: list[object] = [
        type(node).__name__,
        getattr(node, "op", None) or getattr(node, "name", None),
    ]
    parts.extend(shape(child) for child in children(node))
    return tuple(parts)
