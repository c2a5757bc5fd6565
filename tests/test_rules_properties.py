"""Property tests: compiled code agrees with the reference evaluator and never raises;
the parser honours precedence; windowed aggregates follow their definition."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rules import RulesInvalid, load_ruleset
from rules.aggregates import AggregateSpec, brute_force, bucket_ms_for
from rules.expr_ast import Binary, Call, ListLit, Literal, Logical, Member, Name, Node, Unary
from rules.expression import ExpressionInvalid, compile_expression, reference_value
from rules.localtime import LocalTimeCache, local_fields, zone_named
from rules.names import FUNCTION_ARITY
from rules.parser import parse_expression
from rules.reference import Environment, truthy
from rules.ruleset import Ruleset
from tests.rules_answer import full_answer
from tests.test_rules_vectors import same_value

pytestmark = pytest.mark.filterwarnings("error::SyntaxWarning")

AGGREGATE_KINDS = {
    "views_7d": "count",
    "spend_30d": "sum",
    "last_cat": "last",
    "cats_30d": "distinct",
}
KEYS = ["a", "b", "price", "tags", "first name", "traits", "aggregates", "cart", "page", "path"]
PATTERNS = ["^a", "b$", "[0-9]+", "(?i)shoe", ""]

# -- random syntax trees -------------------------------------------------------
scalar_literals = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6),
    st.sampled_from(["a", "b", "shoe", "", "1", "vip"]),
)


def literal(value: object) -> Node:
    return Literal(value, 0)


def path_nodes() -> st.SearchStrategy[Node]:
    roots = st.sampled_from(
        ["event", "profile", "traits", "cart", "context", "ctx", "segments", "now"]
    )
    key = st.one_of(st.sampled_from(KEYS).map(literal), st.integers(-2, 2).map(literal))

    def build(root: str, keys: list[Node]) -> Node:
        node: Node = Name(root, 0)
        for k in keys:
            node = Member(node, k, 0)
        return node

    plain = st.builds(build, roots, st.lists(key, max_size=3))
    aggregate = st.sampled_from(sorted(AGGREGATE_KINDS)).map(
        lambda name: Member(Name(st_choice_root(name), 0), literal(name), 0)
    )
    local = st.sampled_from(["hour", "minute", "weekday", "date"]).map(
        lambda f: Member(Name("local", 0), literal(f), 0)
    )
    # Only named catalog lists compile: `catalog.upsell[0].price`.
    catalog = st.builds(lambda name, keys: build("catalog", [literal(name), *keys]),
                        st.sampled_from(["recent_products", "upsell"]), st.lists(key, max_size=2))
    return st.one_of(plain, plain, aggregate, local, catalog)


def st_choice_root(name: str) -> str:
    return "agg" if len(name) % 2 else "aggregates"


def negate(node: Node) -> Node:
    # The parser folds a minus in front of a number literal, so build what it builds.
    if isinstance(node, Literal) and type(node.value) in (int, float):
        return Literal(-node.value, 0)  # type: ignore[operator]
    return Unary("neg", node, 0)


def compound(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    binary_ops = [
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
        "+",
        "-",
        "*",
        "/",
        "%",
    ]
    calls = st.sampled_from(sorted(FUNCTION_ARITY)).flatmap(
        lambda name: st.lists(
            children,
            min_size=FUNCTION_ARITY[name][0],
            max_size=FUNCTION_ARITY[name][1] or 3,
        ).map(lambda args: Call(name, tuple(args), 0))
    )
    return st.one_of(
        st.builds(
            lambda op, left, right: Binary(op, left, right, 0),
            st.sampled_from(binary_ops),
            children,
            children,
        ),
        st.builds(
            lambda left, pattern: Binary("matches", left, literal(pattern), 0),
            children,
            st.sampled_from(PATTERNS),
        ),
        st.builds(
            lambda op, items: Logical(op, tuple(items), 0),
            st.sampled_from(["and", "or"]),
            st.lists(children, min_size=2, max_size=3),
        ),
        children.map(lambda c: Unary("not", c, 0)),
        children.map(negate),
        st.lists(children, max_size=3).map(lambda items: ListLit(tuple(items), 0)),
        children.flatmap(lambda target: st.builds(lambda key: Member(target, key, 0), children)),
        calls,
    )


expressions = st.recursive(
    st.one_of(scalar_literals.map(literal), path_nodes()), compound, max_leaves=10
)

# -- printing trees as source --------------------------------------------------
# Binding strength, loosest first; a child looser than its slot needs parentheses.
LEVEL = {
    "or": 1,
    "and": 2,
    "not": 3,
    "compare": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "%": 6,
    "neg": 7,
    "postfix": 8,
}
COMPARE_OPS = {
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
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def level_of(node: Node) -> int:
    if isinstance(node, Logical):
        return LEVEL[node.op]
    if isinstance(node, Unary):
        return LEVEL["not"] if node.op == "not" else LEVEL["neg"]
    if isinstance(node, Binary):
        return LEVEL["compare"] if node.op in COMPARE_OPS else LEVEL[node.op]
    if (
        isinstance(node, Literal)
        and type(node.value) in (int, float)
        and (node.value < 0 or str(node.value).startswith("-"))
    ):
        return LEVEL["neg"]  # -5 prints with a leading minus
    return LEVEL["postfix"]


def show_string(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\t", "\\t")
        .replace("\r", "\\r")
    )
    return f'"{escaped}"'


def show(node: Node) -> str:
    """Source with as few parentheses as the grammar allows."""
    if isinstance(node, Literal):
        value = node.value
        if value is None:
            return "null"
        if value is True or value is False:
            return "true" if value else "false"
        if isinstance(value, str):
            return show_string(value)
        return repr(value)
    if isinstance(node, ListLit):
        return "[" + ", ".join(show(item) for item in node.items) + "]"
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Member):
        target = show(node.target)
        if level_of(node.target) < LEVEL["postfix"] or isinstance(node.target, Literal):
            target = f"({target})"
        key = node.key
        if (
            isinstance(key, Literal)
            and isinstance(key.value, str)
            and IDENTIFIER.fullmatch(key.value)
        ):
            return f"{target}.{key.value}"
        return f"{target}[{show(key)}]"
    if isinstance(node, Call):
        return f"{node.name}(" + ", ".join(show(arg) for arg in node.args) + ")"
    if isinstance(node, Unary):
        if node.op == "not":
            inner = show(node.operand)
            return f"not ({inner})" if level_of(node.operand) < LEVEL["not"] else f"not {inner}"
        inner = show(node.operand)
        # Parenthesise anything but a plain postfix value, so that "-(-5)" is not read as "--5".
        return (
            f"-{inner}"
            if level_of(node.operand) == LEVEL["postfix"] and not isinstance(node.operand, Literal)
            else f"-({inner})"
        )
    if isinstance(node, Logical):
        parts = []
        for item in node.items:
            text = show(item)
            parts.append(f"({text})" if level_of(item) <= LEVEL[node.op] else text)
        return f" {node.op} ".join(parts)
    assert isinstance(node, Binary)
    mine = level_of(node)
    left, right = show(node.left), show(node.right)
    if node.op in COMPARE_OPS:
        # Comparisons do not chain, so a comparison child always gets parentheses.
        left = f"({left})" if level_of(node.left) <= mine else left
        right = f"({right})" if level_of(node.right) <= mine else right
    else:
        left = f"({left})" if level_of(node.left) < mine else left
        right = f"({right})" if level_of(node.right) <= mine else right
    return f"{left} {node.op} {right}"


def without_positions(node: Node) -> object:
    if isinstance(node, Literal):
        return ("lit", type(node.value).__name__, repr(node.value))
    if isinstance(node, ListLit):
        return ("list", tuple(without_positions(i) for i in node.items))
    if isinstance(node, Name):
        return ("name", node.name)
    if isinstance(node, Member):
        return ("member", without_positions(node.target), without_positions(node.key))
    if isinstance(node, Call):
        return ("call", node.name, tuple(without_positions(a) for a in node.args))
    if isinstance(node, Unary):
        return ("unary", node.op, without_positions(node.operand))
    if isinstance(node, Logical):
        return ("logical", node.op, tuple(without_positions(i) for i in node.items))
    return ("binary", node.op, without_positions(node.left), without_positions(node.right))


# -- random inputs -------------------------------------------------------------
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False),
    st.sampled_from(["a", "b", "shoe", "Shoes", "", "/products/1", "vip", "10"]),
    st.text(max_size=4),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS), children, max_size=4)
    ),
    max_leaves=10,
)


def dict_with(keys: list[str], values: st.SearchStrategy) -> st.SearchStrategy[dict]:
    return st.dictionaries(st.sampled_from(keys), values, max_size=len(keys))


profiles = st.fixed_dictionaries(
    {},
    optional={
        "traits": st.one_of(dict_with(KEYS, json_values), json_values),
        "cart": st.one_of(dict_with(["value", "items", "a"], json_values), json_values),
        "catalog": st.one_of(dict_with(["recent_products", "upsell", "a"], json_values),
                             json_values),
        "aggregates": st.one_of(dict_with(sorted(AGGREGATE_KINDS), json_values), json_values),
        "tags": json_values,
        "a": json_values,
        "price": json_values,
    },
)
events = st.fixed_dictionaries(
    {"type": st.sampled_from(["page", "track", "identify", "screen", "weird"])},
    optional={
        "event": st.sampled_from(["Product Viewed", "Order Completed", "page"]),
        "properties": st.one_of(dict_with(KEYS, json_values), json_values),
        "a": json_values,
    },
)
contexts = st.fixed_dictionaries(
    {},
    optional={
        "page": st.one_of(dict_with(["path", "a", "b"], json_values), json_values),
        "timezone": st.sampled_from(
            ["Europe/Prague", "Asia/Tokyo", "America/New_York", "Nope/Zone", "", None, 5]
        ),
        "a": json_values,
    },
)
now_values = st.one_of(st.just(1_700_000_000_000), st.integers(min_value=-(2**42), max_value=2**46))
segment_lists = st.lists(st.sampled_from(["vip", "a", "b", "shoe"]), max_size=3)
environments = st.builds(
    Environment,
    event=events,
    profile=profiles,
    context=contexts,
    now=now_values,
    segments=segment_lists,
    aggregate_kinds=st.just(AGGREGATE_KINDS),
)


def load_random(text: str) -> Ruleset:
    """A random rule document compiled; the example is discarded when check refuses it for
    what random documents may hold: too deep, or a comparison whose kinds settle it
    (`1 == "a"`). Any other refusal fails."""
    try:
        return load_ruleset([("random.yaml", text)])
    except RulesInvalid as invalid:
        assert all("nested more than" in p.message or "between them is" in p.message
                   for p in invalid.problems), invalid
        assume(False)


# -- properties ----------------------------------------------------------------
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions)
def test_parser_reads_back_what_was_printed(node: Node) -> None:
    text = show(node)
    try:
        parsed = parse_expression(text)
    except Exception as error:  # a deep tree may exceed the nesting limit; nothing else may fail
        assert "nested more than" in str(error), (text, error)
        return
    assert without_positions(parsed) == without_positions(node), text


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(expressions, st.lists(environments, min_size=1, max_size=3))
def test_compiled_code_agrees_with_reference(node: Node, envs: list[Environment]) -> None:
    text = show(node)
    try:
        compiled = compile_expression(text, AGGREGATE_KINDS)
    except ExpressionInvalid as error:
        assert all("nested more than" in message for _, message in error.problems), error
        return
    for env in envs:
        expected = reference_value(text, env)
        actual = compiled(env)
        assert same_value(actual, expected), (
            f"{text!r}: compiled {actual!r}, reference {expected!r}\n{compiled.source}"
        )


TOKENS = [
    "traits",
    "event",
    "profile",
    "ctx",
    "segments",
    "now",
    "local",
    "aggregates",
    ".",
    "a",
    "price",
    "hour",
    "views_7d",
    "[",
    "]",
    "(",
    ")",
    ",",
    "0",
    "1.5",
    "7d",
    '"a"',
    "'b'",
    "true",
    "null",
    "and",
    "or",
    "not",
    "in",
    "==",
    "!=",
    "<",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "contains",
    "matches",
    "starts_with",
    "len",
    "min",
    "coalesce",
    "round",
    "=",
    "&",
    "$",
    '"',
    "{",
    "}",
    "@",
    "é",
    "1e",
    "5x",
    "\\",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=12), st.sampled_from(["", " "]), environments)
def test_any_token_soup_is_rejected_cleanly_or_agrees(
    tokens: list[str], glue: str, env: Environment
) -> None:
    text = glue.join(tokens)
    try:
        compiled = compile_expression(text, AGGREGATE_KINDS)
    except ExpressionInvalid:
        return
    assert same_value(compiled(env), reference_value(text, env)), text


ZONES = [
    "Europe/Prague",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "Europe/Amsterdam",
    "UTC",
    "bad",
    None,
]
PRAGUE_SPRING_FORWARD_MS = 1_679_792_400_000  # 2023-03-26 01:00 UTC


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.integers(min_value=-(2**41), max_value=2**45),
        st.integers(PRAGUE_SPRING_FORWARD_MS - 3_600_000, PRAGUE_SPRING_FORWARD_MS + 3_600_000),
    ),
    st.lists(st.integers(min_value=-120_000, max_value=1_800_000), max_size=8),
    st.sampled_from(ZONES),
)
def test_local_time_cache_matches_direct_computation(
    base_ms: int, steps: list[int], zone: str | None
) -> None:
    cache = LocalTimeCache()
    now_ms = base_ms
    for step in [0, *steps]:  # nearby instants exercise the cached paths
        now_ms += step
        assert cache.fields(now_ms, zone) == local_fields(now_ms, zone_named(zone)), now_ms
    direct = local_fields(base_ms, zone_named(zone))
    if direct[0] is not None and zone is None:
        moment = datetime.fromtimestamp(base_ms / 1000, UTC)
        assert direct[:2] == (moment.hour, moment.minute)


def test_local_time_across_a_daylight_saving_change() -> None:
    cache = LocalTimeCache()
    before = cache.fields(PRAGUE_SPRING_FORWARD_MS - 60_000, "Europe/Prague")
    after = cache.fields(PRAGUE_SPRING_FORWARD_MS, "Europe/Prague")
    assert before[:2] == (1, 59) and after[:2] == (3, 0)
    assert after[2:] == ("sun", "2023-03-26")


# -- whole decisions against a straightforward re-implementation ---------------
# Conditions that repeat paths and calls, so that generated functions hoist them
# (with numeric, text and container views) and the hoisted code is checked too.
REPEATING_CONDITIONS = [
    "traits.a > 1",
    "traits.a <= 5",
    "1 < traits.a",
    "len(traits.tags) >= 1",
    "len(traits.tags) < 3",
    'traits.b starts_with "sh"',
    'traits.b ends_with "e"',
    'traits.b matches "^s"',
    'traits.b matches "x*"',
    'traits.b in ["a", "shoe"]',
    'traits.b in ["", "a"]',
    '"vip" in traits.tags',
    '"vip" not in traits.tags',
    'traits.tags contains "a"',
    "aggregates.views_7d >= 2",
    "aggregates.views_7d < 5",
    'aggregates.last_cat == "shoe"',
    'aggregates.last_cat starts_with "sh"',
    "local.hour >= 12",
    "local.hour < 20",
    'local.weekday in ["sat", "sun"]',
    "cart.value > 10",
    'lower(traits.b) == "shoe"',
    "days_since(traits.a) > 1",
    "days_since(traits.a) <= 100",
]
condition_texts = st.one_of(expressions.map(show), st.sampled_from(REPEATING_CONDITIONS))


def segment_safe(text: str) -> bool:
    return "segments" not in text


HOISTING_RULESET = load_ruleset(
    [
        (
            "hoisting.yaml",
            yaml.safe_dump(
                {
                    "aggregates": {
                        "views_7d": {"count": "Product Viewed", "window": "7d"},
                        "last_cat": {
                            "last": "Product Viewed",
                            "of": "properties.a",
                            "window": "1d",
                        },
                    },
                    "rules": [
                        {
                            "id": f"r{index:02d}",
                            "on": "any",
                            "when": text,
                            "actions": [{"tag": f"t{index:02d}"}],
                        }
                        for index, text in enumerate(REPEATING_CONDITIONS)
                    ],
                }
            ),
        )
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events, profiles, contexts, now_values)
def test_hoisted_lookups_agree_with_reference(
    event: dict, profile: dict, context: dict, now: int
) -> None:
    """Every repeated path and call above is hoisted, with its numeric/text/container view."""
    source = HOISTING_RULESET.generated_source
    for prefix in (
        "_n",
        "_x",
        "_w",
        "_c",
        "_a",
    ):  # numeric, text, container views; calls; aggregates
        assert re.search(rf"\b{prefix}\d+ = ", source), prefix
    env = Environment(event, profile, context, now, [], AGGREGATE_KINDS)
    expected = [
        f"t{index:02d}"
        for index, text in enumerate(REPEATING_CONDITIONS)
        if truthy(reference_value(text, env))
    ]
    assert full_answer(HOISTING_RULESET, event, profile, context, now).add_tags == expected


def rule_documents() -> st.SearchStrategy[tuple[dict, list[dict], list[dict]]]:
    segment = st.fixed_dictionaries({"when": condition_texts.filter(segment_safe)})
    rule = st.fixed_dictionaries(
        {
            "on": st.lists(
                st.sampled_from(["page", "track", "any", "Product Viewed", "identify"]),
                min_size=1,
                max_size=2,
                unique=True,
            ),
            "priority": st.integers(-3, 3),
            "actions": st.lists(
                st.one_of(
                    st.builds(
                        lambda s: {"slot": s, "html": "static"}, st.sampled_from(["hero", "recs"])
                    ),
                    st.sampled_from(["vip", "seen"]).map(lambda t: {"tag": t}),
                    st.builds(
                        lambda k, v: {"set_trait": {k: v}},
                        st.sampled_from(["a", "b"]),
                        st.integers(0, 3),
                    ),
                ),
                min_size=1,
                max_size=3,
            ),
        },
        optional={"when": condition_texts},
    )
    return st.tuples(
        st.just(
            {
                "views_7d": {"count": "Product Viewed", "window": "7d"},
                "spend_30d": {"sum": "Order Completed", "of": "properties.price", "window": "30d"},
                "last_cat": {"last": "Product Viewed", "of": "properties.a", "window": "1d"},
                "cats_30d": {"distinct": "page", "of": "properties.a", "window": "30d"},
            }
        ),
        st.lists(segment, max_size=4),
        st.lists(rule, min_size=1, max_size=8),
    )


def reference_decision(
    segments: list[dict], rules: list[dict], event: dict, profile: dict, context: dict, now: int
) -> dict:
    def value(text: str, current_segments: list[str]) -> object:
        return reference_value(
            text, Environment(event, profile, context, now, current_segments, AGGREGATE_KINDS)
        )

    in_segments = sorted(s["id"] for s in segments if truthy(value(s["when"], [])))
    kind, name = event.get("type"), event.get("event")

    def triggered(trigger: str) -> bool:
        if trigger == "any":
            return True
        if trigger in ("page", "identify", "track"):
            return kind == trigger
        return kind == "track" and name == trigger

    slots: dict = {}
    tags: list = []
    traits: dict = {}
    for rule in sorted(rules, key=lambda r: (-r["priority"], r["id"])):
        if not any(triggered(t) for t in rule["on"]):
            continue
        if "when" in rule and not truthy(value(rule["when"], in_segments)):
            continue
        # A rule fires when it can show something (or shows nothing by design);
        # only a rule that fires sets traits and adds tags.
        wanted = [a["slot"] for a in rule["actions"] if "slot" in a]
        free = [slot for slot in dict.fromkeys(wanted) if slot not in slots]
        if wanted and not free:
            continue
        for action in rule["actions"]:
            if "slot" in action and action["slot"] not in slots:
                slots[action["slot"]] = {"rule": rule["id"], "html": action["html"]}
            elif "tag" in action and action["tag"] not in tags:
                tags.append(action["tag"])
            elif "set_trait" in action:
                for key, item in action["set_trait"].items():
                    traits.setdefault(key, item)
    return {"slots": slots, "segments": in_segments, "add_tags": tags, "set_traits": traits}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    rule_documents(),
    st.lists(st.tuples(events, profiles, contexts, now_values), min_size=1, max_size=4),
)
def test_decide_agrees_with_a_plain_reimplementation(document: tuple, inputs: list) -> None:
    aggregates, segments, rules = document
    for index, segment in enumerate(segments):
        segment["id"] = f"seg{index}"
    for index, rule in enumerate(rules):
        rule["id"] = f"rule-{index}"
    # Conditions may use "in segments" only for segments that exist.
    for rule in rules:
        for text in [rule.get("when", "")] + [a.get("html", "") for a in rule["actions"]]:
            for literal_id in re.findall(r'"([^"]*)" (?:not )?in segments', text):
                assume(literal_id in {s["id"] for s in segments})
            assume("segments contains" not in text)
    text = yaml.safe_dump(
        {"aggregates": aggregates, "segments": segments, "rules": rules}, allow_unicode=True
    )
    ruleset = load_random(text)
    for event, profile, context, now in inputs:
        decision = full_answer(ruleset, event, profile, context, now)
        expected = reference_decision(segments, rules, event, profile, context, now)
        actual = {
            "slots": decision.slots,
            "segments": decision.segments,
            "add_tags": decision.add_tags,
            "set_traits": decision.set_traits,
        }
        assert actual == expected
        json.dumps([decision.slots, decision.messages, decision.push])  # the answer is plain data


# -- windowed aggregates -------------------------------------------------------
def naive_window_value(
    kind: str, window_ms: int, history: list[tuple[int, object]], now_ms: int
) -> object:
    """The same semantics as a time range: from the oldest kept bucket to the end of now's."""
    bucket = bucket_ms_for(window_ms)
    first_kept_ms = (now_ms // bucket - window_ms // bucket + 1) * bucket
    last_kept_ms = (now_ms // bucket + 1) * bucket - 1
    kept = [
        (index, ts, v)
        for index, (ts, v) in enumerate(history)
        if first_kept_ms <= ts <= last_kept_ms
    ]
    if kind == "count":
        return len(kept)
    if kind == "sum":
        total = 0.0
        for _, _, v in kept:
            total += v  # type: ignore[operator]
        return total
    if kind == "distinct":
        seen: list = []
        for _, _, v in kept:
            if v not in seen:
                seen.append(v)
        return len(seen)
    if not kept:
        return None
    return max(kept, key=lambda item: (item[1], item[0]))[2]


windows = st.sampled_from(
    [
        60_000,
        5 * 60_000,
        3_600_000,
        2 * 3_600_000,
        3 * 3_600_000,
        86_400_000,
        2 * 86_400_000,
        7 * 86_400_000,
        14 * 86_400_000,
        30 * 86_400_000,
        90 * 86_400_000,
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["count", "sum", "distinct", "last"]),
    windows,
    st.integers(min_value=0, max_value=2 * 10**12),
    st.lists(
        st.tuples(
            st.integers(min_value=-(10**10), max_value=10**10),
            st.integers(min_value=-5, max_value=5),
        ),
        max_size=30,
    ),
)
def test_brute_force_matches_the_naive_definition(
    kind: str, window_ms: int, now_ms: int, offsets: list
) -> None:
    history = [(now_ms + offset, value) for offset, value in offsets]
    spec = AggregateSpec("x", kind, window_ms, bucket_ms_for(window_ms))  # type: ignore[arg-type]
    assert same_value(
        brute_force(spec, history, now_ms), naive_window_value(kind, window_ms, history, now_ms)
    ) or (
        kind == "sum"
        and brute_force(spec, history, now_ms)
        == naive_window_value(kind, window_ms, history, now_ms)
    )


def test_window_edges_are_whole_buckets() -> None:
    spec = AggregateSpec("views_1h", "count", 3_600_000, 60_000)
    now = 10 * 3_600_000 + 30_000  # half way through a minute bucket
    oldest_kept_bucket_start = now // 60_000 * 60_000 - 59 * 60_000
    history = [
        (oldest_kept_bucket_start, "kept"),
        (oldest_kept_bucket_start - 1, "dropped: the bucket before the window"),
        (now // 60_000 * 60_000 + 59_999, "kept: later in now's bucket"),
        (now // 60_000 * 60_000 + 60_000, "dropped: a future bucket"),
    ]
    assert brute_force(spec, history, now) == 2
    last = AggregateSpec("last", "last", 3_600_000, 60_000)
    assert brute_force(last, [(now, "a"), (now, "b"), (now - 1, "c")], now) == "b"
    assert brute_force(last, [], now) is None
    assert brute_force(AggregateSpec("s", "sum", 3_600_000, 60_000), [], now) == 0.0


def test_aggregate_filter_and_value_round_trip_through_brute_force() -> None:
    """What aggregate_updates emits, fed to brute_force, gives the values rules then see."""
    ruleset = load_ruleset(
        [
            (
                "agg.yaml",
                """
aggregates:
  spend_1d: { sum: Order Completed, of: properties.revenue, window: 1d }
  shoes_1h: { count: Product Viewed, where: 'event.properties.category == "shoes"', window: 60m }
segments:
  - id: big_spender
    when: aggregates.spend_1d > 100 and aggregates.shoes_1h >= 2
""",
            )
        ]
    )
    now = 1_700_000_000_000
    stream = [
        {"type": "track", "event": "Order Completed", "properties": {"revenue": 80}},
        {"type": "track", "event": "Order Completed", "properties": {"revenue": "lots"}},
        {"type": "track", "event": "Order Completed", "properties": {"revenue": 30.5}},
        {"type": "track", "event": "Product Viewed", "properties": {"category": "shoes"}},
        {"type": "track", "event": "Product Viewed", "properties": {"category": "hats"}},
        {"type": "track", "event": "Product Viewed", "properties": {"category": "shoes"}},
    ]
    history: dict[str, list] = {spec.id: [] for spec in ruleset.aggregates}
    for offset, event in enumerate(stream):
        for spec, value in ruleset.aggregate_updates(event):
            history[spec.id].append((now - 1000 * offset, value))
    values = {spec.id: brute_force(spec, history[spec.id], now) for spec in ruleset.aggregates}
    assert values == {"shoes_1h": 2, "spend_1d": 110.5}
    decision = ruleset.decide({"type": "page"}, {"aggregates": values}, {}, now)
    assert decision.segments == ["big_spender"]
