"""Content templates (rules/content*.py): jinja2 sandbox, escaping, locale filters, problems."""

from __future__ import annotations

import html
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.content import ContentCompiler, RenderScope, TemplateProblem

NBSP = "\xa0"  # babel's separator between amount and currency in de/fr
NNBSP = "\u202f"  # French thousands separator, English before AM/PM
# 2024-03-05 14:30:00 UTC, in milliseconds (how the edge stores timestamps)
MOMENT_MS = int(datetime(2024, 3, 5, 14, 30, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def compiler() -> ContentCompiler:
    return ContentCompiler()


def html_of(compiler: ContentCompiler, text: str, variables: dict | None = None, **options):
    return compiler.compile_html(text).render(variables or {}, **options)


def text_of(compiler: ContentCompiler, text: str, variables: dict | None = None, **options):
    return compiler.compile_text(text).render(variables or {}, **options)


def problem_of(compiler: ContentCompiler, text: str) -> TemplateProblem:
    with pytest.raises(TemplateProblem) as caught:
        compiler.compile_html(text)
    with pytest.raises(TemplateProblem):
        compiler.compile_text(text)
    return caught.value


# -- problems at compile time ---------------------------------------------------
def test_syntax_error_reports_its_line(compiler):
    problem = problem_of(compiler, "<h2>\n  Hello {{ traits.name }}\n  {{ traits.name }\n</h2>")
    assert problem.line == 3
    assert problem.message == "unexpected '}'"
    assert problem.column >= 1
    assert isinstance(problem, Exception)


def test_unclosed_block_reports_the_line_of_the_bad_tag(compiler):
    problem = problem_of(compiler, "a\n\n{% if x %}\n{% endfor %}")
    assert problem.line == 4
    assert "endfor" in problem.message


def test_lexer_error_has_line_and_column(compiler):
    problem = problem_of(compiler, "first line\n  {{ 'unclosed }}")
    assert (problem.line, problem.column) == (2, 6)
    assert problem.message == "unexpected char \"'\""


def test_unknown_filter_is_reported_with_line_and_column(compiler):
    problem = problem_of(compiler, "a\nb\nTotal: {{ cart.value | moneyy }}")
    assert (problem.line, problem.column, problem.message) == (3, 24, "unknown filter 'moneyy'")


def test_unknown_filter_inside_if_is_reported_too(compiler):
    # jinja itself only fails when such a branch runs.
    problem = problem_of(compiler, "{% if x %}\n{{ x | nope }}\n{% endif %}")
    assert (problem.line, problem.message) == (2, "unknown filter 'nope'")


def test_unknown_test_is_reported(compiler):
    problem = problem_of(compiler, "{% if x is fooo %}y{% endif %}")
    assert (problem.line, problem.column, problem.message) == (1, 12, "unknown test 'fooo'")


@pytest.mark.parametrize(
    "text, words",
    [
        ("{{ traits.bio | safe }}", "unknown filter 'safe'"),
        ("{% filter safe %}{{ x }}{% endfilter %}", "unknown filter 'safe'"),
        ("{% autoescape false %}{{ x }}{% endautoescape %}", "'autoescape' blocks"),
        ("{% include 'other.html' %}", "'include' is not available"),
        ("{% extends 'base.html' %}", "'extends' is not available"),
        ("{% import 'm.html' as m %}", "'import' is not available"),
    ],
)
def test_escaping_cannot_be_turned_off_and_nothing_is_loaded(compiler, text, words):
    assert words in problem_of(compiler, text).message


def test_problems_found_while_generating_code_are_reported(compiler):
    problem = problem_of(compiler, "{% block a %}{% endblock %}\n{% block a %}{% endblock %}")
    assert problem.message == "block 'a' defined twice"


def test_value_template_problems_are_reported(compiler):
    with pytest.raises(TemplateProblem) as caught:
        compiler.compile_value("{{ profile.recent | nope }}")
    assert caught.value.message == "unknown filter 'nope'"


# -- escaping -------------------------------------------------------------------
SCRIPT = "<script>alert(1)</script>"


def test_html_template_escapes_profile_values(compiler):
    out = html_of(compiler, "<p>Hi {{ traits.name }}</p>", {"traits": {"name": SCRIPT}})
    assert out == "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;</p>"


def test_html_template_escapes_quotes_inside_attributes(compiler):
    value = "\" onmouseover=\"alert(1)' x='"
    out = html_of(compiler, '<a title="{{ v }}" data-x=\'{{ v }}\'>x</a>', {"v": value})
    assert out == (
        '<a title="&#34; onmouseover=&#34;alert(1)&#39; x=&#39;" '
        "data-x='&#34; onmouseover=&#34;alert(1)&#39; x=&#39;'>x</a>"
    )


def test_html_escapes_filter_output_and_json(compiler):
    variables = {"traits": {"name": SCRIPT, "tags": ["<b>"]}}
    assert html_of(compiler, "{{ traits.name | upper }}", variables) == (
        "&lt;SCRIPT&gt;ALERT(1)&lt;/SCRIPT&gt;"
    )
    assert html_of(compiler, "{{ traits.tags }}", variables) == "[&#34;&lt;b&gt;&#34;]"
    assert html_of(compiler, "{{ traits.tags | join(', ') }}", variables) == "&lt;b&gt;"
    assert "<" not in html_of(compiler, "{{ traits.name | striptags }}", {"traits": {
        "name": "&lt;script&gt;"}})


def test_text_template_keeps_the_literal_text(compiler):
    out = text_of(compiler, "Hi {{ traits.name }}", {"traits": {"name": SCRIPT}})
    assert out == "Hi " + SCRIPT


def test_template_literal_html_is_kept(compiler):
    assert html_of(compiler, "<b>{{ 'x' }}</b>") == "<b>x</b>"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_html_escaping_round_trips_any_text(value):
    out = _PROPERTY_COMPILER_HTML.render({"v": value})
    assert "<" not in out
    assert html.unescape(out) == str(value)
    assert _PROPERTY_COMPILER_TEXT.render({"v": value}) == value


_PROPERTY_COMPILER = ContentCompiler()
_PROPERTY_COMPILER_HTML = _PROPERTY_COMPILER.compile_html("{{ v }}")
_PROPERTY_COMPILER_TEXT = _PROPERTY_COMPILER.compile_text("{{ v }}")


# -- values, missing values, defaults ---------------------------------------------
def test_values_read_as_text(compiler):
    variables = {"n": None, "t": True, "f": False, "i": 3, "x": 59.5, "l": [1, "a"], "d": {"k": 1}}
    out = text_of(compiler, "{{ n }}|{{ t }}|{{ f }}|{{ i }}|{{ x }}|{{ l }}|{{ d }}", variables)
    assert out == '|true|false|3|59.5|[1,"a"]|{"k":1}'
    assert text_of(compiler, "{{ none }}|{{ true }}|{{ [1, 'a'] }}") == '|true|[1,"a"]'


def test_missing_values_render_empty_and_take_defaults(compiler):
    variables = {"traits": {"nick": None, "first_name": "Ada"}}
    assert text_of(compiler, "[{{ traits.age }}]", variables) == "[]"
    assert text_of(compiler, "[{{ nothing }}]", variables) == "[]"
    template = "Hi {{ traits.first_name | default('friend') }}"
    assert text_of(compiler, template, variables) == "Hi Ada"
    assert text_of(compiler, template, {"traits": {}}) == "Hi friend"
    assert text_of(compiler, template, {}) == "Hi friend"
    # null counts as missing, as everywhere in the rules language
    assert text_of(compiler, "{{ traits.nick | d('you') }}", variables) == "you"
    assert text_of(compiler, "{{ traits.x | default('a', true) }}", {"traits": {"x": ""}}) == "a"


def test_chained_missing_attributes_are_empty_and_false(compiler):
    template = "[{{ traits.address.city }}]{% if traits.address.city %}yes{% else %}no{% endif %}"
    assert text_of(compiler, template, {"traits": {}}) == "[]no"
    assert text_of(compiler, template, {}) == "[]no"
    assert text_of(compiler, template, {"traits": {"address": {"city": "Oslo"}}}) == "[Oslo]yes"
    assert text_of(compiler, "{{ traits['a']['b'].c | default('-') }}", {"traits": 5}) == "-"
    assert text_of(compiler, "{% for x in traits.nothing %}{{ x }}{% endfor %}.", {}) == "."


def test_dict_keys_come_before_dict_methods(compiler):
    variables = {"cart": {"items": [{"sku": "a"}, {"sku": "b"}], "values": 2}}
    template = "{% for item in cart.items %}{{ item.sku }}{% endfor %} {{ cart.items | length }}"
    assert text_of(compiler, template, variables) == "ab 2"
    assert text_of(compiler, "{{ cart.values }}", variables) == "2"
    # without such a key the method still works
    out = text_of(compiler, "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {
        "d": {"a": 1, "b": 2}})
    assert out == "a=1;b=2;"


def test_set_loops_and_conditionals(compiler):
    template = (
        "{% set name = traits.first_name | default('friend') | title %}"
        "Hi {{ name }}: "
        "{% for p in recent_products[:2] %}{{ p.name }}{% if not loop.last %}, {% endif %}"
        "{% endfor %}"
        "{% if cart.items | length > 1 %} ({{ cart.items | length }} in cart){% endif %}"
    )
    variables = {
        "traits": {"first_name": "ada"},
        "recent_products": [{"name": "Shoe"}, {"name": "Sock"}, {"name": "Hat"}],
        "cart": {"items": [1, 2]},
    }
    assert html_of(compiler, template, variables) == "Hi Ada: Shoe, Sock (2 in cart)"


def test_jinja_globals_work(compiler):
    assert text_of(compiler, "{% for i in range(3) %}{{ i }}{% endfor %}") == "012"
    template = (
        "{% set ns = namespace(total=0) %}"
        "{% for p in products %}{% set ns.total = ns.total + p.price %}{% endfor %}{{ ns.total }}"
    )
    assert text_of(compiler, template, {"products": [{"price": 1}, {"price": 2}]}) == "3"
    assert text_of(compiler, "{{ dict(a=1) }}") == '{"a":1}'
    out = text_of(compiler, "{{ 1234.5 | money('EUR') }}{{ range(2) | list }}")
    assert out == "€1,234.50[0,1]"


def test_variables_lists_the_names_a_template_reads(compiler):
    template = compiler.compile_html(
        "{% set x = 1 %}{{ x }}{{ traits.first_name }}"
        "{% for p in recent_products %}{{ p.name }}{{ loop.index }}{% endfor %}"
        "{% for i in range(2) %}{{ i }}{% endfor %}{{ aggregates.views_7d | number }}"
    )
    assert template.variables == {"traits", "recent_products", "aggregates"}
    assert compiler.compile_text("plain").variables == frozenset()
    assert compiler.compile_text("{{ cart.value | money }}").variables == {"cart", "currency"}
    assert compiler.compile_text("{{ cart.value | money('EUR') }}").variables == {"cart"}
    assert compiler.compile_value("{{ cross_sell }}").variables == {"cross_sell"}


def test_non_dict_variables_read_as_empty(compiler):
    template = compiler.compile_text("[{{ traits.a }}]")
    assert template.render(None) == "[]"  # type: ignore[arg-type]
    assert template.render([1, 2]) == "[]"  # type: ignore[arg-type]


# -- raw values -------------------------------------------------------------------
def test_value_template_keeps_lists_and_dicts(compiler):
    products = [{"id": "p1", "price": 10.5}, {"id": "p2", "tags": ["a"]}]
    template = compiler.compile_value("  {{ profile.recent_products }} ")
    assert template is not None and template.kind == "value"
    assert template.render({"profile": {"recent_products": products}}) is products
    info = {"a": {"b": [1, None, True]}}
    assert compiler.compile_value("{{ traits.info }}").render({"traits": {"info": info}}) is info


def test_value_template_scalars_and_missing(compiler):
    variables = {"traits": {"age": 41, "name": "Ada"}}
    assert compiler.compile_value("{{ traits.age + 1 }}").render(variables) == 42
    assert compiler.compile_value("{{ traits.name }}").render(variables) == "Ada"
    assert compiler.compile_value("{{ traits.missing }}").render(variables) is None
    assert compiler.compile_value("{{ traits.missing.deeper }}").render({}) is None
    assert compiler.compile_value("{{ (1, 2) }}").render({}) == [1, 2]
    assert compiler.compile_value("{{ traits.missing | default([]) }}").render({}) == []


def test_value_template_never_returns_what_json_cannot_hold(compiler):
    variables = {"traits": {"big": 2**70, "name": "x"}}
    assert compiler.compile_value("{{ traits.big }}").render(variables) is None
    assert compiler.compile_value("{{ traits.get }}").render({"traits": {}}) is None
    assert compiler.compile_value("{{ [traits.get, 1, traits.nope] }}").render(
        {"traits": {}}) == [None, 1, None]
    assert compiler.compile_value("{{ traits | tojson }}").render(variables).__class__ is str


@pytest.mark.parametrize("text", ["plain", "x {{ a }}", "{{ a }}{{ b }}", "{{ a }} {{ b }}",
                                  "{% if a %}{{ a }}{% endif %}", "{{ a }}!"])
def test_compile_value_is_only_for_a_single_placeholder(compiler, text):
    assert compiler.compile_value(text) is None


# -- the sandbox ------------------------------------------------------------------
@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ traits.__dict__ }}",
        "{{ traits.__class__ }}",
        "{{ traits.get.__self__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ range.__self__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ '{0.__class__}'.format(traits) }}",
        "{{ traits | attr('__class__') }}",
        "{{ lipsum.__globals__ }}",
        "{{ traits.get }}",
        "{{ self }}",
        "{{ range }}{{ dict }}{{ namespace }}",
        "{% for x in [1] %}{{ loop }}{% endfor %}",
    ],
)
def test_sandbox_hides_python_internals(compiler, template):
    traits = {"name": "Ada"}
    for compile_ in (compiler.compile_html, compiler.compile_text):
        out = compile_(template).render({"traits": traits})
        assert "class" not in out and "module" not in out and "function" not in out, out
        assert "dict" not in out and "builtins" not in out and "0x" not in out, out
        assert "Template" not in out and "Loop" not in out and "range" not in out, out
    assert traits == {"name": "Ada"}


