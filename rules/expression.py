"""Single expressions outside a ruleset: for tests, test vectors and tooling.

compile_expression() goes through the same code generator as rules do;
reference_value() uses the independent tree-walking evaluator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .analysis import Scope, analyse
from .codegen import RUNTIME_NAMES, ConstantPool, Emitter, FunctionScope
from .expr_ast import Node
from .lexer import ExpressionSyntaxError
from .localtime import LocalTimeCache
from .names import ALL_ROOTS
from .parser import parse_expression
from .reference import Environment, evaluate


class ExpressionInvalid(ValueError):
    """The expression does not parse or names unknown things; has (offset, message) pairs."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"at {offset}: {message}" for offset, message in problems))


def parse_checked(
    text: str,
    aggregates: Mapping[str, str] | None = None,
    segments: Iterable[str] | None = None,
    roots: frozenset[str] = ALL_ROOTS,
) -> Node:
    """Parse and check an expression as a rule condition would be checked."""
    try:
        node = parse_expression(text)
    except ExpressionSyntaxError as error:
        raise ExpressionInvalid([(error.pos, error.message)]) from None
    known_segments = frozenset(segments) if segments is not None else None
    findings = analyse(
        node, Scope(roots, dict(aggregates or {}), known_segments, "this expression")
    )
    if findings.problems:
        raise ExpressionInvalid(findings.problems)
    return node


class CompiledExpression:
    """An expression compiled to a Python function of (event, profile, context, now, segments)."""

    def __init__(self, text: str, aggregates: Mapping[str, str] | None = None) -> None:
        self.text = text
        self.aggregate_kinds = dict(aggregates or {})
        self.node = parse_checked(text, self.aggregate_kinds)
        pool = ConstantPool()
        scope = FunctionScope([self.node], self.aggregate_kinds, "segs")
        body = f"return {Emitter(pool, scope).value(self.node)}"
        lines = ["def _expression(event, profile, context, now, segs):"]
        lines += ["    " + line for line in scope.prologue + [body]]
        self.source = "\n".join(lines) + "\n"
        namespace: dict[str, object] = {"__builtins__": {}}
        namespace.update(RUNTIME_NAMES)
        namespace.update(pool.values)
        namespace["_local"] = LocalTimeCache().fields
        exec(compile(self.source, "<expression>", "exec"), namespace)  # noqa: S102 - generated source
        self._function = namespace["_expression"]

    def __call__(self, env: Environment) -> object:
        return self._function(env.event, env.profile, env.context, env.now, env.segments)  # type: ignore[operator]


def compile_expression(
    text: str, aggregates: Mapping[str, str] | None = None
) -> CompiledExpression:
    return CompiledExpression(text, aggregates)


def reference_value(text: str, env: Environment) -> object:
    return evaluate(parse_checked(text, env.aggregate_kinds), env)
