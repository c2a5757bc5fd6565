"""The fast path of content templates (rules/content.py) renders exactly what jinja renders.

Every template is compiled twice, by a compiler with the fast path and by one
without it (jinja renders everything), and both render the same random
variables: the text (or value, and its type), the error counts and the error
message must agree.  The templates: those of the benchmark corpus, of the
example rules, of tests/test_content_templates.py, and generated simple ones.
"""

from __future__ import annotations

import ast
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from bench.rule_corpus import make_corpus, make_full_inputs, make_rules
from rules import schema
from rules.content import ContentCompiler, RenderScope, TemplateProblem
from rules.definitions import SlotAction, Template
from rules.loader import load_ruleset
from rules.render import _json, render

ROOT = Path(__file__).resolve().parent.parent
FAST = ContentCompiler()
JINJA = ContentCompiler(fast_path=False)
MOMENT_MS = int(datetime(2024, 3, 5, 14, 30, tzinfo=UTC).timestamp() * 1000)


# -- the templates ------------------------------------------------------------------
def _strings_in(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings_in(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings_in(item)]
    return []


def _is_template(text: str) -> bool:
    return any(mark in text for mark in ("{{", "{%", "{#"))


def _corpus_templates() -> set[str]:
    return {text for text in _strings_in(make_rules(300, 7)) if _is_template(text)}


def _example_templates() -> set[str]:
    found: set[str] = set()
    for path in sorted((ROOT / "config" / "rules").glob("*.yaml")):
        texts = _strings_in(yaml.safe_load(path.read_text()))
        found |= {text for text in texts if _is_template(text)}
    return found


def _test_module_templates() -> set[str]:
    source = (ROOT / "tests" / "test_content_templates.py").read_text()
    return {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and _is_template(node.value)
    }


KNOWN_TEMPLATES = sorted(_corpus_templates() | _example_templates() | _test_module_templates())


def _compiled_pairs(texts: list[str]) -> list[tuple]:
    """(fast, jinja) pairs for each text as html, text and (where it is one) value template."""
    pairs = []
    for text in texts:
        for kind in ("html", "text", "value"):
            try:
                fast = getattr(FAST, f"compile_{kind}")(text)
                jinja = getattr(JINJA, f"compile_{kind}")(text)
            except TemplateProblem:
                continue
            if fast is not None:
                pairs.append((fast, jinja))
    return pairs


KNOWN_PAIRS = _compiled_pairs(KNOWN_TEMPLATES)


# -- random variables ---------------------------------------------------------------
class Odd:
    """Neither JSON nor a plain type: lookups on it go through the sandbox on both paths."""

    first_name = "<i>odd</i>"
    items = ("a", "b")

    def upper(self) -> str:
        return "ODD"


KEYS = ["first_name", "items", "keys", "values", "get", "value", "name", "plan", "upper",
        "result", "currency", "0", "x y", "_private", "__class__"]
NAMES = ["traits", "cart", "aggregates", "profile", "event", "x", "currency", "result", "items"]

_TEXTS = st.one_of(
    st.sampled_from(["", "Ada", "<script>alert(1)</script>", '" onclick="x', "'", "&amp;", "a & b",
                     "EUR", "eur", "JPY", "<b>", "2024-03-05", "2024-03-05T14:30:00Z",
                     "yesterday", "  padded  ", "ÄÖ ß", "hello world"]),
    st.text(max_size=8),
)
_NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6),
    st.sampled_from([0, 1, -1, 3, 2**63, 2**70, MOMENT_MS, MOMENT_MS // 1000, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, 0.256, 1234.5678, -0.0, 1e300, 1e-7]),
)
_LEAVES = st.one_of(
    st.none(), st.booleans(), _NUMBERS, _TEXTS, _TEXTS.map(Markup),
    st.sampled_from([("a", 1), b"<b>", Odd()]),
)
VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner,
                                                                max_size=4),
    max_leaves=12,
)
# Any names holding any values, and variables shaped like the edge's (a profile's
# traits, cart and aggregates, a currency), which reach deeper into the templates.
_ANY_VARIABLES = st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=7)
_PROFILE_VARIABLES = st.fixed_dictionaries(
    {
        "traits": st.fixed_dictionaries(
            {}, optional={"first_name": _LEAVES, "plan": _TEXTS, "name": _TEXTS}),
        "cart": st.fixed_dictionaries(
            {}, optional={"items": st.lists(VALUES, max_size=3), "value": _NUMBERS}),
        "aggregates": st.dictionaries(st.sampled_from(["last_category_30d", "views_7d"]),
                                      _LEAVES),
        "profile": st.fixed_dictionaries(
            {}, optional={"recent_products": st.lists(VALUES, max_size=3)}),
    },
    optional={"currency": st.sampled_from(["EUR", "usd", "JPY", "<b>", "EURO", None]),
              "x": VALUES, "v": VALUES, "ts": _NUMBERS | _TEXTS},
)
VARIABLES = st.one_of(_ANY_VARIABLES, _PROFILE_VARIABLES)
LOCALES = st.sampled_from([None, "en", "de", "fr_FR", "de-DE,de;q=0.9", "xx", ""])
ZONES = st.sampled_from([None, "Europe/Berlin", "Asia/Tokyo", "Mars/Base"])


