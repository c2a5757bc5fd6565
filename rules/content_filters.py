"""The formatting filters templates call: money, number, percent, plural, date, datetime,
default.

They turn a value into text for the person reading it: amounts, numbers,
counted words and moments in the person's locale with babel (CLDR), moments in
the person's time zone, falling back to "en", USD and UTC; `default` replaces
missing and null values.  They need nothing of how jinja parses, compiles or
sandboxes a template, only the value and the locale and time zone the renderer
puts in the context, so they live apart from rules.content, which registers
`FILTERS` on its environment and fills in `LOCALE_VARIABLE` and
`TIMEZONE_VARIABLE`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, time, tzinfo
from functools import lru_cache
from typing import Any

from babel.core import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent
from jinja2.runtime import Undefined
from jinja2.utils import pass_context

from .localtime import zone_named

__all__ = ["FILTERS", "LOCALE_VARIABLE", "PLURAL_FORMS", "TIMEZONE_VARIABLE"]

DEFAULT_LOCALE = "en"
DEFAULT_CURRENCY = "USD"
# Context variables the renderer adds for the filters.
LOCALE_VARIABLE = "_locale"
TIMEZONE_VARIABLE = "_tz"

# A decimals argument from a profile must not ask babel for a huge pattern.
_MAX_DECIMALS = 20
# Epoch numbers at least this large are milliseconds (1e11 s is the year 5138).
_MS_THRESHOLD = 1e11
_NUMBER_TYPES = (int, float)


# -- locale, time zone and the filters ------------------------------------------
# Formatting with babel takes 5-20 µs, so results are cached: prices, totals and
# dates repeat across requests.  Keys hold only ints, floats, strings and time
# zones; a locale is keyed by its identifier, which hashes far faster than a Locale.
# The filters read the person's locale, zone and currency with
# `context.parent.get(name)` and nothing else of the jinja context.
_FORMAT_CACHE_SIZE = 4096

# Babel locales by identifier ("de_DE"), as `_locale_named` found them.
_LOCALES: dict[str, Locale] = {DEFAULT_LOCALE: Locale.parse(DEFAULT_LOCALE)}


@lru_cache(maxsize=256)
def _locale_named(name: str) -> str:
    """The identifier of the locale for "de", "de_DE", "de-DE" or "de-DE,de;q=0.9"; "en" when
    unknown."""
    wanted = name.split(",", 1)[0].split(";", 1)[0].strip().replace("-", "_")
    for candidate in (wanted, wanted.split("_", 1)[0]):
        try:
            locale = Locale.parse(candidate)
        except (UnknownLocaleError, ValueError, TypeError):
            continue
        identifier = str(locale)
        _LOCALES.setdefault(identifier, locale)
        return identifier
    return DEFAULT_LOCALE


def _locale_of(context: Any) -> str:
    """The identifier of the person's locale: a key of `_LOCALES`."""
    name = context.parent.get(LOCALE_VARIABLE)
    if name.__class__ is not str or not name or len(name) > 100:
        return DEFAULT_LOCALE
    return _locale_named(name)


def _number(value: Any) -> int | float | None:
    """The value if it is a finite int or float (not a bool); otherwise None."""
    kind = value.__class__
    if kind is int:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if isinstance(value, _NUMBER_TYPES) and kind is not bool:
        return value if math.isfinite(value) else None
    return None


def _is_missing(value: Any) -> bool:
    return value is None or isinstance(value, Undefined)


@lru_cache(maxsize=_FORMAT_CACHE_SIZE, typed=True)
def _money_text(amount: int | float, currency: str, locale: str) -> str:
    return format_currency(amount, currency, locale=_LOCALES[locale])


@pass_context
def _money(context: Any, value: Any, currency: Any = None) -> str:
    """`{{ cart.value | money }}`, `{{ price | money("EUR") }}`: an amount in the locale."""
    amount = _number(value)
    if amount is None:
        return ""
    if _is_missing(currency):
        currency = context.parent.get("currency")
        if _is_missing(currency):
            currency = DEFAULT_CURRENCY
    if not (
        currency.__class__ is str
        and len(currency) == 3
        and currency.isascii()
        and currency.isalpha()
    ):
        return ""
    return _money_text(amount, currency.upper(), _locale_of(context))


@lru_cache(maxsize=_FORMAT_CACHE_SIZE, typed=True)
def _number_text(number: int | float, decimals: int | None, locale: str) -> str:
    babel_locale = _LOCALES[locale]
    if decimals is None:
        return format_decimal(number, locale=babel_locale)
    pattern = copy.copy(babel_locale.decimal_formats[None])
    pattern.frac_prec = (decimals, decimals)
    return format_decimal(number, format=pattern, locale=babel_locale)