@pytest.mark.parametrize(
    "template",
    [
        "{{ traits.update({'a': 1}) }}",
        "{{ traits.pop('name') }}",
        "{{ traits.setdefault('a', 1) }}",
        "{{ traits.clear() }}",
        "{{ profile.recent_products.append(1) }}",
        "{{ profile.recent_products.sort() }}",
        "{% set traits.name = 'x' %}",
        "{% for p in profile.recent_products %}{{ p.update({'id': 0}) }}{% endfor %}",
    ],
)
def test_templates_cannot_change_the_data(compiler, template):
    traits = {"name": "Ada"}
    profile = {"recent_products": [{"id": 2}, {"id": 1}]}
    before = compiler.render_errors
    compiled = compiler.compile_html(template)
    assert compiled.render({"traits": traits, "profile": profile}) == ""
    assert traits == {"name": "Ada"}
    assert profile == {"recent_products": [{"id": 2}, {"id": 1}]}
    assert compiled.errors == 1 and compiled.last_error
    assert compiler.render_errors == before + 1


def test_a_failing_template_renders_empty_and_is_counted(compiler):
    template = compiler.compile_text("Hi {{ traits.name.upper(1, 2) }}")
    assert template.render({"traits": {"name": "ada"}}) == ""
    assert template.errors == 1
    assert template.render({"traits": {"name": "ada"}}) == ""
    assert template.errors == 2
    value = compiler.compile_value("{{ traits.name.upper(1, 2) }}")
    assert value.render({"traits": {"name": "ada"}}) is None
    assert value.errors == 1


