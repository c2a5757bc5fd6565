"""Personal content: slot, message and push templates rendered with the person's data.

Templates use a subset of Jinja2 and run in jinja2's sandbox
(`ImmutableSandboxedEnvironment`): no access to Python internals (names
starting with `_`), no calls that mutate lists or dicts, so a template can
never change the profile it reads.  Every template is parsed and compiled once,
when the rules load; `CompiledTemplate.render` runs per answer.

Escaping, the one rule to remember:

- **html** templates (`compile_html`, slot `html`) are autoescaped: every
  `{{ ... }}` value is HTML-escaped, quotes included, so a profile value such as
  `<script>` or `" onclick="` shows as text in element content and inside
  quoted attributes.  The literal text of the template is the rule author's
  HTML and is kept as written.  There is no way around the escaping: the
  `safe` filter and `{% autoescape %}` blocks are not available.
- **text** templates (`compile_text`: message titles and bodies, push texts,
  strings mixing text and placeholders in JSON content) are plain text and are
  not escaped: the browser snippet inserts them with `textContent`, the mobile
  SDKs as plain strings, so `<script>` also shows as text there.  Whoever
  inserts a text template's output into HTML must escape it.
- **value** templates (`compile_value`: a JSON string that is exactly one
  `{{ expression }}`) give the raw value, e.g. a list stays a list.

Values become text like this: null (and missing values) → empty; strings as
they are; booleans `true`/`false`; numbers as Python writes them; lists and
objects as compact JSON; anything else (a method, a loop object) → empty.
A dict's keys come before its methods, so `cart.items` is the cart's `items`
list, not `dict.items`.

Missing values never fail: `traits.address.city` is empty when `address` is
missing, and `default` (`d`) replaces missing *and null* values
(`{{ traits.first_name | default("friend") }}`).

Rendering never raises: an error inside a template (a sandbox violation, a
filter given a value it cannot handle, ...) makes that template render as ""
(None for value templates) and is counted in `CompiledTemplate.errors` and
`ContentCompiler.render_errors`.  The locale and time zone of the person are
passed to `render`; the `money`, `number`, `percent`, `date` and `datetime`
filters (rules.content_filters) format with babel (CLDR) in that locale,
falling back to "en" and UTC.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson
from jinja2 import ChainableUndefined, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.meta import find_undeclared_variables
from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import pass_eval_context

from .content_filters import FILTERS, LOCALE_VARIABLE, PLURAL_FORMS, TIMEZONE_VARIABLE
from .runtime import to_text

__all__ = ["CompiledTemplate", "ContentCompiler", "RenderScope", "TemplateProblem", "RESERVED_VARIABLES"]

# Context variables the renderer adds for the filters; not reported in `variables`.
RESERVED_VARIABLES = frozenset({LOCALE_VARIABLE, TIMEZONE_VARIABLE})

# Template names choose the escaping: the environment is shared by all templates.
_HTML = "<html>"
_TEXT = "<text>"
_VALUE = "<value>"

# `x * n` where n comes from a profile must not build a huge string or list.
_MAX_REPEAT_LENGTH = 100_000
_MAX_INT_EXPONENT = 1_000

_NOT_ALLOWED_NODES: dict[type, str] = {
    nodes.Extends: "'extends' is not available: a template cannot load other templates",
    nodes.Include: "'include' is not available: a template cannot load other templates",
    nodes.Import: "'import' is not available: a template cannot load other templates",
    nodes.FromImport: "'import' is not available: a template cannot load other templates",
    nodes.EvalContextModifier: "'autoescape' blocks are not available: values are always escaped",
}
_FILTER_HINTS = {"safe": " (values are always escaped)"}


class TemplateProblem(Exception):
    """A template that cannot be compiled; `line` and `column` are 1-based, within the text."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"{line}:{column}: {message}")
        self.line = line
        self.column = column
        self.message = message


# -- environment --------------------------------------------------------------
class _Undefined(ChainableUndefined):
    """Missing values: empty text, false, and `missing.anything` is missing too."""

    __slots__ = ()


_PLAIN_KINDS = frozenset({str, bool, int, float, list, dict, tuple})


