"""Calendar days of a person: birthdays, anniversaries, name days, a profile date shifted.

A person's calendar day is a date key: "MM-DD" recurs every year, "YYYY-MM-DD"
happens once. The worker indexes people under their date keys and sweeps one
local date at a time; `keys_for_day` says which keys that date celebrates.

Pure: calendar texts come in from the caller, and no clock is read.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta
from typing import Iterable

# Every "MM-DD" there is, in order: 2000 was a leap year, so its days include 02-29.
MONTH_DAYS = tuple(
    (date(2000, 1, 1) + timedelta(days=n)).strftime("%m-%d") for n in range(366)
)
_MONTH_DAY_SET = frozenset(MONTH_DAYS)

LEAP_DAY = "02-29"
# People born on a leap day are greeted on this day in the other years.
LEAP_DAY_STANDIN = "02-28"

_FULL_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_YEARLESS = re.compile(r"(?:--)?([0-9]{2})-([0-9]{2})")
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]")
# Longer than any ISO date-time with fractions and offset: not a date.
_MAX_TEXT = 40

# Languages whose speakers keep the name days of one country's calendar.
LANGUAGE_CALENDARS = {"cs": "CZ", "sk": "SK", "pl": "PL", "hu": "HU", "fi": "FI", "sv": "SE"}

# Letters that are not a base letter plus a combining mark, so NFKD leaves them alone.
_LETTERS = str.maketrans({"ł": "l", "Ł": "l", "ø": "o", "Ø": "o", "đ": "d", "Đ": "d",
                          "ß": "ss", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ı": "i"})


class CalendarError(ValueError):
    """A calendar text that does not parse; names the line."""


def _full_date(text: str) -> date | None:
    match = _FULL_DATE.fullmatch(text)
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def _date_of(value: object) -> date | None:
    """The calendar date a full profile value names; None for yearless or bad values."""
    if value.__class__ is int:
        try:
            return datetime.fromtimestamp(value / 1000, UTC).date()  # type: ignore[operator]
        except (OverflowError, ValueError, OSError):
            return None
    if value.__class__ is not str or len(value) > _MAX_TEXT:  # type: ignore[arg-type]
        return None
    text = value.strip()  # type: ignore[attr-defined]
    if len(text) <= 10:
        return _full_date(text)
    if _DATE_TIME.match(text) is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    # The date as written: a birthday stored as a date-time means its own day,
    # whatever the offset says.
    return moment.date()


def year_of(value: object) -> int | None:
    """The year of a full profile date (None for a yearless or bad value)."""
    found = _date_of(value)
    return None if found is None else found.year


def yearly_date(value: object) -> str | None:
    """The "MM-DD" of a profile date: "YYYY-MM-DD", "MM-DD", "--MM-DD", an ISO date-time
    or epoch milliseconds (an int); None for anything else, impossible dates included."""
    if value.__class__ is str and len(value) <= _MAX_TEXT:  # type: ignore[arg-type]
        match = _YEARLESS.fullmatch(value.strip())  # type: ignore[attr-defined]
        if match is not None:
            month_day = f"{match[1]}-{match[2]}"
            return month_day if month_day in _MONTH_DAY_SET else None
    found = _date_of(value)
    return None if found is None else found.strftime("%m-%d")


def shifted_date(value: object, offset_days: int) -> str | None:
    """The "YYYY-MM-DD" `offset_days` after the full date in `value` (negative: before);
    None when `value` names no full date or the result leaves the calendar."""
    if offset_days.__class__ is not int:
        return None
    found = _date_of(value)
    if found is None:
        return None
    try:
        return (found + timedelta(days=offset_days)).isoformat()
    except OverflowError:
        return None


def is_date_key(key: object) -> bool:
    """Whether `key` is something a person can be indexed under: "MM-DD" or a real "YYYY-MM-DD"."""
    if key.__class__ is not str:
        return False
    if len(key) == 5:  # type: ignore[arg-type]
        return key in _MONTH_DAY_SET
    return len(key) == 10 and _full_date(key) is not None  # type: ignore[arg-type]


def keys_for_day(local_date: str) -> tuple[str, ...]:
    """The date keys celebrated on `local_date` ("YYYY-MM-DD")."""
    day = _full_date(local_date)
    if day is None:
        raise ValueError(f"not a date: {local_date!r}")
    month_day = local_date[5:]
    if month_day == LEAP_DAY_STANDIN and not _is_leap(day.year):
        return (local_date, month_day, LEAP_DAY)
    return (local_date, month_day)


def occurs_on(entry: str, local_date: str) -> bool:
    """Whether the date key `entry` is celebrated on `local_date`."""
    return entry in keys_for_day(local_date)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def fold_name(name: str) -> str:
    """The form names are compared in: case and diacritics dropped, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", name.translate(_LETTERS))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