def test_huge_repetition_from_profile_data_is_refused(compiler):
    assert text_of(compiler, "{{ '-' * n }}", {"n": 10**9}) == ""
    assert text_of(compiler, "{{ '-' * n }}", {"n": 3}) == "---"
    assert text_of(compiler, "{{ [0] * n }}", {"n": 10**9}) == ""
    assert text_of(compiler, "{{ 2 ** n }}", {"n": 10**9}) == ""
    assert text_of(compiler, "{{ 2 ** n }}", {"n": 10}) == "1024"
    assert text_of(compiler, "{{ range(10**9) | length }}") == ""


# -- locale filters -------------------------------------------------------------------
@pytest.mark.parametrize(
    "locale, expected",
    [
        ("en", "€1,234.50"),
        ("de", f"1.234,50{NBSP}€"),
        ("de-DE", f"1.234,50{NBSP}€"),
        ("fr", f"1{NNBSP}234,50{NBSP}€"),
        ("fr_FR", f"1{NNBSP}234,50{NBSP}€"),
    ],
)
def test_money_in_the_persons_locale(compiler, locale, expected):
    assert text_of(compiler, "{{ 1234.5 | money('EUR') }}", locale=locale) == expected
    assert html_of(compiler, "{{ 1234.5 | money('EUR') }}", locale=locale) == expected


