"""Recursive-descent parser: expression text -> syntax tree (rules.expr_ast).

Precedence, lowest first: or, and, not, comparisons, + -, * / %, unary -.
Comparisons do not chain: `a < b < c` is an error rather than a surprise.
"""

from __future__ import annotations

import re

from .expr_ast import Binary, Call, ListLit, Literal, Logical, Member, Name, Node, Unary
from .lexer import ExpressionSyntaxError, Token, tokenize

# Generated Python nests a few parentheses per level and Python's own parser gives
# up at 200, so the tree depth is bounded well below that.
MAX_NESTING = 40

_COMPARISON_WORDS = {"in", "contains", "starts_with", "ends_with", "matches"}
_COMPARISON_SYMBOLS = {"==", "!=", "<", "<=", ">", ">="}


def parse_expression(text: str) -> Node:
    """Parse a whole expression; raises ExpressionSyntaxError with an offset."""
    return _Parser(tokenize(text)).parse_all()


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    # -- token helpers -------------------------------------------------
    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def at(self, kind: str, value: object = None) -> bool:
        token = self.current
        return token.kind == kind and (value is None or token.value == value)

    def expect_op(self, op: str, context: str) -> Token:
        if not self.at("op", op):
            raise self.error_here(f"expected '{op}' {context}")
        return self.advance()

    def error_here(self, message: str) -> ExpressionSyntaxError:
        token = self.current
        if token.kind == "end":
            return ExpressionSyntaxError(token.pos, f"{message}, but the expression ended")
        return ExpressionSyntaxError(token.pos, f"{message}, found {token.text!r}")

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ExpressionSyntaxError(
                self.current.pos, f"expression is nested more than {MAX_NESTING} levels deep"
            )

    # -- grammar -------------------------------------------------------
    def parse_all(self) -> Node:
        if self.at("end"):
            raise ExpressionSyntaxError(0, "expression is empty")
        node = self.parse_or()
        if not self.at("end"):
            raise self.error_here("expected an operator or the end of the expression")
        return node

    def parse_or(self) -> Node:
        # and/or chains are n-ary nodes, so a long chain does not make a deep tree.
        self.nested()
        items = [self.parse_and()]
        while self.at("keyword", "or"):
            self.advance()
            items.append(self.parse_and())
        self.depth -= 1
        return items[0] if len(items) == 1 else Logical("or", tuple(items), items[0].pos)

    def parse_and(self) -> Node:
        items = [self.parse_not()]
        while self.at("keyword", "and"):
            self.advance()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else Logical("and", tuple(items), items[0].pos)

    def parse_not(self) -> Node:
        if self.at("keyword", "not"):
            token = self.advance()
            self.nested()
            operand = self.parse_not()
            self.depth -= 1
            return Unary("not", operand, token.pos)
        return self.parse_comparison()

    def comparison_operator(self) -> str | None:
        token = self.current
        if token.kind == "op" and token.value in _COMPARISON_SYMBOLS:
            return token.value  # type: ignore[return-value]
        if token.kind == "keyword" and token.value in _COMPARISON_WORDS:
            return token.value  # type: ignore[return-value]
        if token.kind == "keyword" and token.value == "not":
            following = self.tokens[self.index + 1]
            if following.kind == "keyword" and following.value == "in":
                return "not in"
        return None

    def parse_comparison(self) -> Node:
        left = self.parse_additive()
        op = self.comparison_operator()
        if op is None:
            return left
        self.advance()
        if op == "not in":
            self.advance()
        right = self.parse_additive()
        if op == "matches":
            _check_pattern(right)
        if self.comparison_operator() is not None:
            raise self.error_here("comparisons cannot be chained; combine them with 'and'")
        return Binary(op, left, right, left.pos)

    def parse_additive(self) -> Node:
        # Each link of a left-associative chain is one more level of nesting.
        entry_depth = self.depth
        node = self.parse_multiplicative()
        while self.at("op", "+") or self.at("op", "-"):
            op = self.advance().value
            self.nested()
            node = Binary(op, node, self.parse_multiplicative(), node.pos)  # type: ignore[arg-type]
        self.depth = entry_depth
        return node

    def parse_multiplicative(self) -> Node:
        entry_depth = self.depth
        node = self.parse_unary()
        while self.at("op", "*") or self.at("op", "/") or self.at("op", "%"):
            op = self.advance().value
            self.nested()
            node = Binary(op, node, self.parse_unary(), node.pos)  # type: ignore[arg-type]
        self.depth = entry_depth
        return node

    def parse_unary(self) -> Node:
        if self.at("op", "-"):
            token = self.advance()
            self.nested()
            operand = self.parse_unary()
            self.depth -= 1
            # Fold negative number literals so `-1` is a constant, not a computation.
            if isinstance(operand, Literal) and type(operand.value) in (int, float):
                return Literal(-operand.value, token.pos)  # type: ignore[operator]
            return Unary("neg", operand, token.pos)
        return self.parse_postfix()

    def parse_postfix(self) -> Node:
        entry_depth = self.depth
        node = self.parse_primary()
        while True:
            if self.at("op", ".") or self.at("op", "["):
                self.nested()
            if self.at("op", "."):
                self.advance()
                token = self.current
                if token.kind not in ("name", "keyword"):
                    raise self.error_here("expected a field name after '.'")
                self.advance()
                node = Member(node, Literal(token.value, token.pos), node.pos)
            elif self.at("op", "["):
                self.advance()
                self.nested()
                key = self.parse_or()
                self.depth -= 1
                self.expect_op("]", "to close '['")
                node = Member(node, key, node.pos)
            else:
                self.depth = entry_depth
                return node

    def parse_primary(self) -> Node:
        token = self.current
        if token.kind in ("number", "string"):
            self.advance()
            return Literal(token.value, token.pos)
        if token.kind == "keyword" and token.value in ("true", "false", "null"):
            self.advance()
            return Literal({"true": True, "false": False, "null": None}[token.value], token.pos)  # type: ignore[index]
        if token.kind == "name":
            self.advance()
            if self.at("op", "("):
                return self.parse_call(token)
            return Name(token.value, token.pos)  # type: ignore[arg-type]
        if self.at("op", "("):
            self.advance()
            self.nested()
            node = self.parse_or()
            self.depth -= 1
            self.expect_op(")", "to close '('")
            return node
        if self.at("op", "["):
            return self.parse_list()
        raise self.error_here("expected a value")

    def parse_call(self, name_token: Token) -> Node:
        self.advance()  # "("
        self.nested()
        args: list[Node] = []
        if not self.at("op", ")"):
            args.append(self.parse_or())
            while self.at("op", ","):
                self.advance()
                args.append(self.parse_or())
        self.expect_op(")", "to close the argument list")
        self.depth -= 1
        return Call(name_token.value, tuple(args), name_token.pos)  # type: ignore[arg-type]

    def parse_list(self) -> Node:
        start = self.advance()  # "["
        self.nested()
        items: list[Node] = []
        if not self.at("op", "]"):
            items.append(self.parse_or())
            while self.at("op", ","):
                self.advance()
                if self.at("op", "]"):
                    break  # allow a trailing comma
                items.append(self.parse_or())
        self.expect_op("]", "to close the list")
        self.depth -= 1
        return ListLit(tuple(items), start.pos)


def _check_pattern(node: Node) -> None:
    """`matches` takes a string literal so the regex is compiled once, at load time."""
    if not (isinstance(node, Literal) and isinstance(node.value, str)):
        raise ExpressionSyntaxError(
            node.pos, "the right side of 'matches' must be a string literal"
        )
    try:
        re.compile(node.value)
    except re.error as error:
        raise ExpressionSyntaxError(node.pos, f"invalid regular expression: {error}") from None