# -- generated simple templates ------------------------------------------------------
_STEPS = st.one_of(
    st.sampled_from([key for key in KEYS if key.isidentifier()]).map(lambda key: f".{key}"),
    st.sampled_from(KEYS).map(lambda key: f"[{key!r}]"),
    st.sampled_from([0, 1, -1]).map(lambda index: f"[{index}]"),
)
_FILTERS = st.sampled_from([
    "default('friend')", "d('')", "default('a', true)", "default(none)", "default",
    "d(boolean=true, default_value='k')", "length", "count", "upper", "lower", "title",
    "capitalize", "trim", "money", "money('EUR')", "money('eur')", "money('EURO')", "money(none)",
    "number", "number(2)", "number(-1)", "percent", "date", "date('short')", "date(5)",
    "datetime", "datetime('HH:mm')",
])
_PATHS = st.tuples(st.sampled_from(NAMES), st.lists(_STEPS, max_size=3)).map(
    lambda found: found[0] + "".join(found[1]))
_LITERALS = st.sampled_from(["'<b>'", "3", "1.5", "none", "true", "'x & y'"])
EXPRESSIONS = st.tuples(st.one_of(_PATHS, _LITERALS), st.lists(_FILTERS, max_size=2)).map(
    lambda found: " | ".join([found[0], *found[1]]))
_TEXT_AROUND = st.sampled_from(["", "Hi ", "<b>", " & ", '"', "\n", "{# note #}", "é"])


@st.composite
def simple_templates(draw: st.DrawFn) -> str:
    parts = [draw(_TEXT_AROUND)]
    for _ in range(draw(st.integers(1, 3))):
        left, right = draw(st.sampled_from([("{{ ", " }}"), ("{{- ", " -}}"), ("{{", "}}")]))
        parts += [left, draw(EXPRESSIONS), right, draw(_TEXT_AROUND)]
    return "".join(parts)


# -- comparing ----------------------------------------------------------------------
def _same(a: object, b: object) -> bool:
    """Equal, and of the same types all the way down (NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[key], b[key]) for key in a)
    return a == b


def _render_both(fast, jinja, variables, locale, timezone) -> None:
    fast_errors, jinja_errors = FAST.render_errors, JINJA.render_errors
    fast_out = fast.render(variables, locale, timezone)
    jinja_out = jinja.render(variables, locale, timezone)
    assert _same(fast_out, jinja_out), (fast.kind, fast.source, fast_out, jinja_out)
    assert fast.errors == jinja.errors, (fast.source, fast.last_error, jinja.last_error)
    assert fast.last_error == jinja.last_error
    assert FAST.render_errors - fast_errors == JINJA.render_errors - jinja_errors


# -- the properties -------------------------------------------------------------------
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VARIABLES, LOCALES, ZONES)
def test_known_templates_render_alike(variables, locale, timezone):
    for fast, jinja in KNOWN_PAIRS:
        _render_both(fast, jinja, variables, locale, timezone)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(simple_templates(), VARIABLES, LOCALES, ZONES)
def test_generated_simple_templates_render_alike(text, variables, locale, timezone):
    pairs = _compiled_pairs([text])
    assert len(pairs) >= 2
    for fast, jinja in pairs:
        assert fast.fast and not jinja.fast, fast.source
        _render_both(fast, jinja, variables, locale, timezone)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EXPRESSIONS, min_size=1, max_size=3), VARIABLES)
def test_generated_value_templates_give_the_same_value(expressions, variables):
    for expression in expressions:
        fast = FAST.compile_value(f" {{{{ {expression} }}}} ")
        jinja = JINJA.compile_value(f" {{{{ {expression} }}}} ")
        assert fast is not None and fast.fast
        _render_both(fast, jinja, variables, "de", None)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(KNOWN_PAIRS), min_size=1, max_size=8), VARIABLES, LOCALES, ZONES)
def test_one_answers_templates_share_a_scope_alike(pairs, variables, locale, timezone):
    """Fast and jinja templates mixed in one scope, as render() runs an answer's templates."""
    fast_scope = RenderScope(variables, locale, timezone)
    jinja_scope = RenderScope(variables, locale, timezone)
    for fast, jinja in pairs:
        assert _same(fast.render_in(fast_scope), jinja.render_in(jinja_scope)), fast.source