def test_money_currency_comes_from_the_argument_a_variable_or_usd(compiler):
    template = compiler.compile_text("{{ cart.value | money }}")
    assert template.render({"cart": {"value": 1234.5}}) == "$1,234.50"
    assert template.render({"cart": {"value": 20}, "currency": "EUR"}, "de") == f"20,00{NBSP}€"
    assert template.render({"cart": {"value": 20}, "currency": "jpy"}, "en") == "¥20"
    assert template.render({"cart": {"value": 20}, "currency": "<b>"}, "en") == ""
    assert text_of(compiler, "{{ 5 | money('EURO') }}") == ""


@pytest.mark.parametrize("value", ["12.50", None, True, [], {}, float("nan"), float("inf")])
def test_money_of_a_non_number_is_empty(compiler, value):
    assert text_of(compiler, "[{{ v | money }}]", {"v": value}) == "[]"
    assert text_of(compiler, "[{{ v | number }}{{ v | percent }}]", {"v": value}) == "[]"
    assert text_of(compiler, "[{{ missing | money }}]") == "[]"


@pytest.mark.parametrize(
    "locale, plain, fixed, percent",
    [
        ("en", "1,234.568", "1,234.50", "26%"),
        ("de", "1.234,568", "1.234,50", f"26{NBSP}%"),
        ("fr", f"1{NNBSP}234,568", f"1{NNBSP}234,50", f"26{NBSP}%"),
    ],
)
def test_number_and_percent_in_the_persons_locale(compiler, locale, plain, fixed, percent):
    assert text_of(compiler, "{{ 1234.5678 | number }}", locale=locale) == plain
    assert text_of(compiler, "{{ 1234.5 | number(2) }}", locale=locale) == fixed
    assert text_of(compiler, "{{ 0.256 | percent }}", locale=locale) == percent
    assert text_of(compiler, "{{ 7 | number(0) }}", locale=locale) == "7"
    assert text_of(compiler, "{{ 7 | number(-1) }}{{ 7 | number('2') }}", locale=locale) == ""


