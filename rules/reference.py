"""Reference evaluator: walks the syntax tree directly.

It is written independently of the code generator (rules.codegen and
rules.runtime) and favours obviousness over speed; tests check that both agree.
It assumes the expression already passed rules.analysis.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .expr_ast import Binary, Call, ListLit, Literal, Logical, Member, Name, Node, Unary
from .localtime import local_fields, zone_named
from .names import LOCAL_FIELDS, ZERO_DEFAULT_KINDS

_LOWEST_INT = -(2**63)
_HIGHEST_INT = 2**63 - 1


@dataclass
class Environment:
    event: object = None
    profile: object = None
    context: object = None
    now: object = 0
    segments: list = field(default_factory=list)
    aggregate_kinds: Mapping[str, str] = field(default_factory=dict)


def evaluate(node: Node, env: Environment) -> object:
    return _Evaluator(env).eval(node)


def truthy(value: object) -> bool:
    """null, false, 0, "", [] and {} are false; everything else is true."""
    if value is None or value is False:
        return False
    if _kind(value) == "number":
        return value != 0
    if _kind(value) in ("string", "list", "object"):
        return len(value) > 0  # type: ignore[arg-type]
    return True


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "other"


def _within_int_range(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < _LOWEST_INT or value > _HIGHEST_INT:
            return None
    return value


def same(a: object, b: object) -> bool:
    """Language equality: numbers by value, booleans only equal booleans, deep for lists/objects."""
    kind_a, kind_b = _kind(a), _kind(b)
    if kind_a != kind_b:
        return False
    if kind_a == "list":
        if len(a) != len(b):  # type: ignore[arg-type]
            return False
        for index in range(len(a)):  # type: ignore[arg-type]
            if not same(a[index], b[index]):  # type: ignore[index]
                return False
        return True
    if kind_a == "object":
        if set(a) != set(b):  # type: ignore[call-overload]
            return False
        for key in a:  # type: ignore[attr-defined]
            if not same(a[key], b[key]):  # type: ignore[index]
                return False
        return True
    return a == b


class _Evaluator:
    def __init__(self, env: Environment) -> None:
        self.env = env

    def eval(self, node: Node) -> object:
        method = getattr(self, "eval_" + type(node).__name__)
        return method(node)

    # -- values ------------------------------------------------------------
    def eval_Literal(self, node: Literal) -> object:
        return node.value

    def eval_ListLit(self, node: ListLit) -> object:
        return [self.eval(item) for item in node.items]

    def eval_Name(self, node: Name) -> object:
        env = self.env
        if node.name == "event":
            return env.event
        if node.name == "profile":
            return env.profile
        if node.name in ("context", "ctx"):
            return env.context
        if node.name == "traits":
            return self.index(env.profile, "traits")
        if node.name == "cart":
            return self.index(env.profile, "cart")
        if node.name == "catalog":
            return self.index(env.profile, "catalog")
        if node.name == "location":
            return self.index(env.profile, "location")
        if node.name == "segments":
            return env.segments
        if node.name == "now":
            return env.now
        raise AssertionError(f"name {node.name} should have been rejected by analysis")

    def eval_Member(self, node: Member) -> object:
        target = node.target
        if isinstance(target, Name) and target.name in ("aggregates", "agg"):
            return self.aggregate(node.key.value)  # type: ignore[union-attr]
        if isinstance(target, Name) and target.name == "local":
            tz_name = self.index(self.env.context, "timezone")
            fields = local_fields(self.env.now, zone_named(tz_name))
            return fields[LOCAL_FIELDS.index(node.key.value)]  # type: ignore[union-attr,arg-type]
        return self.index(self.eval(target), self.eval(node.key))

    def aggregate(self, aggregate_id: str) -> object:
        stored = self.index(self.index(self.env.profile, "aggregates"), aggregate_id)
        if stored is None and self.env.aggregate_kinds.get(aggregate_id) in ZERO_DEFAULT_KINDS:
            return 0
        return stored

    @staticmethod
    def index(container: object, key: object) -> object:
        if _kind(container) == "object" and _kind(key) == "string":
            return container.get(key)  # type: ignore[union-attr]
        if _kind(container) == "list" and _kind(key) == "number" and isinstance(key, int):
            size = len(container)  # type: ignore[arg-type]
            position = key + size if key < 0 else key
            if 0 <= position < size:
                return container[position]  # type: ignore[index]
        return None

    # -- operators ---------------------------------------------------------
    def eval_Logical(self, node: Logical) -> object:
        if node.op == "and":
            for item in node.items:
                if not truthy(self.eval(item)):
                    return False
            return True
        for item in node.items:
            if truthy(self.eval(item)):
                return True
        return False

    def eval_Unary(self, node: Unary) -> object:
        value = self.eval(node.operand)
        if node.op == "not":
            return not truthy(value)
        if _kind(value) == "number":
            return _within_int_range(-value)  # type: ignore[operator]
        return None

    def eval_Binary(self, node: Binary) -> object:
        left = self.eval(node.left)
        right = self.eval(node.right)
        op = node.op
        if op == "==":
            return same(left, right)
        if op == "!=":
            return not same(left, right)
        if op in ("<", "<=", ">", ">="):
            return self.order(op, left, right)
        if op == "in":
            return self.within(left, right)
        if op == "not in":
            return not self.within(left, right)
        if op == "contains":
            return self.within(right, left)
        if op in ("starts_with", "ends_with"):
            if _kind(left) != "string" or _kind(right) != "string":
                return False
            return left.startswith(right) if op == "starts_with" else left.endswith(right)  # type: ignore[union-attr]
        if op == "matches":
            return _kind(left) == "string" and re.search(right, left) is not None  # type: ignore[arg-type]
        return self.arithmetic(op, left, right)

    @staticmethod
    def order(op: str, left: object, right: object) -> bool:
        kinds = (_kind(left), _kind(right))
        if kinds not in (("number", "number"), ("string", "string")):
            return False
        if op == "<":
            return left < right  # type: ignore[operator]
        if op == "<=":
            return left <= right  # type: ignore[operator]
        if op == ">":
            return left > right  # type: ignore[operator]
        return left >= right  # type: ignore[operator]

    @staticmethod
    def within(item: object, collection: object) -> bool:
        kind = _kind(collection)
        if kind == "list":
            return any(same(item, element) for element in collection)  # type: ignore[union-attr]
        if kind == "string":
            return _kind(item) == "string" and collection.find(item) >= 0  # type: ignore[union-attr]
        if kind == "object":
            return _kind(item) == "string" and item in collection  # type: ignore[operator]
        return False

    @staticmethod
    def arithmetic(op: str, left: object, right: object) -> object:
        if _kind(left) != "number" or _kind(right) != "number":
            return None
        if op in ("/", "%") and right == 0:
            return None
        try:
            if op == "+":
                result = left + right  # type: ignore[operator]
            elif op == "-":
                result = left - right  # type: ignore[operator]
            elif op == "*":
                result = left * right  # type: ignore[operator]
            elif op == "/":
                result = left / right  # type: ignore[operator]
            else:
                result = left % right  # type: ignore[operator]
        except (OverflowError, ValueError):
            return None
        return _within_int_range(result)

    # -- functions ---------------------------------------------------------
    def eval_Call(self, node: Call) -> object:
        if node.name == "coalesce":
            for arg in node.args:
                value = self.eval(arg)
                if value is not None:
                    return value
            return None
        args = [self.eval(arg) for arg in node.args]
        first = args[0]
        name = node.name
        if name == "exists":
            return first is not None
        if name in ("lower", "upper"):
            if _kind(first) != "string":
                return None
            return first.lower() if name == "lower" else first.upper()  # type: ignore[union-attr]
        if name == "len":
            return len(first) if _kind(first) in ("string", "list", "object") else None  # type: ignore[arg-type]
        if name == "abs":
            return _within_int_range(abs(first)) if _kind(first) == "number" else None  # type: ignore[arg-type]
        if name in ("min", "max"):
            return self.extreme(name, args)
        if name == "round":
            return self.rounded(args)
        if name in ("days_since", "hours_since"):
            unit = 86_400_000 if name == "days_since" else 3_600_000
            if _kind(first) != "number" or _kind(self.env.now) != "number":
                return None
            try:
                return (self.env.now - first) / unit  # type: ignore[operator]
            except OverflowError:
                return None
        if name == "distance":
            return self.great_circle(*args)
        if name == "near":
            return self.near(*args)
        raise AssertionError(f"function {name} should have been rejected by analysis")

    @staticmethod
    def great_circle(lat1: object, lon1: object, lat2: object, lon2: object) -> object:
        """Haversine on a sphere of 6,371,008.8 m, as docs/rules-language.md states it."""
        def within(value: object, limit: float) -> bool:
            return _kind(value) == "number" and -limit <= value <= limit  # type: ignore[operator]

        if not (within(lat1, 90) and within(lat2, 90) and within(lon1, 180)
                and within(lon2, 180)):
            return None
        phi1, phi2 = math.radians(lat1), math.radians(lat2)  # type: ignore[arg-type]
        a = (math.sin((phi2 - phi1) / 2) ** 2
             + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)  # type: ignore[operator]
        return 2 * 6_371_008.8 * math.asin(math.sqrt(min(1.0, a)))

    def near(self, shop: object, within: object = 15 * 60_000) -> bool:
        """The location names that shop ("any": some shop) and is at most `within` old."""
        location = self.index(self.env.profile, "location")
        found = self.index(location, "shop")
        if _kind(shop) != "string" or _kind(found) != "string":
            return False
        if shop != "any" and shop != found:
            return False
        at, now = self.index(location, "at"), self.env.now
        if {_kind(at), _kind(now), _kind(within)} != {"number"}:
            return False
        try:
            return now - at <= within  # type: ignore[operator]
        except OverflowError:
            return False

    @staticmethod
    def extreme(name: str, args: list) -> object:
        candidates = args[0] if len(args) == 1 and _kind(args[0]) == "list" else args
        candidates = [value for value in candidates if value is not None]
        if not candidates:
            return None
        kinds = {_kind(value) for value in candidates}
        if kinds != {"number"} and kinds != {"string"}:
            return None
        # The first of equal extremes wins, e.g. max(1, 1.0) is 1.
        best = candidates[0]
        for value in candidates[1:]:
            if (value < best) if name == "min" else (value > best):
                best = value
        return best

    @staticmethod
    def rounded(args: list) -> object:
        value = args[0]
        digits = args[1] if len(args) > 1 else None
        if _kind(value) != "number":
            return None
        if digits is not None and not (isinstance(digits, int) and not isinstance(digits, bool)):
            return None
        if digits is not None:
            # Beyond 400 digits either way no 64-bit int or float changes, and Python's
            # round would build 10**digits.
            digits = max(-400, min(400, digits))
        try:
            result = round(value, digits) if digits is not None else round(value)  # type: ignore[arg-type]
        except (OverflowError, ValueError):
            return None
        return _within_int_range(result)