# -- the fast path is taken where it should be ----------------------------------------------
@pytest.mark.parametrize("text", sorted(_corpus_templates() | _example_templates()))
def test_corpus_and_example_templates_take_the_fast_path(text):
    for kind in ("html", "text"):
        assert getattr(FAST, f"compile_{kind}")(text).fast, (kind, text)
    value = FAST.compile_value(text)
    assert value is None or value.fast


@pytest.mark.parametrize(
    "text",
    [
        "{% if x %}y{% endif %}",  # statements
        "{{ x ~ y }}",  # operators
        "{{ x.y() }}",  # calls
        "{{ x[y] }}",  # computed keys
        "{{ x[1:2] }}",  # slices
        "{{ x | join(',') }}",  # filters outside the small set
        "{{ x | default([]) }}",  # a literal that is not immutable
        "{{ x | default(y) }}",  # arguments that are not literals
        "{{ range }}",  # globals
        "{{ self }}",  # names jinja treats specially
        "{{ _locale }}",  # the scope's own names
        "{{ 1e999 }}",  # jinja's code reads `inf` here, and fails
    ],
)
def test_other_templates_stay_with_jinja(text):
    assert not FAST.compile_text(text).fast


def test_the_fast_path_escapes_like_jinja():
    """Spot checks of what the properties compare, readable when they fail."""
    template = FAST.compile_html('<a title="{{ v }}">{{ w.items }}</a>')
    assert template.fast
    variables = {"v": "\" onclick='x' & <b>", "w": {"items": Markup("<i>kept</i>")}}
    assert template.render(variables) == (
        '<a title="&#34; onclick=&#39;x&#39; &amp; &lt;b&gt;"><i>kept</i></a>')
    assert FAST.compile_html("[{{ missing.deeper }}]").render({}) == "[]"
    assert FAST.compile_text("{{ d.values }}").render({"d": {"a": 1}}) == ""  # dict.values


# -- whole answers ----------------------------------------------------------------------
def test_answers_of_the_benchmark_corpus_are_the_same_without_the_fast_path(monkeypatch):
    documents = make_corpus(200, 7)
    fast_rules = load_ruleset(documents)
    monkeypatch.setattr(schema, "_CONTENT", ContentCompiler(fast_path=False))
    jinja_rules = load_ruleset(documents)
    rendered = 0
    for (event, profile, context, now), person in make_full_inputs(300, 11):
        answers = []
        for ruleset in (fast_rules, jinja_rules):
            decision = ruleset.decide(event, profile, context, now)
            selection = ruleset.arbiter.select(decision.segments, decision.candidates, person)
            variables = {"event": event, "profile": profile, "traits": profile["traits"],
                         "cart": profile["cart"], "aggregates": profile["aggregates"],
                         "context": context, "segments": decision.segments}
            answers.append(render(selection, variables, "de", context.get("timezone")))
        assert answers[0] == answers[1]
        rendered += bool(answers[0].slots or answers[0].messages)
    assert rendered > 200


def test_each_answer_gets_its_own_json_content():
    """Literal parts of json slot content are copied per answer, never shared."""
    content = {"products": Template("{{ p }}", FAST.compile_value("{{ p }}")),
               "meta": {"limit": 3, "tags": ["a", {"b": 1}]}}
    action = SlotAction("recs", json=content)
    first = _json(action.json, RenderScope({"p": [1]}))
    second = _json(action.json, RenderScope({"p": [2]}))
    assert first == {"products": [1], "meta": {"limit": 3, "tags": ["a", {"b": 1}]}}
    assert second["products"] == [2]
    first["meta"]["tags"][1]["b"] = 99
    first["meta"]["tags"].append("x")
    assert second["meta"] == {"limit": 3, "tags": ["a", {"b": 1}]}
    assert content["meta"] == {"limit": 3, "tags": ["a", {"b": 1}]}