@pytest.mark.parametrize(
    "locale, day, moment",
    [
        ("en", "Mar 5, 2024", f"Mar 5, 2024, 3:30:00{NNBSP}PM"),
        ("de", "05.03.2024", "05.03.2024, 15:30:00"),
        ("fr", "5 mars 2024", "5 mars 2024, 15:30:00"),
    ],
)
def test_dates_in_the_persons_locale_and_zone(compiler, locale, day, moment):
    options = {"locale": locale, "timezone": "Europe/Berlin"}
    variables = {"order": {"ms": MOMENT_MS, "s": MOMENT_MS // 1000, "iso": "2024-03-05T14:30:00Z"}}
    for field in ("ms", "s", "iso"):
        assert text_of(compiler, f"{{{{ order.{field} | date }}}}", variables, **options) == day
        assert text_of(compiler, f"{{{{ order.{field} | datetime }}}}", variables, **options) == (
            moment
        )


def test_date_formats_and_zones(compiler):
    variables = {"ts": MOMENT_MS}
    assert text_of(compiler, "{{ ts | date('short') }}", variables, locale="de") == "05.03.24"
    assert text_of(compiler, "{{ ts | date('long') }}", variables, locale="de") == "5. März 2024"
    assert text_of(compiler, "{{ ts | date('d MMMM') }}", variables, locale="fr") == "5 mars"
    # late evening UTC is already the next day in Tokyo
    late = {"ts": "2024-03-05T22:00:00+00:00"}
    assert text_of(compiler, "{{ ts | date('yyyy-MM-dd') }}", late, timezone="Asia/Tokyo") == (
        "2024-03-06"
    )
    assert text_of(compiler, "{{ ts | date('yyyy-MM-dd') }}", late) == "2024-03-05"
    # a naive timestamp is UTC; a date alone is that day wherever the person is
    naive = {"ts": "2024-03-05T14:30:00"}
    assert text_of(compiler, "{{ ts | datetime('HH:mm') }}", naive, timezone="Europe/Berlin") == (
        "15:30"
    )
    day_only = {"ts": "2024-03-05"}
    assert text_of(compiler, "{{ ts | date }}", day_only, timezone="Pacific/Kiritimati") == (
        "Mar 5, 2024"
    )
    assert text_of(compiler, "{{ ts | datetime('d.M. HH:mm') }}", day_only) == "5.3. 00:00"
    # an unknown zone is UTC
    assert text_of(compiler, "{{ ts | datetime('HH:mm') }}", variables, timezone="Mars/Base") == (
        "14:30"
    )


# Vectors: (expression, locale, expected). Czech and Polish need more forms than English;
# a form the template leaves out (Polish "many" for 5, Czech "many" for 1.5) falls back
# to `other`. `#` is the count, in the locale's digits.
_ITEMS_EN = "plural(one='# item', other='# items')"
_ITEMS_CS = "plural(one='# položka', few='# položky', other='# položek')"
_ITEMS_PL = "plural(one='# produkt', few='# produkty', many='# produktów', other='# produktu')"
_ITEMS_PL_SHORT = "plural(one='# produkt', few='# produkty', other='# produktów')"
PLURAL_VECTORS = [
    (f"{{{{ 0 | {_ITEMS_EN} }}}}", "en", "0 items"),
    (f"{{{{ 1 | {_ITEMS_EN} }}}}", "en", "1 item"),
    (f"{{{{ 2 | {_ITEMS_EN} }}}}", "en", "2 items"),
    (f"{{{{ 1234 | {_ITEMS_EN} }}}}", "en", "1,234 items"),
    (f"{{{{ 1 | {_ITEMS_EN} }}}}", "en-GB,en;q=0.9", "1 item"),
    (f"{{{{ 1 | {_ITEMS_CS} }}}}", "cs", "1 položka"),
    (f"{{{{ 2 | {_ITEMS_CS} }}}}", "cs", "2 položky"),
    (f"{{{{ 4 | {_ITEMS_CS} }}}}", "cs_CZ", "4 položky"),
    (f"{{{{ 5 | {_ITEMS_CS} }}}}", "cs", "5 položek"),
    (f"{{{{ 22 | {_ITEMS_CS} }}}}", "cs", "22 položek"),
    (f"{{{{ 1.5 | {_ITEMS_CS} }}}}", "cs", "1,5 položek"),
    (f"{{{{ 1 | {_ITEMS_PL} }}}}", "pl", "1 produkt"),
    (f"{{{{ 3 | {_ITEMS_PL} }}}}", "pl", "3 produkty"),
    (f"{{{{ 5 | {_ITEMS_PL} }}}}", "pl", "5 produktów"),
    (f"{{{{ 22 | {_ITEMS_PL} }}}}", "pl-PL", "22 produkty"),
    (f"{{{{ 1.5 | {_ITEMS_PL} }}}}", "pl", "1,5 produktu"),
    (f"{{{{ 5 | {_ITEMS_PL_SHORT} }}}}", "pl", "5 produktów"),
    (f"{{{{ 2 | {_ITEMS_CS} }}}}", "en", "2 položek"),
    (f"{{{{ 1 | {_ITEMS_EN} }}}}", "xx", "1 item"),
    ("{{ 3 | plural(other='several') }}", "cs", "several"),
    ("{{ 1 | plural(one='# kus', other='# kusů') }} / {{ 1 | plural(other='#') }}", "cs",
     "1 kus / 1"),
    (f"[{{{{ '3' | {_ITEMS_EN} }}}}{{{{ none | {_ITEMS_EN} }}}}{{{{ true | {_ITEMS_EN} }}}}]",
     "en", "[]"),
    ("[{{ 1 | plural(one=none, other='# left') }}{{ 2 | plural(other=none) }}]", "en", "[1 left]"),
]


@pytest.mark.parametrize("expression, locale, expected", PLURAL_VECTORS)
def test_plural_picks_the_form_of_the_persons_language(compiler, expression, locale, expected):
    assert text_of(compiler, expression, locale=locale) == expected
    assert html_of(compiler, expression, locale=locale) == html.escape(expected, quote=False)


def test_plural_counts_a_variable_and_escapes_its_forms_in_html(compiler):
    cart = {"items": [{"quantity": 2}, {"quantity": 1}]}
    template = "{{ cart['items'] | sum(attribute='quantity') | plural(one='# <b>', other='# <i>') }}"
    assert text_of(compiler, template, {"cart": cart}) == "3 <i>"
    assert html_of(compiler, template, {"cart": cart}) == "3 &lt;i&gt;"


@pytest.mark.parametrize(
    "template, message",
    [
        ("{{ n | plural(one='x') }}", "plural needs the form other, which every language uses"),
        ("{{ n | plural('x', other='y') }}",
         "plural takes its forms by name (zero, one, two, few, many, other)"),
        ("{{ n | plural(single='x', other='y') }}",
         "plural takes its forms by name (zero, one, two, few, many, other), not 'single'"),
    ],
)
def test_plural_calls_that_cannot_work_are_problems_at_load(compiler, template, message):
    problem = problem_of(compiler, "a\n" + template)
    assert (problem.line, problem.column, problem.message) == (2, 8, message)


@pytest.mark.parametrize("value", ["yesterday", "", True, None, [], float("nan"), 10**30])
def test_bad_dates_are_empty(compiler, value):
    assert text_of(compiler, "[{{ v | date }}{{ v | datetime }}]", {"v": value}) == "[]"
    assert text_of(compiler, "[{{ v | date(5) }}]", {"v": MOMENT_MS}) == "[]"


@pytest.mark.parametrize("locale", [None, "", "xx", "??", 123, "x" * 500, "en_US_POSIX!"])
def test_unknown_locales_fall_back_to_english(compiler, locale):
    template = compiler.compile_text("{{ 1234.5 | money('EUR') }} {{ ts | date }}")
    out = template.render({"ts": MOMENT_MS}, locale)  # type: ignore[arg-type]
    assert out == "€1,234.50 Mar 5, 2024"


def test_locale_headers_and_regions(compiler):
    template = compiler.compile_text("{{ 1234.5 | number }}")
    assert template.render({}, "de-DE,de;q=0.9,en;q=0.8") == "1.234,5"
    # CLDR 48 (babel 2.19, as locked) groups Swiss German digits with an ASCII apostrophe.
    assert template.render({}, "de-CH") == "1'234.5"
    assert template.render({}, "de_XX") == "1.234,5"


def test_filters_reach_the_locale_inside_loops_and_map(compiler):
    template = compiler.compile_text(
        "{% for p in products %}{{ p.price | money('EUR') }};{% endfor %}"
        "{{ products | map(attribute='price') | map('money', 'EUR') | join(' / ') }}"
    )
    products = [{"price": 1.5}, {"price": 1000}]
    assert template.render({"products": products}, "de") == (
        f"1,50{NBSP}€;1.000,00{NBSP}€;1,50{NBSP}€ / 1.000,00{NBSP}€"
    )


_TEMPLATE_PIECES = st.sampled_from(
    ["{{", "}}", "{%", "%}", "{#", "#}", " ", "\n", "x", "traits", ".", "|", "money", "date",
     "default", "(", ")", "'", '"', "if", "endif", "for", "in", "endfor", "set", "=", "1", "[",
     "]", ",", "__class__", "*", "block", "endblock", "-", "~", "is", "not", "raw", "<b>"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_TEMPLATE_PIECES, max_size=20).map("".join), st.sampled_from([None, "de", "x"]))
def test_any_text_compiles_or_gives_a_problem_and_rendering_never_raises(text, locale):
    variables = {"traits": {"name": "<b>", "n": 3}, "x": [1, {"a": None}], "n": 2**70}
    for compile_ in (_PROPERTY_COMPILER.compile_html, _PROPERTY_COMPILER.compile_text,
                     _PROPERTY_COMPILER.compile_value):
        try:
            template = compile_(text)
        except TemplateProblem as problem:
            assert problem.line >= 1 and problem.column >= 1 and problem.message
            continue
        if template is not None:
            template.render(variables, locale, "Europe/Paris")


def test_templates_of_one_answer_share_a_scope_without_leaking(compiler) -> None:
    """One scope per answer: escaping stays per template, and what one template sets with
    `{% set %}` (or a value template's result) is gone for the next."""
    scope = RenderScope({"v": "<b>", "items": ["<i>", "x"]}, "de", "Europe/Prague")
    in_order = [
        (compiler.compile_html("{{ v }}|{{ items | join(',') }}"), "&lt;b&gt;|&lt;i&gt;,x"),
        (compiler.compile_text("{{ v }}|{{ items | join(',') }}"), "<b>|<i>,x"),
        (compiler.compile_text("{% set x = 'one' %}{{ x }}"), "one"),
        (compiler.compile_text("{{ x | default('gone') }}"), "gone"),
        (compiler.compile_value("{{ items }}"), ["<i>", "x"]),
        (compiler.compile_text("{{ result | default('gone') }}"), "gone"),
        (compiler.compile_html("{% set v = 'mine' %}{{ v }}"), "mine"),
        (compiler.compile_html("{{ v }}"), "&lt;b&gt;"),
        (compiler.compile_text("{{ 1234.5 | number }}"), "1.234,5"),
    ]
    assert [template.render_in(scope) for template, _ in in_order] == [
        expected for _, expected in in_order]
