"""Windowed aggregates: their specification, bucket sizes, and exact semantics.

An aggregate is kept as a ring of time buckets.  `brute_force` is the reference
definition that any store (the edge keeps them in Redis) must reproduce.
"""

from __future__ import annotations

from typing import Literal

import msgspec
import orjson

from .durations import format_duration

AggregateKind = Literal["count", "sum", "last", "distinct"]
AGGREGATE_KINDS: tuple[str, ...] = ("count", "sum", "last", "distinct")

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
MIN_WINDOW_MS = MINUTE_MS
MAX_WINDOW_MS = 400 * DAY_MS


class AggregateSpec(msgspec.Struct, frozen=True):
    id: str
    kind: AggregateKind
    window_ms: int
    bucket_ms: int

    @property
    def n_buckets(self) -> int:
        return self.window_ms // self.bucket_ms


def bucket_ms_for(window_ms: int) -> int:
    """Bucket width for a window: coarser buckets for longer windows keep the ring small."""
    if window_ms <= 2 * HOUR_MS:
        return MINUTE_MS
    if window_ms <= 2 * DAY_MS:
        return 15 * MINUTE_MS
    if window_ms <= 14 * DAY_MS:
        return HOUR_MS
    return DAY_MS


def window_problem(window_ms: int) -> str | None:
    """Why a window length is not allowed, or None when it is fine."""
    if window_ms < MIN_WINDOW_MS:
        return "window must be at least 1m"
    if window_ms > MAX_WINDOW_MS:
        return "window must be at most 400d"
    bucket = bucket_ms_for(window_ms)
    if window_ms % bucket:
        shorter = window_ms - window_ms % bucket
        longer = shorter + bucket
        options = [format_duration(ms) for ms in (shorter, longer) if window_problem(ms) is None]
        return (
            f"window {format_duration(window_ms)} must be a multiple of {format_duration(bucket)}, "
            f"the bucket size for windows of this length; try {' or '.join(options)}"
        )
    return None


def brute_force(spec: AggregateSpec, history: list[tuple[int, object]], now_ms: int) -> object:
    """The value of `spec` at `now_ms` given every (timestamp ms, value) it was fed.

    An event counts iff its bucket is one of the n_buckets ending with now's bucket:
        now_ms // bucket - n_buckets < ts // bucket <= now_ms // bucket
    count: number of such events; sum: float sum (0.0 when none);
    distinct: number of different values; last: value of the latest event
    (on equal timestamps the one later in `history`), None when none.
    """
    newest_bucket = now_ms // spec.bucket_ms
    oldest_excluded = newest_bucket - spec.n_buckets
    inside = [
        (ts, value)
        for ts, value in history
        if oldest_excluded < ts // spec.bucket_ms <= newest_bucket
    ]
    if spec.kind == "count":
        return len(inside)
    if spec.kind == "sum":
        return float(sum(float(value) for _, value in inside))  # type: ignore[arg-type]
    if spec.kind == "distinct":
        return len({value for _, value in inside})
    latest: tuple[int, object] | None = None
    for ts, value in inside:
        if latest is None or ts >= latest[0]:
            latest = (ts, value)
    return None if latest is None else latest[1]


# -- values an event contributes ------------------------------------------
def distinct_key(value: object) -> str | None:
    """The text under which a value is counted by a `distinct` aggregate."""
    kind = value.__class__
    if value is None:
        return None
    if kind is str:
        return value  # type: ignore[return-value]
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        try:
            return str(value)
        except ValueError:  # more digits than Python will print
            return None
    if kind is float:
        # 3 and 3.0 are the same category id, whichever way a client sent it.
        if value == value and value not in (float("inf"), float("-inf")) and value == int(value):  # type: ignore[arg-type]
            return str(int(value))  # type: ignore[arg-type]
        return repr(value)
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return None


def last_value(value: object) -> object:
    """A `last` aggregate keeps scalars only; None means the event is skipped."""
    kind = value.__class__
    if kind is str or kind is int or kind is float or kind is bool:
        return value
    return None