@pass_eval_context  # keeps jinja from folding constants, which it escapes before finalizing
def _finalize(eval_context: Any, value: Any) -> Any:
    """How a `{{ }}` value reads as text (before escaping in html templates)."""
    kind = value.__class__
    if value is None or kind in _PLAIN_KINDS:
        return to_text(value)  # the same reading as the rules language's
    if isinstance(value, (str, Undefined)):
        return value  # Markup and missing values: jinja's own handling
    return ""  # functions, classes, loop objects, ...: nothing of Python shows


def _autoescape(name: str | None) -> bool:
    return name == _HTML


_MISSING = object()
_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, with JSON objects' keys preferred over dict methods."""

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if obj.__class__ is dict:
            value = obj.get(attribute, _MISSING)
            if value is not _MISSING:
                return value
            if attribute not in _DICT_ATTRIBUTES:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if (
                    isinstance(sequence, (str, list, tuple))
                    and isinstance(count, int)
                    and len(sequence) * count > _MAX_REPEAT_LENGTH
                ):
                    raise SecurityError("repetition would be too long")
            return left * right
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and abs(right) > _MAX_INT_EXPONENT
            and left not in (-1, 0, 1)
        ):
            raise SecurityError("exponent is too large")
        return left**right


# -- compiled templates -------------------------------------------------------
class _Stats:
    __slots__ = ("errors",)

    def __init__(self) -> None:
        self.errors = 0


class CompiledTemplate:
    """One compiled template; immutable apart from its error counters."""

    __slots__ = (
        "source",
        "kind",
        "variables",
        "errors",
        "last_error",
        "_root",
        "_blocks",
        "_name",
        "_context_class",
        "_environment",
        "_stats",
        "_static",
    )

    def __init__(
        self,
        environment: _Environment,
        template: Any,
        source: str,
        kind: str,
        names: frozenset[str],
        stats: _Stats,
    ) -> None:
        self.source = source
        #: "html", "text" or "value"
        self.kind = kind
        #: top-level names the template reads (event, profile, traits, ...)
        self.variables = names - environment.globals.keys() - RESERVED_VARIABLES
        #: how many renders of this template failed (and gave "" or None)
        self.errors = 0
        #: "ExceptionType: message" of the latest failed render, for logs
        self.last_error: str | None = None
        self._environment = environment
        self._root = template.root_render_func
        self._blocks = template.blocks
        self._name = template.name
        self._context_class = environment.context_class
        self._stats = stats
        # Text without any jinja syntax renders to itself: most content is fixed copy,
        # and skipping jinja for it saves the work per render.
        plain = kind != "value" and not any(mark in source for mark in ("{{", "{%", "{#"))
        self._static: str | None = None
        if plain:
            self._static = self.render_in(RenderScope({}))

    def __repr__(self) -> str:
        return f"<CompiledTemplate {self.kind} {self.source[:40]!r}>"

    @property
    def static(self) -> str | None:
        """The text itself for a template without jinja syntax (it renders to that), else None."""
        return self._static

    def _failed(self, error: BaseException) -> None:
        self.errors += 1
        self._stats.errors += 1
        self.last_error = f"{type(error).__name__}: {error}"[:300]

    def render(
        self, variables: dict, locale: str | None = None, timezone: str | None = None
    ) -> Any:
        """The text (html/text templates) or value (value templates); never raises."""
        if self._static is not None:
            return self._static
        return self.render_in(RenderScope(variables, locale, timezone))

    def render_in(self, scope: RenderScope) -> Any:
        """Like render(), with the variables of a scope shared by one answer's templates."""
        if self._static is not None:
            return self._static
        context = scope.context_for(self)
        try:
            if self.kind == "value":
                for _ in self._root(context):
                    pass
                return _value_of(context.vars.get("result"))
            return "".join(self._root(context))
        except Exception as error:  # a bad profile value must not break the answer
            self._failed(error)
            return None if self.kind == "value" else ""
        finally:
            if context.vars:  # `{% set %}` at the top level: not for the next template
                context.vars.clear()
                context.exported_vars.clear()


