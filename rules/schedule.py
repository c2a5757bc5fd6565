"""Schedule windows: active dates, days of the week, hours and quiet hours.

Dates, days and hours are read on the person's own clock, so "09:00-18:00"
means nine to six wherever the person is, and `from: 2026-12-01` starts at
midnight there. A time with a zone (2026-12-01T09:00:00Z) is one instant for
everybody.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .definitions import ScheduleDef
from .localtime import WEEKDAYS

_HOURS = re.compile(r"\s*([01]?[0-9]|2[0-4]):([0-5][0-9])\s*-\s*([01]?[0-9]|2[0-4]):([0-5][0-9])\s*")
_DAY_GROUPS = {"weekdays": WEEKDAYS[:5], "weekend": WEEKDAYS[5:], "every day": WEEKDAYS}


def parse_date(text: str) -> str | int | None:
    """A date as "YYYY-MM-DD" (a day on the person's clock), a date-time with a zone as
    epoch ms; None when the text is neither."""
    text = text.strip()
    try:
        if len(text) == 10:
            return datetime.strptime(text, "%Y-%m-%d").date().isoformat()
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp() * 1000)


def parse_day(text: str) -> tuple[str, ...] | None:
    name = text.strip().lower()
    if name in _DAY_GROUPS:
        return _DAY_GROUPS[name]
    name = name[:3]
    return (name,) if name in WEEKDAYS else None


def parse_hours(text: str) -> tuple[int, int] | None:
    """'09:00-18:00' -> minutes of the day (540, 1080); the range may wrap past midnight."""
    match = _HOURS.fullmatch(text)
    if match is None:
        return None
    h1, m1, h2, m2 = (int(group) for group in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start > 1440 or end > 1440 or start == end:
        return None
    return start, end


def in_range(minute: int, window: tuple[int, int]) -> bool:
    start, end = window
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end  # wraps midnight, e.g. 22:00-07:00


def schedule_block(schedule: ScheduleDef | None, now_ms: int, weekday: str,
                   minute: int, date: str = "") -> str | None:
    """Why the schedule keeps a rule from firing now, or None when it may fire.

    weekday, minute and date ("YYYY-MM-DD") are the person's; without a date, UTC's.
    """
    if schedule is None:
        return None
    if schedule.start_ms is not None and now_ms < schedule.start_ms:
        return "not started yet"
    if schedule.end_ms is not None and now_ms >= schedule.end_ms:
        return "ended"
    if schedule.start_date is not None or schedule.end_date is not None:
        today = date or datetime.fromtimestamp(now_ms / 1000, UTC).date().isoformat()
        if schedule.start_date is not None and today < schedule.start_date:
            return "not started yet"
        if schedule.end_date is not None and today > schedule.end_date:
            return "ended"
    if schedule.days is not None and weekday not in schedule.days:
        return f"not active on {weekday}"
    if schedule.hours is not None and not in_range(minute, schedule.hours):
        return "outside its hours"
    if schedule.quiet is not None and in_range(minute, schedule.quiet):
        return "quiet hours"
    return None
