"""The fixed vocabulary of the expression language: roots, functions, local-time fields."""

from __future__ import annotations

# Root name -> the canonical path it stands for.  `profile`, `event` and `context`
# are the inputs of decide(); the others are shorthands into them.
ROOT_PATHS: dict[str, tuple[str, ...]] = {
    "event": ("event",),
    "profile": ("profile",),
    "context": ("context",),
    "ctx": ("context",),
    "traits": ("profile", "traits"),
    "cart": ("profile", "cart"),
    # Product lists from the catalog, read for the person before the rules run (only
    # the lists the rules name): see CATALOG_LISTS.
    "catalog": ("profile", "catalog"),
    # Where the person is as the edge last placed them (an app's `context.location`, a
    # shop hotspot's login), with the shop whose fence holds it: see rules/geo.py.
    "location": ("profile", "location"),
}
# What `catalog.<list>` may name: recently viewed products with current prices, products
# often bought with what is in the cart, and dearer products of the last viewed category.
CATALOG_LISTS: tuple[str, ...] = ("recent_products", "cross_sell", "upsell")
AGGREGATE_ROOTS = frozenset({"aggregates", "agg"})
SPECIAL_ROOTS = frozenset({"segments", "now", "local"})
ALL_ROOTS = frozenset(ROOT_PATHS) | AGGREGATE_ROOTS | SPECIAL_ROOTS

# Order matters: the generated code indexes a tuple built in this order.
LOCAL_FIELDS: tuple[str, ...] = ("hour", "minute", "weekday", "date")

# name -> (minimum arguments, maximum arguments or None for any number)
FUNCTION_ARITY: dict[str, tuple[int, int | None]] = {
    "lower": (1, 1),
    "upper": (1, 1),
    "len": (1, 1),
    "abs": (1, 1),
    "min": (1, None),
    "max": (1, None),
    "round": (1, 2),
    "coalesce": (1, None),
    "days_since": (1, 1),
    "hours_since": (1, 1),
    "exists": (1, 1),
    "distance": (4, 4),
    "near": (1, 2),
}
# Functions that read the clock (the `now` passed to decide); `near` also reads the
# profile's location, so it is refused wherever the clock is.
CLOCK_FUNCTIONS = frozenset({"days_since", "hours_since", "near"})

# Aggregate kinds whose value is a number even when nothing happened in the window,
# so a missing value reads as 0 rather than null.
ZERO_DEFAULT_KINDS = frozenset({"count", "sum", "distinct"})

# What some paths always hold, for `kairos check`'s comparisons that can never be true:
# (root, key) -> "number", "text" or "list". The profile's counters and times are
# kept by the edge on every profile; local time is worked out for every decision.
KNOWN_FIELD_KINDS: dict[tuple[str, str], str] = {
    ("profile", "visits"): "number",
    ("profile", "events"): "number",
    ("profile", "first_seen"): "number",
    ("profile", "last_seen"): "number",
    ("profile", "best_send_hour"): "number",
    ("profile", "segments"): "list",
    ("profile", "tags"): "list",
    ("cart", "value"): "number",
    ("cart", "items"): "list",
    ("local", "hour"): "number",
    ("local", "minute"): "number",
    ("local", "weekday"): "text",
    ("local", "date"): "text",
}
# What a function's value always is ("exists" is never null; the others are null
# for an argument they cannot take, so only these are certain).
FUNCTION_KINDS: dict[str, str] = {"exists": "bool", "near": "bool"}
