"""Rendering of content templates (rules/content.py), as properties any template keeps.

The templates: those of the benchmark corpus, of the example rules, of
tests/test_content_templates.py, and generated ones made of text and `{{ }}`
outputs; the variables are drawn at random (JSON values, Markup, tuples,
objects that are none of these). Whatever they hold, a template renders
without raising, to text (or, for a value template, to something the answer
can carry); an html template renders what the text template renders, escaped;
a value template's scalar value reads as the text template's text.
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import Markup, escape

from bench.rule_corpus import make_rules
from rules.content import ContentCompiler, RenderScope, TemplateProblem
from rules.definitions import SlotAction, Template
from rules.render import _json
from rules.runtime import to_text

ROOT = Path(__file__).resolve().parent.parent
COMPILER = ContentCompiler()
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


def _compiled(texts: list[str]) -> list[dict]:
    """Each text compiled as html, text and (where it is one) value template."""
    found = []
    for text in texts:
        compiled = {}
        for kind in ("html", "text", "value"):
            try:
                template = getattr(COMPILER, f"compile_{kind}")(text)
            except TemplateProblem:
                continue
            if template is not None:
                compiled[kind] = template
        if compiled:
            found.append(compiled)
    return found


KNOWN = _compiled(KNOWN_TEMPLATES)


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
    "number", "number(2)", "number(-1)", "percent", "plural(one='# x', other='# xs')",
    "plural(other='<#>')", "date", "date('short')", "date(5)",
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


# -- the properties -------------------------------------------------------------------
_SPECIAL = frozenset("<>&\"'")
# Filters whose output is Markup already (safe in html): not escaped again.
_MARKUP_FILTERS = ("tojson", "xmlattr")


def _has_markup(value: object) -> bool:
    if isinstance(value, Markup):
        return True
    if isinstance(value, dict):
        return any(map(_has_markup, value.values()))
    if isinstance(value, (list, tuple)):
        return any(map(_has_markup, value))
    return False


def _renders_well(compiled: dict, variables: dict, locale, timezone) -> None:
    """What any template keeps, whatever the variables hold."""
    outputs = {}
    for kind, template in compiled.items():
        errors, total = template.errors, COMPILER.render_errors
        out = template.render(variables, locale, timezone)
        failed = template.errors - errors
        assert failed in (0, 1) and COMPILER.render_errors - total == failed
        if failed:
            assert out == ("" if kind != "value" else None) and template.last_error
        if kind == "value":
            orjson.dumps(out)  # the answer can carry it
        else:
            assert type(out) is str, (kind, template.source, out)
        outputs[kind] = (out, failed)
    html, text = outputs.get("html"), outputs.get("text")
    source = next(iter(compiled.values())).source
    if html and text and not _has_markup(variables) and not any(
            name in source for name in _MARKUP_FILTERS):
        if not (_SPECIAL & set(_literal_text(source))):
            # Escaping is the one difference: a value shows as text in both.
            assert html[0] == str(escape(text[0])), (source, html, text)
    value = outputs.get("value")
    if value and text and value[0].__class__ in (str, bool, int, float):
        # A scalar (inside lists, missing values and objects read otherwise in text).
        assert to_text(value[0]).strip() == text[0].strip(), (source, value, text)


def _literal_text(source: str) -> str:
    """The template's text outside `{{ }}` and `{# #}` (generated templates have no `{% %}`)."""
    out, rest = [], source
    while rest:
        starts = [i for i in (rest.find("{{"), rest.find("{#")) if i >= 0]
        if not starts:
            out.append(rest)
            break
        start = min(starts)
        out.append(rest[:start])
        end = rest.find("}}" if rest[start + 1] == "{" else "#}", start)
        rest = rest[end + 2:] if end >= 0 else ""
    return "".join(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VARIABLES, LOCALES, ZONES)
def test_known_templates_render_well(variables, locale, timezone):
    for compiled in KNOWN:
        _renders_well(compiled, variables, locale, timezone)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(simple_templates(), VARIABLES, LOCALES, ZONES)
def test_generated_templates_render_well(text, variables, locale, timezone):
    compiled = _compiled([text])
    assert compiled and {"html", "text"} <= compiled[0].keys()
    _renders_well(compiled[0], variables, locale, timezone)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EXPRESSIONS, min_size=1, max_size=3), VARIABLES)
def test_generated_value_templates_read_as_their_text(expressions, variables):
    for expression in expressions:
        compiled = _compiled([f" {{{{ {expression} }}}} "])
        assert compiled and "value" in compiled[0]
        _renders_well(compiled[0], variables, "de", None)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(KNOWN), min_size=1, max_size=8), VARIABLES, LOCALES, ZONES)
def test_one_answers_templates_share_a_scope_as_if_alone(templates, variables, locale, timezone):
    """Templates of one answer share a scope (one jinja context per escaping mode): each
    renders what it renders on its own."""
    scope = RenderScope(variables, locale, timezone)
    for compiled in templates:
        for template in compiled.values():
            shared = template.render_in(scope)
            alone = template.render(variables, locale, timezone)
            assert shared == alone or (shared != shared and alone != alone), template.source


def test_escaping_and_missing_values():
    """Spot checks of what the properties state, readable when they fail."""
    template = COMPILER.compile_html('<a title="{{ v }}">{{ w.items }}</a>')
    variables = {"v": "\" onclick='x' & <b>", "w": {"items": Markup("<i>kept</i>")}}
    assert template.render(variables) == (
        '<a title="&#34; onclick=&#39;x&#39; &amp; &lt;b&gt;"><i>kept</i></a>')
    assert COMPILER.compile_html("[{{ missing.deeper }}]").render({}) == "[]"
    assert COMPILER.compile_text("{{ d.values }}").render({"d": {"a": 1}}) == ""  # dict.values
    assert COMPILER.compile_text("{{ d.values }}").render({"d": {"values": [1]}}) == "[1]"
    assert COMPILER.compile_text("{{ x | default('friend') }}").render({"x": None}) == "friend"
    assert COMPILER.compile_html("{{ x | upper }}!").render({"x": "<b>"}) == "&lt;B&gt;!"
    assert COMPILER.compile_value("{{ x.items }}").render({"x": {"items": [1, {"a": 2}]}}) == [
        1, {"a": 2}]
    assert COMPILER.compile_text("{{ n }} {{ t }} {{ l }}").render(
        {"n": 2.5, "t": True, "l": ["a", 1]}) == '2.5 true ["a",1]'


@pytest.mark.parametrize(("text", "expected"), [
    ("{{ x ~ y }}", "abc"), ("{{ x[1:2] }}", "b"), ("{{ x | join(',') }}", "a,b"),
    ("{% if x %}<{{ x }}>{% endif %}", "<ab>"), ("{{ range(3) | list }}", "[0,1,2]"),
])
def test_templates_beyond_plain_outputs_render(text, expected):
    assert COMPILER.compile_text(text).render({"x": "ab", "y": "c"}) == expected


def test_each_answer_gets_its_own_json_content():
    """Literal parts of json slot content are copied per answer, never shared."""
    content = {"products": Template("{{ p }}", COMPILER.compile_value("{{ p }}")),
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
