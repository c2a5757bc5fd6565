"""A shop's opening hours: when it is open, on the wall clock of its own time zone.

Written per weekday as a marketer would write them:

    hours:
      mon-fri: "09:00-19:00"
      sat: "09:00-12:00, 13:00-17:00"
      sun: closed

A key is a day (`mon` … `sun`), a run of days (`mon-fri`; `fri-mon` wraps past
Sunday), `weekdays`, `weekend` or `daily`; each day may be named once. A value is
`closed`, a range, several ranges (comma-separated or a list) or `00:00-24:00` for the
whole day. A range that ends before it starts runs past midnight, and the hours after
midnight belong to the day it opened on: `fri: "20:00-02:00"` is open from Friday 20:00
to Saturday 02:00. Days not named are closed.

Pure: the moment is passed in (epoch ms) and read in the shop's zone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .localtime import WEEKDAYS, LocalTimeCache
from .schedule import parse_hours

DAY_MINUTES = 1440
CLOSED = "closed"
_DAY_GROUPS = {"weekdays": WEEKDAYS[:5], "weekend": WEEKDAYS[5:], "daily": WEEKDAYS}
_LOCAL_TIME = LocalTimeCache()

# (start, end) minutes of the day; end < start runs past midnight; end may be 1440
Opening = tuple[int, int]


@dataclass(frozen=True)
class OpeningHours:
    """The openings of each weekday, Monday first."""

    days: tuple[tuple[Opening, ...], ...] = ((),) * 7

    def is_open(self, now_ms: int, zone: str | None) -> bool:
        """Open at `now_ms` on the wall clock of `zone` (UTC when unknown)."""
        hour, minute, weekday, _ = _LOCAL_TIME.fields(now_ms, zone)
        if hour is None:
            return False
        today = WEEKDAYS.index(weekday)
        at = hour * 60 + minute
        for start, end in self.days[today]:
            if (start <= at < end) if start < end else at >= start:
                return True
        # what opened yesterday and runs past midnight
        return any(end < start and at < end for start, end in self.days[today - 1])


def parse_days(key: str) -> tuple[str, ...] | None:
    """`mon`, `mon-fri`, `weekdays`, `weekend`, `daily` -> the weekdays; None if not a day."""
    name = key.strip().lower()
    if name in _DAY_GROUPS:
        return _DAY_GROUPS[name]
    first, dash, last = name.partition("-")
    if not dash:
        return (name,) if name in WEEKDAYS else None
    if first.strip() not in WEEKDAYS or last.strip() not in WEEKDAYS:
        return None
    start, stop = WEEKDAYS.index(first.strip()), WEEKDAYS.index(last.strip())
    return tuple(WEEKDAYS[(start + i) % 7] for i in range((stop - start) % 7 + 1))


def parse_openings(value: object) -> tuple[Opening, ...] | str:
    """A day's value -> its openings, or why it is not one (a message)."""
    if isinstance(value, str):
        if value.strip().lower() == CLOSED:
            return ()
        parts: Sequence[object] = value.split(",")
    elif isinstance(value, list):
        parts = value
    else:
        return 'must be "HH:MM-HH:MM", several such ranges, or closed'
    if not parts:
        return 'must name at least one range "HH:MM-HH:MM" (or say closed)'
    openings = []
    for part in parts:
        found = parse_hours(part) if isinstance(part, str) else None
        if found is None or found[0] >= DAY_MINUTES:
            return f'{part!r} is not a range of hours such as "09:00-18:00"'
        openings.append(found)
    return tuple(openings)


def parse_opening_hours(hours: Mapping[str, object]
                        ) -> tuple[OpeningHours, list[tuple[str, str]]]:
    """The hours as written -> OpeningHours, and (key, what is wrong) for each bad entry."""
    days: dict[str, tuple[Opening, ...]] = {}
    named_by: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for key, value in hours.items():
        which = parse_days(str(key))
        if which is None:
            problems.append((key, f"{key!r} is not a day: use mon … sun, a run such as "
                                  "mon-fri, weekdays, weekend or daily"))
            continue
        openings = parse_openings(value)
        if isinstance(openings, str):
            problems.append((key, openings))
            continue
        for day in which:
            if day in named_by:
                problems.append((key, f"{day} is given twice (also by {named_by[day]!r})"))
                break
            named_by[day] = key
            days[day] = openings
    return OpeningHours(tuple(days.get(day, ()) for day in WEEKDAYS)), problems
