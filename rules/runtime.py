"""Helpers that generated code calls.  Every one of them returns, never raises.

Values are JSON data: dict, list, str, int, float, bool, None.  Booleans are
not numbers here (True is not 1), so numbers are checked with `__class__ is
int or __class__ is float`, which excludes bool.
"""

from __future__ import annotations

import json
import math

import orjson

from .geo import distance_m


def is_number(value: object) -> bool:
    kind = value.__class__
    return kind is int or kind is float


# -- comparison ------------------------------------------------------------
def equal(a: object, b: object) -> bool:
    kind_a, kind_b = a.__class__, b.__class__
    if kind_a is kind_b:
        if kind_a is list:
            return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=False))  # type: ignore[arg-type]
        if kind_a is dict:
            if a.keys() != b.keys():  # type: ignore[attr-defined]
                return False
            return all(equal(value, b[key]) for key, value in a.items())  # type: ignore[attr-defined,index]
        return a == b
    if (kind_a is int or kind_a is float) and (kind_b is int or kind_b is float):
        return a == b
    return False


def safe_equal(a: object, b: object) -> bool:
    try:
        return equal(a, b)
    except RecursionError:
        return False


def not_equal(a: object, b: object) -> bool:
    return not safe_equal(a, b)


def _orderable(a: object, b: object) -> bool:
    kind_a, kind_b = a.__class__, b.__class__
    if kind_a is str:
        return kind_b is str
    return (kind_a is int or kind_a is float) and (kind_b is int or kind_b is float)


def less(a: object, b: object) -> bool:
    return _orderable(a, b) and a < b  # type: ignore[operator]


def less_equal(a: object, b: object) -> bool:
    return _orderable(a, b) and a <= b  # type: ignore[operator]


def greater(a: object, b: object) -> bool:
    return _orderable(a, b) and a > b  # type: ignore[operator]


def greater_equal(a: object, b: object) -> bool:
    return _orderable(a, b) and a >= b  # type: ignore[operator]


def member(item: object, collection: object) -> bool:
    """`item in collection`: list element, substring, or dict key."""
    kind = collection.__class__
    if kind is list:
        for element in collection:  # type: ignore[attr-defined]
            if safe_equal(item, element):
                return True
        return False
    if kind is str or kind is dict:
        return item.__class__ is str and item in collection  # type: ignore[operator]
    return False


def not_member(item: object, collection: object) -> bool:
    return not member(item, collection)


def contains(collection: object, item: object) -> bool:
    return member(item, collection)


def starts_with(text: object, prefix: object) -> bool:
    return text.__class__ is str and prefix.__class__ is str and text.startswith(prefix)  # type: ignore[attr-defined]


def ends_with(text: object, suffix: object) -> bool:
    return text.__class__ is str and suffix.__class__ is str and text.endswith(suffix)  # type: ignore[attr-defined]


# -- access ----------------------------------------------------------------
def item_of(container: object, key: object) -> object:
    """`container[key]`: dict by string key, list by integer index (negative from the end)."""
    kind = container.__class__
    if kind is dict:
        return container.get(key) if key.__class__ is str else None  # type: ignore[attr-defined]
    if kind is list and key.__class__ is int:
        if -len(container) <= key < len(container):  # type: ignore[arg-type,operator]
            return container[key]  # type: ignore[index]
    return None


# -- arithmetic ------------------------------------------------------------
# Integer results are kept within 64 bits, as in JSON in practice; beyond that the
# result is null.  This also stops repeated multiplication from building huge ints.
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1


def _bounded(result: object) -> object:
    if result.__class__ is int and not INT_MIN <= result <= INT_MAX:  # type: ignore[operator]
        return None
    return result


def add(a: object, b: object) -> object:
    if is_number(a) and is_number(b):
        try:
            return _bounded(a + b)  # type: ignore[operator]
        except OverflowError:  # a huge int meeting a float
            return None
    return None


def subtract(a: object, b: object) -> object:
    if is_number(a) and is_number(b):
        try:
            return _bounded(a - b)  # type: ignore[operator]
        except OverflowError:
            return None
    return None


def multiply(a: object, b: object) -> object:
    if is_number(a) and is_number(b):
        # Refuse before multiplying: two huge ints would take time to multiply.
        if a.__class__ is int and b.__class__ is int and (a.bit_length() + b.bit_length() > 130):  # type: ignore[attr-defined]
            return None
        try:
            return _bounded(a * b)  # type: ignore[operator]
        except OverflowError:
            return None
    return None


def divide(a: object, b: object) -> object:
    if is_number(a) and is_number(b) and b != 0:
        try:
            return a / b  # type: ignore[operator]
        except OverflowError:
            return None
    return None


def modulo(a: object, b: object) -> object:
    if is_number(a) and is_number(b) and b != 0:
        try:
            return a % b  # type: ignore[operator]
        except (OverflowError, ValueError):
            return None
    return None


def negate(a: object) -> object:
    return _bounded(-a) if is_number(a) else None  # type: ignore[operator]


# -- functions -------------------------------------------------------------
def fn_lower(value: object) -> object:
    return value.lower() if value.__class__ is str else None  # type: ignore[attr-defined]