def parse_calendar(text: str) -> dict[str, tuple[str, ...]]:
    """A name-day calendar text → "MM-DD" → its names, in the order written.

    One line per day: "MM-DD<TAB>Name, Name"; "#" starts a comment, blank lines
    are skipped. A day appears at most once.
    """
    days: dict[str, tuple[str, ...]] = {}
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        month_day, tab, listed = line.partition("\t")
        month_day = month_day.strip()
        if not tab or month_day not in _MONTH_DAY_SET:
            raise CalendarError(f"line {number}: expected MM-DD, a tab, then names: {raw!r}")
        if month_day in days:
            raise CalendarError(f"line {number}: {month_day} appears twice")
        names = tuple(n.strip() for n in listed.split(","))
        if not all(names):
            raise CalendarError(f"line {number}: an empty name in {listed!r}")
        days[month_day] = names
    return days


def _country(code: object) -> str | None:
    if code.__class__ is not str:
        return None
    code = code.strip().upper()  # type: ignore[attr-defined]
    if len(code) == 2 and code.isascii() and code.isalpha():  # type: ignore[arg-type]
        return code  # type: ignore[return-value]
    return None


def _locale_countries(locale: object) -> tuple[str, ...]:
    """Countries a locale points to, the language's calendar before the region's:
    a name day belongs to the language of the name ("sk-CZ" keeps the Slovak one)."""
    if locale.__class__ is not str:
        return ()
    subtags = re.split(r"[-_.@]", locale.strip())  # type: ignore[attr-defined]
    found = []
    language = LANGUAGE_CALENDARS.get(subtags[0].lower())
    if language:
        found.append(language)
    for subtag in subtags[1:]:
        region = _country(subtag) if len(subtag) == 2 else None
        if region:
            found.append(region)
            break
    return tuple(found)


class NameDays:
    """Name-day calendars of several countries, looked up by first name."""

    def __init__(self, calendars: Iterable[tuple[str, str]]) -> None:
        """`calendars`: (country code, calendar text) pairs, read by the caller."""
        self._names: dict[str, dict[str, tuple[str, ...]]] = {}
        self._days: dict[str, dict[str, tuple[str, ...]]] = {}
        for code, text in calendars:
            country = _country(code)
            if country is None:
                raise CalendarError(f"not a country code: {code!r}")
            if country in self._names:
                raise CalendarError(f"two calendars for {country}")
            days = parse_calendar(text)
            by_name: dict[str, set[str]] = {}
            for month_day, names in days.items():
                for name in names:
                    by_name.setdefault(fold_name(name), set()).add(month_day)
            self._names[country] = days
            self._days[country] = {n: tuple(sorted(d)) for n, d in by_name.items()}

    def countries(self) -> tuple[str, ...]:
        return tuple(sorted(self._names))

    def calendar_for(self, country: object = None, locale: object = None) -> str | None:
        """The country whose calendar applies: the person's country when a calendar of it
        is loaded, else the locale's language's, else the locale's region's."""
        for candidate in (_country(country), *_locale_countries(locale)):
            if candidate in self._names:
                return candidate
        return None

    def days_for(self, first_name: object, country: object = None,
                 locale: object = None) -> tuple[str, ...]:
        """Every "MM-DD" on which `first_name` has its name day, sorted; () when none."""
        chosen = self.calendar_for(country, locale)
        if chosen is None or first_name.__class__ is not str:
            return ()
        return self._days[chosen].get(fold_name(first_name), ())  # type: ignore[arg-type]

    def names_on(self, country: str, month_day: str) -> tuple[str, ...]:
        """The names a country's calendar lists on "MM-DD", as written there."""
        chosen = _country(country)
        return self._names.get(chosen, {}).get(month_day, ()) if chosen else ()