class RenderScope:
    """One answer's variables, locale and time zone, shared by the templates it renders.

    Building a jinja context costs about as much as rendering a short template,
    so the templates of one answer share one context per escaping mode (the
    mode is part of jinja's evaluation context), made on first use. A template
    with blocks of its own gets its own context.
    """

    __slots__ = ("_variables", "_locale", "_timezone", "_parent", "_contexts")

    def __init__(self, variables: Any, locale: str | None = None,
                 timezone: str | None = None) -> None:
        self._variables = variables if variables.__class__ is dict else {}
        self._locale = locale
        self._timezone = timezone
        self._parent: dict[str, Any] | None = None
        self._contexts: dict[str | None, Any] | None = None

    def parent(self, environment: _Environment) -> dict[str, Any]:
        """The mapping jinja reads top-level names from; jinja never writes it."""
        parent = self._parent
        if parent is None:
            parent = self._parent = {
                **environment.globals,
                **self._variables,
                LOCALE_VARIABLE: self._locale,
                TIMEZONE_VARIABLE: self._timezone,
            }
        return parent

    def context_for(self, template: CompiledTemplate) -> Any:
        environment = template._environment
        parent = self.parent(environment)
        if template._blocks:
            return template._context_class(environment, parent, template._name, template._blocks)
        contexts = self._contexts
        if contexts is None:
            contexts = self._contexts = {}
        context = contexts.get(template._name)
        if context is None:
            context = contexts[template._name] = template._context_class(
                environment, parent, template._name, {})
        return context


def _value_of(value: Any) -> Any:
    """A value template's result as the answer carries it."""
    kind = value.__class__
    if kind is str or kind is bool or value is None:
        return value
    if kind is list or kind is dict:
        # The answer is written with orjson: what it can write is kept as it is.
        try:
            orjson.dumps(value)
        except orjson.JSONEncodeError:
            return _plain(value, 0)
        return value
    return _plain(value, 0)  # numbers, missing values, tuples, Markup, ...


_MAX_DEPTH = 32


def _plain(value: Any, depth: int) -> Any:
    """A JSON-ready copy of a value built by a template; what JSON cannot hold is null."""
    if value is None or isinstance(value, (bool, str)):
        return str(value) if isinstance(value, str) else value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= _MAX_DEPTH:
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item, depth + 1) for key, item in value.items()}
    return None