@pass_context
def _number_filter(context: Any, value: Any, decimals: Any = None) -> str:
    """`{{ n | number }}` (up to 3 decimals), `{{ n | number(2) }}` (exactly 2)."""
    number = _number(value)
    if number is None:
        return ""
    if _is_missing(decimals):
        decimals = None
    elif decimals.__class__ is not int or not 0 <= decimals <= _MAX_DECIMALS:
        return ""
    return _number_text(number, decimals, _locale_of(context))


# CLDR's plural categories: the keywords `plural` takes.
PLURAL_FORMS = ("zero", "one", "two", "few", "many", "other")


@lru_cache(maxsize=_FORMAT_CACHE_SIZE, typed=True)
def _plural_form(number: int | float, locale: str) -> str:
    return _LOCALES[locale].plural_form(number)


@pass_context
def _plural(
    context: Any,
    value: Any,
    *,
    zero: Any = None,
    one: Any = None,
    two: Any = None,
    few: Any = None,
    many: Any = None,
    other: Any = None,
) -> str:
    """`{{ n | plural(one="# item", other="# items") }}`: the form the locale's plural rules
    pick for n, with `#` replaced by n in the locale; a form not given falls back to `other`."""
    number = _number(value)
    if number is None:
        return ""
    locale = _locale_of(context)
    # CLDR's category names as keywords: a template names only the forms its language uses.
    forms = {"zero": zero, "one": one, "two": two, "few": few, "many": many, "other": other}
    text = forms[_plural_form(number, locale)]
    if _is_missing(text):
        text = other
    if not isinstance(text, str):
        return ""
    if "#" not in text:
        return text
    return text.replace("#", _number_text(number, None, locale))


@lru_cache(maxsize=_FORMAT_CACHE_SIZE, typed=True)
def _percent_text(number: int | float, locale: str) -> str:
    return format_percent(number, locale=_LOCALES[locale])


@pass_context
def _percent(context: Any, value: Any) -> str:
    """`{{ 0.25 | percent }}`: 25% in the locale's way."""
    number = _number(value)
    if number is None:
        return ""
    return _percent_text(number, _locale_of(context))


def _moment(value: Any, zone: tzinfo) -> datetime | date | None:
    """An aware datetime in `zone`, a date for date-only text, or None."""
    number = _number(value)
    try:
        if number is not None:
            seconds = number / 1000 if abs(number) >= _MS_THRESHOLD else number
            return datetime.fromtimestamp(seconds, zone)
        if value.__class__ is str and 0 < len(value) <= 64:
            text = value.strip()
            if len(text) <= 10:
                return date.fromisoformat(text)
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)  # naive timestamps are UTC
            return moment.astimezone(zone)
    except (ValueError, OverflowError, OSError):
        return None
    return None


@lru_cache(maxsize=_FORMAT_CACHE_SIZE, typed=True)
def _moment_text(
    with_time: bool, value: int | float | str, zone: tzinfo, pattern: str, locale: str
) -> str:
    moment = _moment(value, zone)
    if moment is None:
        return ""
    try:
        if not with_time:
            return format_date(moment, pattern, locale=_LOCALES[locale])
        if not isinstance(moment, datetime):
            moment = datetime.combine(moment, time(), zone)
        return format_datetime(moment, pattern, locale=_LOCALES[locale])
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return ""  # a pattern babel cannot use


def _moment_filter(with_time: bool, context: Any, value: Any, format: Any) -> str:
    if _is_missing(format):
        format = "medium"
    elif format.__class__ is not str or not 0 < len(format) <= 100:
        return ""
    kind = value.__class__
    if kind is bool or not (kind is int or kind is float or kind is str):
        return ""
    if kind is float and not math.isfinite(value):
        return ""
    zone = zone_named(context.parent.get(TIMEZONE_VARIABLE))
    return _moment_text(with_time, value, zone, format, _locale_of(context))


@pass_context
def _date(context: Any, value: Any, format: Any = "medium") -> str:
    """`{{ order.ts | date }}`, `| date("short")`, `| date("d MMMM")`: a day in the locale."""
    return _moment_filter(False, context, value, format)


@pass_context
def _datetime(context: Any, value: Any, format: Any = "medium") -> str:
    """`{{ order.ts | datetime }}`: a day and time in the person's time zone and locale."""
    return _moment_filter(True, context, value, format)


def _default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    """jinja's `default`, also replacing null: profiles store missing as null."""
    if value is None or isinstance(value, Undefined) or (boolean and not value):
        return default_value
    return value


# The names templates use; `d` is jinja's short name for `default`.
FILTERS: dict[str, Callable[..., Any]] = {
    "money": _money,
    "number": _number_filter,
    "percent": _percent,
    "plural": _plural,
    "date": _date,
    "datetime": _datetime,
    "default": _default,
    "d": _default,
}
