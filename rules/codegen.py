"""Expression -> Python source, for code that is compiled once and run per event.

Generated code runs with no builtins; it sees only the helpers in RUNTIME_NAMES
and constants registered in a ConstantPool.  User text reaches the source only
as repr()'d literals: names in the language become dictionary keys, never
Python identifiers.

Paths such as traits.plan become chained dict lookups.  A path used more than
once in a generated function is looked up once, at the top of the function
(see FunctionScope), since one event runs many conditions over the same data.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from itertools import compress

from . import runtime
from .expr_ast import (
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
    shape,
    walk,
)
from .names import AGGREGATE_ROOTS, LOCAL_FIELDS, ROOT_PATHS, ZERO_DEFAULT_KINDS

# Helpers visible to generated code, by the name it uses for them.
RUNTIME_NAMES: dict[str, object] = {
    "_eq": runtime.safe_equal,
    "_ne": runtime.not_equal,
    "_lt": runtime.less,
    "_le": runtime.less_equal,
    "_gt": runtime.greater,
    "_ge": runtime.greater_equal,
    "_in": runtime.member,
    "_nin": runtime.not_member,
    "_contains": runtime.contains,
    "_starts": runtime.starts_with,
    "_ends": runtime.ends_with,
    "_item": runtime.item_of,
    "_add": runtime.add,
    "_sub": runtime.subtract,
    "_mul": runtime.multiply,
    "_div": runtime.divide,
    "_mod": runtime.modulo,
    "_neg": runtime.negate,
    "_lower": runtime.fn_lower,
    "_upper": runtime.fn_upper,
    "_len": runtime.fn_len,
    "_abs": runtime.fn_abs,
    "_min": runtime.fn_min,
    "_max": runtime.fn_max,
    "_round": runtime.fn_round,
    "_days_since": runtime.fn_days_since,
    "_hours_since": runtime.fn_hours_since,
    "_distance": runtime.fn_distance,
    "_near": runtime.fn_near,
    "_summand": runtime.summand,
    "_compress": compress,
    "_NAN": math.nan,  # stands in for "not a number": every ordering with it is false
    "_E": {},  # shared empty dict standing in for "not a dict"; never written to
    "_CONTAINERS": frozenset({str, list, dict}),
    "dict": dict,
    "list": list,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
}

_COMPARE_HELPERS = {"<": "_lt", "<=": "_le", ">": "_gt", ">=": "_ge"}
_ARITHMETIC_HELPERS = {"+": "_add", "-": "_sub", "*": "_mul", "/": "_div", "%": "_mod"}
_SIMPLE_FUNCTIONS = {
    "lower": "_lower",
    "upper": "_upper",
    "len": "_len",
    "abs": "_abs",
    "min": "_min",
    "max": "_max",
    "round": "_round",
    "distance": "_distance",
}

# Canonical path keys: ("event", ...), ("profile", ...), ("context", ...) are
# dictionary walks; ("@agg", id) and ("@local", field) are special.
Path = tuple


class ConstantPool:
    """Module-level constants of generated code (regexes, sets, odd floats)."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}
        self._names: dict[tuple, str] = {}

    def add(self, key: tuple, value: object, prefix: str = "_K") -> str:
        name = self._names.get(key)
        if name is None:
            name = f"{prefix}{len(self._names)}"
            self._names[key] = name
            self.values[name] = value
        return name

    def regex(self, pattern: str) -> str:
        return self.add(("regex", pattern), re.compile(pattern), "_R")

    def literal(self, value: object) -> str:
        """Python source for a JSON value, building fresh lists/dicts on each run."""
        if value is None or value is True or value is False:
            return repr(value)
        if value.__class__ is str or value.__class__ is int:
            return repr(value)
        if value.__class__ is float:
            if math.isfinite(value):  # type: ignore[arg-type]
                return repr(value)
            return self.add(("float", repr(value)), value)
        if isinstance(value, list):
            return "[" + ", ".join(self.literal(item) for item in value) + "]"
        if isinstance(value, dict):
            return (
                "{"
                + ", ".join(f"{str(key)!r}: {self.literal(item)}" for key, item in value.items())
                + "}"
            )
        raise TypeError(f"not a JSON value: {value!r}")