# -- the compiler ---------------------------------------------------------------
class ContentCompiler:
    """Compiles content templates; one shared sandboxed environment for all of them."""

    def __init__(self) -> None:
        environment = _Environment(
            undefined=_Undefined,
            autoescape=_autoescape,
            finalize=_finalize,
            auto_reload=False,
            cache_size=0,
        )
        environment.filters.pop("safe", None)
        environment.globals.pop("lipsum", None)
        environment.filters.update(FILTERS)
        self.environment = environment
        self._stats = _Stats()

    @property
    def render_errors(self) -> int:
        """Failed renders of all templates this compiler made."""
        return self._stats.errors

    def compile_html(self, text: str) -> CompiledTemplate:
        """A template whose `{{ }}` values are HTML-escaped."""
        return self._compile(text, _HTML, "html")

    def compile_text(self, text: str) -> CompiledTemplate:
        """A plain-text template: nothing is escaped."""
        return self._compile(text, _TEXT, "text")

    def compile_value(self, text: str) -> CompiledTemplate | None:
        """For text that is exactly one `{{ expression }}`: a template giving its raw value."""
        if not isinstance(text, str) or "{{" not in text:
            return None
        tree = self._parse(text)
        if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
            return None
        expressions = [
            node
            for node in tree.body[0].nodes
            if not (isinstance(node, nodes.TemplateData) and not node.data.strip())
        ]
        if len(expressions) != 1 or isinstance(expressions[0], nodes.TemplateData):
            return None
        variables = self._check(tree, text)
        body = nodes.Template(
            [nodes.Assign(nodes.Name("result", "store"), expressions[0], lineno=1)], lineno=1
        )
        body.set_environment(self.environment)
        return self._build(body, text, _VALUE, "value", variables)

    # -- internals --
    def _compile(self, text: str, name: str, kind: str) -> CompiledTemplate:
        if not isinstance(text, str):
            raise TemplateProblem(1, 1, "a template must be text")
        tree = self._parse(text)
        variables = self._check(tree, text)
        return self._build(tree, text, name, kind, variables)

    def _build(
        self, tree: nodes.Template, text: str, name: str, kind: str, variables: frozenset[str]
    ) -> CompiledTemplate:
        environment = self.environment
        try:
            code = environment.compile(tree, name=name)
        except TemplateSyntaxError as error:  # includes TemplateAssertionError
            raise _problem(error, text) from None
        template = environment.template_class.from_code(
            environment, code, environment.make_globals(None)
        )
        return CompiledTemplate(environment, template, text, kind, variables, self._stats)

    def _parse(self, text: str) -> nodes.Template:
        try:
            return self.environment.parse(text)
        except TemplateSyntaxError as error:
            raise _problem(error, text) from None

    def _check(self, tree: nodes.Template, text: str) -> frozenset[str]:
        """Refuse unknown filters and tests anywhere (jinja defers those inside `if`)."""
        environment = self.environment
        found: list[TemplateProblem] = []
        needs_currency = False
        for node in tree.find_all((nodes.Filter, nodes.Test, *_NOT_ALLOWED_NODES)):
            line = node.lineno or 1
            if isinstance(node, nodes.Filter):
                if node.name not in environment.filters:
                    hint = _FILTER_HINTS.get(node.name, "")
                    column = _column_of(text, line, rf"\|\s*({re.escape(node.name)})\b")
                    found.append(
                        TemplateProblem(line, column, f"unknown filter '{node.name}'{hint}")
                    )
                elif node.name == "money" and not node.args and not node.kwargs:
                    needs_currency = True
                elif node.name == "plural" and (problem := _plural_problem(node)):
                    column = _column_of(text, line, r"\|\s*(plural)\b")
                    found.append(TemplateProblem(line, column, problem))
            elif isinstance(node, nodes.Test):
                if node.name not in environment.tests:
                    pattern = rf"\bis\s+(?:not\s+)?({re.escape(node.name)})\b"
                    column = _column_of(text, line, pattern)
                    found.append(TemplateProblem(line, column, f"unknown test '{node.name}'"))
            else:
                message = next(m for t, m in _NOT_ALLOWED_NODES.items() if isinstance(node, t))
                found.append(TemplateProblem(line, 1, message))
        if found:
            raise min(found, key=lambda problem: (problem.line, problem.column))
        # jinja leaves the environment's globals out; they must reach the context too.
        try:
            undeclared = find_undeclared_variables(tree)  # runs jinja's code generator
        except TemplateSyntaxError as error:  # e.g. "block 'a' defined twice"
            raise _problem(error, text) from None
        names = undeclared | {
            node.name
            for node in tree.find_all(nodes.Name)
            if node.ctx == "load" and node.name in environment.globals
        }
        if needs_currency:
            names.add("currency")
        return frozenset(names)


def _plural_problem(node: nodes.Filter) -> str | None:
    """Why a `plural` call cannot work, found at load rather than as empty text later: its
    forms go by CLDR's names, and `other` is the one every language has."""
    names = [keyword.key for keyword in node.kwargs]
    unknown = [name for name in names if name not in PLURAL_FORMS]
    if node.args or node.dyn_args or node.dyn_kwargs or unknown:
        return (f"plural takes its forms by name ({', '.join(PLURAL_FORMS)})"
                + (f", not '{unknown[0]}'" if unknown else ""))
    if "other" not in names:
        return "plural needs the form other, which every language uses"
    return None


def _column_of(text: str, line: int, pattern: str) -> int:
    lines = text.split("\n")
    if 1 <= line <= len(lines):
        match = re.search(pattern, lines[line - 1])
        if match:
            return match.start(1) + 1
    return 1


_CHAR_AT = re.compile(r" at (\d+)$")


def _problem(error: TemplateSyntaxError, text: str) -> TemplateProblem:
    message = " ".join(str(error.message or "invalid template").split())
    line = error.lineno or 1
    column = 1
    name = re.fullmatch(r"No (filter|test) named '(.*)'\.", message)
    if name:
        return TemplateProblem(line, 1, f"unknown {name[1]} '{name[2]}'")
    position = _CHAR_AT.search(message)
    if position:  # the lexer says where: "unexpected char '\'' at 3"
        offset = int(position[1])
        if offset <= len(text):
            line = text.count("\n", 0, offset) + 1
            column = offset - (text.rfind("\n", 0, offset) + 1) + 1
            message = message[: position.start()]
    if message.endswith(".") and message.count(".") == 1:
        message = message[:-1]
    return TemplateProblem(line, column, message[:1].lower() + message[1:])