def fn_upper(value: object) -> object:
    return value.upper() if value.__class__ is str else None  # type: ignore[attr-defined]


def fn_len(value: object) -> object:
    kind = value.__class__
    return len(value) if kind is str or kind is list or kind is dict else None  # type: ignore[arg-type]


def fn_abs(value: object) -> object:
    return _bounded(abs(value)) if is_number(value) else None  # type: ignore[arg-type]


def _extreme(args: tuple, pick_smaller: bool) -> object:
    values = args[0] if len(args) == 1 and args[0].__class__ is list else args
    present = [value for value in values if value is not None]
    if not present:
        return None
    if all(is_number(value) for value in present) or all(
        value.__class__ is str for value in present
    ):
        return min(present) if pick_smaller else max(present)
    return None


def fn_min(*args: object) -> object:
    return _extreme(args, pick_smaller=True)


def fn_max(*args: object) -> object:
    return _extreme(args, pick_smaller=False)


# round(x, -80_000_000) makes Python build 10**80_000_000, which takes minutes, and the
# digits may come from a person's data. Past ±400 digits no int of 64 bits and no float
# changes any more (floats end near 1e308 and 5e-324), so the answer is the same clamped.
ROUND_DIGITS_LIMIT = 400


def fn_round(value: object, digits: object = None) -> object:
    if not is_number(value):
        return None
    if digits is not None and digits.__class__ is not int:
        return None
    if digits is not None:
        digits = max(-ROUND_DIGITS_LIMIT, min(ROUND_DIGITS_LIMIT, digits))  # type: ignore[call-overload]
    try:
        return _bounded(round(value, digits))  # type: ignore[call-overload]
    except (OverflowError, ValueError):
        return None


def _elapsed(since: object, now: object, unit_ms: int) -> object:
    if not (is_number(since) and is_number(now)):
        return None
    try:
        return (now - since) / unit_ms  # type: ignore[operator]
    except OverflowError:
        return None


def fn_days_since(since: object, now: object) -> object:
    return _elapsed(since, now, 86_400_000)


def fn_hours_since(since: object, now: object) -> object:
    return _elapsed(since, now, 3_600_000)


fn_distance = distance_m  # metres on the Earth's mean sphere, null for a bad point

# How long a stored location still places the person where it was, unless `near` is
# told otherwise: long enough for a visit, short enough that yesterday's is not now.
NEAR_WITHIN_MS = 15 * 60_000
ANY_SHOP = "any"


def fn_near(location: object, now: object, shop: object,
            within: object = NEAR_WITHIN_MS) -> bool:
    """`near(shop)`: the person's location (profile.location, as the edge keeps it) lies
    in that shop's fence ("any": in some shop's) and is at most `within` ms old."""
    if location.__class__ is not dict or shop.__class__ is not str:
        return False
    found = location.get("shop")  # type: ignore[attr-defined]
    if found.__class__ is not str or (shop != ANY_SHOP and found != shop):
        return False
    at = location.get("at")  # type: ignore[attr-defined]
    if not (is_number(at) and is_number(now) and is_number(within)):
        return False
    try:
        return now - at <= within  # type: ignore[operator]
    except OverflowError:  # an int too large for a float meeting a float
        return False


# -- rendering -------------------------------------------------------------
def to_text(value: object) -> str:
    """How a placeholder value reads inside text: null is empty, booleans are true/false."""
    kind = value.__class__
    if kind is str:
        return value  # type: ignore[return-value]
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        try:
            return repr(value)
        except ValueError:  # an int with more digits than Python will print
            return ""
    return json_text(value)


def json_text(value: object) -> str:
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        # orjson refuses integers beyond 64 bits and very deep nesting.
        try:
            return json.dumps(value, default=str, separators=(",", ":"))
        except (ValueError, RecursionError):
            return ""


def is_finite_number(value: object) -> bool:
    if not is_number(value):
        return False
    try:
        return math.isfinite(value)  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a float
        return False


# The largest value one event may add to a sum aggregate unless the aggregate says
# otherwise (`max_value`): far beyond any real order, yet small enough that no
# number of events can carry a sum to infinity.
DEFAULT_SUMMAND_BOUND = 1e12


def summand_problem(value: object, bound: float) -> str | None:
    """Why `value` may not be added to a sum aggregate whose max_value is `bound`;
    None when it may."""
    if value is None:
        return "the event has no value there"
    if not is_number(value):
        return f"not a number ({_json_kind(value)})"
    if not is_finite_number(value) or abs(value) > bound:  # type: ignore[arg-type]
        return f"beyond the aggregate's max_value of {bound:g}"
    return None


def summand(value: object, bound: float) -> float | None:
    """What a sum aggregate adds for `value`: the value as a float, or None (skipped,
    for the reason summand_problem gives)."""
    if summand_problem(value, bound) is None:
        return float(value)  # type: ignore[arg-type]
    return None


def _json_kind(value: object) -> str:
    if value is True or value is False:
        return "true or false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def score_value(value: object) -> float:
    """A rule's score: its expression's value when that is a finite number, else 0."""
    if is_finite_number(value) and value.__class__ is not bool:
        return float(value)  # type: ignore[arg-type]
    return 0.0