def simple_path(node: Node) -> Path | None:
    """The canonical path of a name followed by literal .field / ["field"] steps."""
    if isinstance(node, Name):
        if node.name in ROOT_PATHS:
            return ROOT_PATHS[node.name]
        return None
    if (
        isinstance(node, Member)
        and isinstance(node.key, Literal)
        and node.key.value.__class__ is str
    ):
        target = node.target
        if isinstance(target, Name) and target.name in AGGREGATE_ROOTS:
            return ("@agg", node.key.value)
        if isinstance(target, Name) and target.name == "local":
            return ("@local", node.key.value)
        parent = simple_path(target)
        if parent is None or parent[0].startswith("@"):
            return None
        return parent + (node.key.value,)
    return None


def hoist_key(node: Node) -> tuple | None:
    """What identifies a sub-expression worth computing once: its path, or a call's shape."""
    if isinstance(node, Call):
        if any(isinstance(inner, Name) and inner.name == "segments" for inner in walk(node)):
            return None  # the prologue runs before segments are known
        return ("@call", shape(node))
    return simple_path(node)


class FunctionScope:
    """Names and hoisted lookups of one generated function.

    `hoist_from` are the expressions that run on every call (conditions).  A
    path or function call they use twice or more is computed once, in the
    prologue.  Where such a value is compared with a number literal, a
    "numeric view" is hoisted too: the value if it is a number, else NaN, so the
    comparison needs no type check (every ordering with NaN is false, which is
    what the language says for non-numbers).  Likewise a "text view" (the value
    if it is a string, else "") serves starts_with / ends_with / matches when the
    literal cannot match "".  Templates run only when a rule fires; they reuse
    hoisted values but do not cause new ones.
    """

    def __init__(
        self,
        hoist_from: Iterable[Node],
        aggregate_kinds: Mapping[str, str],
        segments_name: str | None,
    ) -> None:
        self.aggregate_kinds = aggregate_kinds
        self.segments_name = segments_name
        self.value_names: dict[tuple, str] = {}
        self.dict_names: dict[tuple, str] = {
            ("event",): "event",
            ("profile",): "profile",
            ("context",): "context",
        }
        self.numeric_views: dict[tuple, str] = {}
        self.text_views: dict[tuple, str] = {}
        self._nodes = list(hoist_from)
        self._hoisted: list[str] = []
        self._lazy_local = False
        self._eager_local = False
        self._counter = 0
        self._numeric_uses: Counter[tuple] = Counter()
        self._text_uses: Counter[tuple] = Counter()
        self._container_uses: Counter[tuple] = Counter()
        self.container_views: dict[tuple, str] = {}
        self._call_uses: Counter[tuple] = Counter()
        self._call_nodes: dict[tuple, Call] = {}
        self._plan_paths()

    @property
    def prologue(self) -> list[str]:
        """Statements that start the function; read it after emitting the body."""
        lazy_start = ["_L = None"] if self._lazy_local and not self._eager_local else []
        return lazy_start + self._hoisted

    def _new_name(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    # -- planning ----------------------------------------------------------
    def _plan_paths(self) -> None:
        as_value: Counter[tuple] = Counter()
        as_dict: Counter[tuple] = Counter()
        for root in self._nodes:
            for node in walk(root):
                if isinstance(node, Binary):
                    self._note_view_use(node)
                key = hoist_key(node)
                if key is None:
                    continue
                if key[0] == "@call":
                    self._call_uses[key] += 1
                    self._call_nodes[key] = node  # type: ignore[assignment]
                elif isinstance(node, Member):
                    as_value[key] += 1
                    # Each step of a path reads its parent as a dictionary.
                    if key[0] == "@agg":
                        as_dict[("profile", "aggregates")] += 1
                    elif key[0] != "@local":
                        as_dict[key[:-1]] += 1
                        as_value[key[:-1]] -= 1  # the walk visits the parent too
                else:
                    as_value[key] += 1
        # Dictionaries first (parents before children), then aggregates, then local time.
        ordered = sorted(
            set(as_value) | set(as_dict),
            key=lambda k: (k[0].startswith("@"), k[0] == "@local", len(k), k),
        )
        for key in ordered:
            if as_value[key] + as_dict[key] < 2 or len(key) == 1:
                continue
            if key[0] == "@agg":
                self._hoist_value(key, self.aggregate(key[1], 0), "_a")
            elif key[0] == "@local":
                if not self._eager_local:
                    self._hoisted.append("_L = _local(now, context.get('timezone'))")
                    self._eager_local = True
                self._hoist_value(key, f"_L[{LOCAL_FIELDS.index(key[1])}]", "_v")
            elif as_value[key] > 0:
                name = self._hoist_value(key, self.access(key, 0), "_v")
                if as_dict[key]:
                    dict_name = self._new_name("_d")
                    self._hoisted.append(
                        f"{dict_name} = {name} if {name}.__class__ is dict else _E"
                    )
                    self.dict_names[key] = dict_name
            else:
                dict_name = self._new_name("_d")
                self._hoisted.append(f"{dict_name} = {self.access(key, 0)}")
                self._hoisted.append(f"if {dict_name}.__class__ is not dict: {dict_name} = _E")
                self.dict_names[key] = dict_name

    def _note_view_use(self, node: Binary) -> None:
        if node.op in _COMPARE_HELPERS:
            if _is_number_literal(node.right):
                subject_key = hoist_key(node.left)
            elif _is_number_literal(node.left):
                subject_key = hoist_key(node.right)
            else:
                return
            if subject_key is not None:
                self._numeric_uses[subject_key] += 1
        elif node.op in ("starts_with", "ends_with", "matches") and _text_view_safe(node):
            subject_key = hoist_key(node.left)
            if subject_key is not None:
                self._text_uses[subject_key] += 1
        elif node.op in ("in", "not in", "contains"):
            item, collection = (
                (node.left, node.right) if node.op != "contains" else (node.right, node.left)
            )
            if _is_string_literal(item):
                collection_key = hoist_key(collection)
                if collection_key is not None:
                    self._container_uses[collection_key] += 1
            elif _is_string_set(collection):
                item_key = hoist_key(item)
                if item_key is not None:
                    self._text_uses[item_key] += 1

    def hoist_calls(self, emitter: Emitter) -> None:
        """Second planning step, once an Emitter exists to write the calls' source."""
        repeated = [key for key, uses in self._call_uses.items() if uses >= 2]
        # Inner calls first, so an outer call's source can use their names.
        repeated.sort(key=lambda key: sum(1 for _ in walk(self._call_nodes[key])))
        for key in repeated:
            self._hoist_value(key, emitter.value(self._call_nodes[key]), "_c")

    def _hoist_value(self, key: tuple, source: str, prefix: str) -> str:
        name = self._new_name(prefix)
        self._hoisted.append(f"{name} = {source}")
        self.value_names[key] = name
        if self._numeric_uses[key]:
            view = self._new_name("_n")
            self._hoisted.append(f"{view} = {name} if {_is_number_source(name)} else _NAN")
            self.numeric_views[key] = view
        if self._text_uses[key]:
            view = self._new_name("_x")
            self._hoisted.append(f"{view} = {name} if {name}.__class__ is str else ''")
            self.text_views[key] = view
        if self._container_uses[key]:
            # A str, list or dict answers `"x" in ...` by the language's rules; anything else: no.
            view = self._new_name("_w")
            self._hoisted.append(f"{view} = {name} if {name}.__class__ in _CONTAINERS else ()")
            self.container_views[key] = view
        return name

    # -- access ------------------------------------------------------------
    def access(self, path: tuple, depth: int) -> str:
        """Source for the value at a dictionary path (null when anything is missing)."""
        name = self.value_names.get(path) or (self.dict_names.get(path) if len(path) == 1 else None)
        if name is not None:
            return name
        parent, key = path[:-1], path[-1]
        container = self.dict_names.get(parent)
        if container is not None:
            return f"{container}.get({key!r})"
        temp = f"_t{depth}"
        parent_value = self.access(parent, depth + 1)
        return f"({temp}.get({key!r}) if ({temp} := {parent_value}).__class__ is dict else None)"

    def aggregate(self, aggregate_id: str, depth: int) -> str:
        name = self.value_names.get(("@agg", aggregate_id))
        if name is not None:
            return name
        stored = self.access(("profile", "aggregates", aggregate_id), depth + 1)
        if self.aggregate_kinds.get(aggregate_id) in ZERO_DEFAULT_KINDS:
            # Nothing recorded in the window means a count/sum of zero, not "unknown".
            temp = f"_t{depth}"
            return f"({temp} if ({temp} := {stored}) is not None else 0)"
        return stored

    def local_field(self, field: str) -> str:
        name = self.value_names.get(("@local", field))
        if name is not None:
            return name
        self._lazy_local = True
        return f"(_L or (_L := _local(now, context.get('timezone'))))[{LOCAL_FIELDS.index(field)}]"


class Emitter:
    """Turns syntax trees into Python expressions within one FunctionScope."""

    def __init__(
        self,
        pool: ConstantPool,
        scope: FunctionScope,
        segment_flags: Mapping[str, str] | None = None,
    ) -> None:
        self.pool = pool
        self.scope = scope
        # segment id -> local holding True/False, for `"id" in segments` inside decide functions
        self.segment_flags = dict(segment_flags or {})
        scope.hoist_calls(self)

    def value(self, node: Node) -> str:
        """Source evaluating to the expression's value."""
        return self._emit(node, False, 0)[0]

    def condition(self, node: Node) -> str:
        """Source whose truthiness is the expression's truth (it may not be a bool)."""
        return self._emit(node, True, 0)[0]

    def boolean(self, node: Node) -> str:
        """Source that yields exactly True or False."""
        source, is_bool = self._emit(node, True, 0)
        return source if is_bool else f"(not not {source})"

    # Each _emit returns (source, is_bool): is_bool says the source always yields a bool.
    def _emit(self, node: Node, want_truth: bool, depth: int) -> tuple[str, bool]:
        if isinstance(node, Literal):
            return self.pool.literal(node.value), node.value.__class__ is bool
        if isinstance(node, ListLit):
            return "[" + ", ".join(self._value(item, depth) for item in node.items) + "]", False
        if isinstance(node, (Name, Member)):
            return self._reference(node, depth), False
        if isinstance(node, Logical):
            return self._logical(node, want_truth, depth)
        if isinstance(node, Unary):
            if node.op == "not":
                return f"(not {self._emit(node.operand, True, depth)[0]})", True
            return f"_neg({self._value(node.operand, depth)})", False
        if isinstance(node, Binary):
            return self._binary(node, depth)
        if isinstance(node, Call):
            return self._call(node, depth)
        raise TypeError(f"unknown node {node!r}")

    def _value(self, node: Node, depth: int) -> str:
        return self._emit(node, False, depth)[0]

    def _reference(self, node: Name | Member, depth: int) -> str:
        path = simple_path(node)
        if path is not None:
            if path[0] == "@agg":
                return self.scope.aggregate(path[1], depth)
            if path[0] == "@local":
                return self.scope.local_field(path[1])
            return self.scope.access(path, depth)
        if isinstance(node, Name):
            if node.name == "now":
                return "now"
            if node.name == "segments":
                return self.scope.segments_name or "[]"
            raise ValueError(f"name {node.name} should have been rejected by analysis")
        return f"_item({self._value(node.target, depth + 1)}, {self._value(node.key, depth + 1)})"

    def _logical(self, node: Logical, want_truth: bool, depth: int) -> tuple[str, bool]:
        pieces = []
        all_bool = True
        # Expressions have no side effects and never fail, so the cheapest operands can
        # go first: when one of them decides the result, the costly ones are skipped.
        for item in sorted(node.items, key=self._cost):
            source, is_bool = self._emit(item, True, depth)
            if not want_truth and not is_bool:
                # As a value, and/or give true/false, not one of their operands.
                source, is_bool = f"(not not {source})", True
            all_bool = all_bool and is_bool
            pieces.append(source)
        return "(" + f" {node.op} ".join(pieces) + ")", all_bool

    def _cost(self, node: Node) -> int:
        """A rough count of the work to evaluate `node` here, to order and/or operands."""
        key = hoist_key(node)
        if key is not None and key in self.scope.value_names:
            return 1
        if isinstance(node, Literal):
            return 0
        if isinstance(node, (Name, Member)):
            if key is not None and key[0] not in ("@agg", "@local"):
                return 2 * len(key)  # one lookup and one type check per step
            return 4 + sum(self._cost(child) for child in children(node))
        if isinstance(node, Binary):
            item, collection = node.left, node.right
            if node.op in ("in", "not in") and isinstance(collection, Name):
                if collection.name == "segments" and _is_string_literal(item):
                    return 1  # a segment flag
            extra = 8 if node.op == "matches" else 2
            return extra + self._cost(node.left) + self._cost(node.right)
        if isinstance(node, Call):
            return 5 + sum(self._cost(arg) for arg in node.args)
        return 1 + sum(self._cost(child) for child in children(node))

    # -- operators ---------------------------------------------------------
    def _binary(self, node: Binary, depth: int) -> tuple[str, bool]:
        op = node.op
        if op in _ARITHMETIC_HELPERS:
            left, right = self._value(node.left, depth), self._value(node.right, depth)
            return f"{_ARITHMETIC_HELPERS[op]}({left}, {right})", False
        if op in ("==", "!="):
            source = self._equal(node.left, node.right, depth)
            return (source if op == "==" else f"(not {source})"), True
        if op in _COMPARE_HELPERS:
            return self._order(op, node.left, node.right, depth), True
        if op in ("in", "not in"):
            source = self._member(node.left, node.right, depth)
            return (source if op == "in" else f"(not {source})"), True
        if op == "contains":
            return self._member(node.right, node.left, depth), True
        if op in ("starts_with", "ends_with"):
            return self._affix(op, node.left, node.right, depth), True
        if op == "matches":
            pattern = self.pool.regex(node.right.value)  # type: ignore[union-attr]
            view = self.scope.text_views.get(hoist_key(node.left))  # type: ignore[arg-type]
            if view is not None and _text_view_safe(node):
                return f"({pattern}.search({view}) is not None)", True
            temp = f"_t{depth}"
            left = self._value(node.left, depth + 1)
            return (
                f"(({temp} := {left}).__class__ is str and {pattern}.search({temp}) is not None)",
                True,
            )
        raise ValueError(f"unknown operator {op}")

    def _equal(self, left: Node, right: Node, depth: int) -> str:
        if isinstance(left, Literal) and isinstance(right, Literal):
            return repr(runtime.safe_equal(left.value, right.value))
        if isinstance(left, Literal):
            left, right = right, left
        if not isinstance(right, Literal):
            return f"_eq({self._value(left, depth)}, {self._value(right, depth)})"
        constant = right.value
        subject = self._value(left, depth + 1)
        if constant is None or constant is True or constant is False:
            return f"({subject} is {constant!r})"
        if constant.__class__ is str:
            return f"({subject} == {constant!r})"
        literal = self.pool.literal(constant)
        if constant == 0 or constant == 1:
            # Python says True == 1; the language does not.
            temp = f"_t{depth}"
            return f"(({temp} := {subject}) == {literal} and {temp}.__class__ is not bool)"
        return f"({subject} == {literal})"

    def _order(self, op: str, left: Node, right: Node, depth: int) -> str:
        temp = f"_t{depth}"
        if _is_number_literal(right) or _is_number_literal(left):
            subject_node, literal_node = (
                (left, right) if _is_number_literal(right) else (right, left)
            )
            literal = self.pool.literal(literal_node.value)  # type: ignore[union-attr]
            view = self.scope.numeric_views.get(hoist_key(subject_node))  # type: ignore[arg-type]
            if view is not None:
                return (
                    f"({view} {op} {literal})"
                    if subject_node is left
                    else f"({literal} {op} {view})"
                )
            subject = self._value(subject_node, depth + 1)
            test = f"{temp} {op} {literal}" if subject_node is left else f"{literal} {op} {temp}"
            return f"({_is_number_source(f'({temp} := {subject})', temp)} and {test})"
        if _is_string_literal(right) or _is_string_literal(left):
            subject_node, literal_node = (
                (left, right) if _is_string_literal(right) else (right, left)
            )
            subject = self._value(subject_node, depth + 1)
            literal = repr(literal_node.value)  # type: ignore[union-attr]
            test = f"{temp} {op} {literal}" if subject_node is left else f"{literal} {op} {temp}"
            return f"(({temp} := {subject}).__class__ is str and {test})"
        return f"{_COMPARE_HELPERS[op]}({self._value(left, depth)}, {self._value(right, depth)})"

    def _member(self, item: Node, collection: Node, depth: int) -> str:
        temp = f"_t{depth}"
        if _is_string_literal(item):
            if isinstance(collection, Name) and collection.name == "segments":
                flag = self.segment_flags.get(item.value)  # type: ignore[union-attr]
                if flag is not None:
                    return flag
                return f"({item.value!r} in {self._value(collection, depth)})"  # type: ignore[union-attr]
            view = self.scope.container_views.get(hoist_key(collection))  # type: ignore[arg-type]
            if view is not None:
                return f"({item.value!r} in {view})"  # type: ignore[union-attr]
            subject = self._value(collection, depth + 1)
            # For lists, Python's `in` compares a str only with equal strs: the language rule.
            return f"(({temp} := {subject}).__class__ in _CONTAINERS and {item.value!r} in {temp})"  # type: ignore[union-attr]
        if isinstance(collection, ListLit) and all(
            isinstance(i, Literal) for i in collection.items
        ):
            values = [i.value for i in collection.items]  # type: ignore[union-attr]
            if all(v.__class__ is str for v in values):
                options = self.pool.add(("strings", tuple(values)), frozenset(values))
                view = self.scope.text_views.get(hoist_key(item))  # type: ignore[arg-type]
                if view is not None and "" not in values:
                    return f"({view} in {options})"
                subject = self._value(item, depth + 1)
                return f"(({temp} := {subject}).__class__ is str and {temp} in {options})"
            if all(_is_number_value(v) for v in values):
                options = self.pool.add(("numbers", tuple(map(repr, values))), frozenset(values))
                subject = self._value(item, depth + 1)
                return (
                    f"({_is_number_source(f'({temp} := {subject})', temp)} and {temp} in {options})"
                )
        if _is_string_literal(collection):
            subject = self._value(item, depth + 1)
            return f"(({temp} := {subject}).__class__ is str and {temp} in {collection.value!r})"  # type: ignore[union-attr]
        return f"_in({self._value(item, depth)}, {self._value(collection, depth)})"

    def _affix(self, op: str, text: Node, affix: Node, depth: int) -> str:
        if _is_string_literal(affix):
            temp = f"_t{depth}"
            method = "startswith" if op == "starts_with" else "endswith"
            view = self.scope.text_views.get(hoist_key(text))  # type: ignore[arg-type]
            if view is not None and affix.value:  # type: ignore[union-attr]
                return f"{view}.{method}({affix.value!r})"  # type: ignore[union-attr]
            subject = self._value(text, depth + 1)
            return f"(({temp} := {subject}).__class__ is str and {temp}.{method}({affix.value!r}))"  # type: ignore[union-attr]
        helper = "_starts" if op == "starts_with" else "_ends"
        return f"{helper}({self._value(text, depth)}, {self._value(affix, depth)})"

    # -- functions ---------------------------------------------------------
    def _call(self, node: Call, depth: int) -> tuple[str, bool]:
        hoisted = self.scope.value_names.get(hoist_key(node))  # type: ignore[arg-type]
        if hoisted is not None:
            return hoisted, node.name in ("exists", "near")
        name = node.name
        if name == "exists":
            argument = node.args[0]
            if isinstance(argument, Literal):  # Python warns about `5 is not None`
                return repr(argument.value is not None), True
            return f"({self._value(argument, depth)} is not None)", True
        if name == "coalesce":
            # Later arguments are evaluated only when needed, like `or` but for null.
            temp = f"_t{depth}"
            source = self._value(node.args[-1], depth + 1)
            for arg in reversed(node.args[:-1]):
                value = self._value(arg, depth + 1)
                source = f"({temp} if ({temp} := {value}) is not None else {source})"
            return source, False
        args = ", ".join(self._value(arg, depth) for arg in node.args)
        if name in ("days_since", "hours_since"):
            return f"_{name}({args}, now)", False
        if name == "near":
            # reads the location the `location` root names, and the clock
            location = self.scope.access(ROOT_PATHS["location"], depth + 1)
            return f"_near({location}, now, {args})", True
        return f"{_SIMPLE_FUNCTIONS[name]}({args})", False


def _is_number_source(first: str, then: str | None = None) -> str:
    """Source testing for int or float (not bool): `first` is read once, then `then` again."""
    return f"({first}.__class__ is int or {then or first}.__class__ is float)"


def _text_view_safe(node: Binary) -> bool:
    """Can "" stand in for a non-string on the left?  Only if "" could never match the literal."""
    literal = node.right
    if not _is_string_literal(literal):
        return False
    if node.op == "matches":
        return re.search(literal.value, "") is None  # type: ignore[union-attr,arg-type]
    return literal.value != ""  # type: ignore[union-attr]


def _is_string_set(node: Node) -> bool:
    """A literal list of non-empty strings (so "" can stand in for a non-string)."""
    return isinstance(node, ListLit) and all(
        isinstance(item, Literal) and item.value.__class__ is str and item.value
        for item in node.items
    )


def _is_number_value(value: object) -> bool:
    return value.__class__ is int or value.__class__ is float


def _is_number_literal(node: Node) -> bool:
    return isinstance(node, Literal) and _is_number_value(node.value)


def _is_string_literal(node: Node) -> bool:
    return isinstance(node, Literal) and node.value.__class__ is str
