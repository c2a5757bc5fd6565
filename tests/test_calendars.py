"""Calendar days of a person (rules/calendars.py) and the shipped name-day calendars.

rules/vectors/calendars.json is the specification:

yearly_date    [{value, expected: "MM-DD" or null, why}]
shifted_date   [{value, offset_days, expected: "YYYY-MM-DD" or null, why}]
keys_for_day   [{local_date, expected: the date keys, or null where the date is rejected}]
occurs_on      [{entry, local_date, expected}]
name_days      {calendars: [[country, calendar text]], cases: [{first_name, country, locale,
               expected: the "MM-DD"s, why}]}
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.calendars import (
    MONTH_DAYS, CalendarError, NameDays, fold_name, is_date_key, keys_for_day, occurs_on,
    parse_calendar, shifted_date, yearly_date,
)

ROOT = Path(__file__).resolve().parent.parent
NAMEDAYS = ROOT / "config" / "namedays"
VECTORS = json.loads(resources.files("rules").joinpath("vectors", "calendars.json")
                     .read_text("utf-8"))

# The shipped calendars, and the days each leaves without a name (public holidays).
SHIPPED = {
    "cz": {"01-01", "01-06", "05-01", "05-08", "07-06", "10-28", "11-02", "12-25"},
    "sk": {"01-01", "05-01", "11-02", "12-25"},
}
LINE = re.compile(r"(\d\d-\d\d)\t([^\t,#]+(?:, [^\t,#]+)*)")


def shipped_calendars() -> NameDays:
    return NameDays((code, (NAMEDAYS / f"{code}.tsv").read_text("utf-8")) for code in SHIPPED)


# -- the vectors --------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["yearly_date"], ids=lambda v: v["why"])
def test_yearly_date(vector) -> None:
    assert yearly_date(vector["value"]) == vector["expected"]


@pytest.mark.parametrize("vector", VECTORS["shifted_date"], ids=lambda v: v["why"])
def test_shifted_date(vector) -> None:
    assert shifted_date(vector["value"], vector["offset_days"]) == vector["expected"]


@pytest.mark.parametrize("vector", VECTORS["keys_for_day"], ids=lambda v: v["local_date"])
def test_keys_for_day(vector) -> None:
    if vector["expected"] is None:
        with pytest.raises(ValueError):
            keys_for_day(vector["local_date"])
    else:
        assert keys_for_day(vector["local_date"]) == tuple(vector["expected"])


@pytest.mark.parametrize("vector", VECTORS["occurs_on"],
                         ids=lambda v: f"{v['entry']}@{v['local_date']}")
def test_occurs_on(vector) -> None:
    assert occurs_on(vector["entry"], vector["local_date"]) is vector["expected"]


VECTOR_CALENDARS = NameDays(map(tuple, VECTORS["name_days"]["calendars"]))


@pytest.mark.parametrize("vector", VECTORS["name_days"]["cases"], ids=lambda v: v["why"])
def test_name_days(vector) -> None:
    found = VECTOR_CALENDARS.days_for(vector["first_name"], vector["country"], vector["locale"])
    assert found == tuple(vector["expected"])


def test_vectors_reach_both_answers() -> None:
    assert {v["expected"] is None for v in VECTORS["yearly_date"]} == {True, False}
    assert {v["expected"] is None for v in VECTORS["shifted_date"]} == {True, False}
    assert {v["expected"] for v in VECTORS["occurs_on"]} == {True, False}
    assert {bool(v["expected"]) for v in VECTORS["name_days"]["cases"]} == {True, False}


# -- properties ---------------------------------------------------------------------------

real_dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))


def _in_year(year: int, month_day: str) -> date:
    """Where a yearly date falls in `year`: its own day, or 28 February for a leap day."""
    month, day = int(month_day[:2]), int(month_day[3:])
    try:
        return date(year, month, day)
    except ValueError:
        return date(year, 2, 28)


@settings(max_examples=300, deadline=None)
@given(real_dates, st.integers(min_value=1, max_value=120))
def test_a_yearly_date_is_celebrated_in_every_later_year(born: date, years_later: int) -> None:
    entry = yearly_date(born.isoformat())
    year = born.year + years_later
    assert entry is not None and is_date_key(entry)
    assert entry in keys_for_day(_in_year(year, entry).isoformat())


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(MONTH_DAYS), st.integers(min_value=1901, max_value=2099))
def test_a_yearly_date_is_celebrated_once_a_year(month_day: str, year: int) -> None:
    day, end = date(year, 1, 1), date(year + 1, 1, 1)
    hits = []
    while day < end:
        if occurs_on(month_day, day.isoformat()):
            hits.append(day)
        day += timedelta(days=1)
    assert hits == [_in_year(year, month_day)]


@settings(max_examples=300, deadline=None)
@given(real_dates, st.integers(min_value=-3650, max_value=3650))
def test_a_shifted_date_happens_once_on_its_day(start: date, offset: int) -> None:
    shifted = shifted_date(start.isoformat(), offset)
    assert shifted == (start + timedelta(days=offset)).isoformat()
    assert occurs_on(shifted, shifted)
    assert not occurs_on(shifted, (start + timedelta(days=offset + 1)).isoformat())


@settings(max_examples=300, deadline=None)
@given(real_dates, st.integers(min_value=0, max_value=86_399_999))
def test_epoch_milliseconds_name_their_utc_date(day: date, into_day_ms: int) -> None:
    epoch_ms = (day - date(1970, 1, 1)).days * 86_400_000 + into_day_ms
    assert yearly_date(epoch_ms) == day.strftime("%m-%d")
    assert shifted_date(epoch_ms, 0) == day.isoformat()


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=30), st.integers(), st.floats(), st.none(), st.booleans()))
def test_any_value_gives_a_date_key_or_none(value) -> None:
    found = yearly_date(value)
    assert found is None or (is_date_key(found) and len(found) == 5)
    shifted = shifted_date(value, 1)
    assert shifted is None or (is_date_key(shifted) and len(shifted) == 10)


def _without_diacritics(name: str) -> str:
    return "".join(c for c in fold_name(name) if c.isascii())


@pytest.mark.parametrize("code", sorted(SHIPPED))
def test_every_name_is_found_by_its_spelling_with_and_without_diacritics(code: str) -> None:
    calendars = shipped_calendars()
    days = parse_calendar((NAMEDAYS / f"{code}.tsv").read_text("utf-8"))
    for month_day, names in days.items():
        for name in names:
            for spelling in (name, name.upper(), name.lower(), _without_diacritics(name)):
                assert month_day in calendars.days_for(spelling, country=code), (code, spelling)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(SHIPPED)), st.data())
def test_a_name_is_found_by_any_mix_of_case(code: str, data) -> None:
    days = parse_calendar((NAMEDAYS / f"{code}.tsv").read_text("utf-8"))
    month_day = data.draw(st.sampled_from(sorted(days)))
    name = data.draw(st.sampled_from(days[month_day]))
    flips = data.draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    mixed = "".join(c.upper() if up else c.lower() for c, up in zip(name, flips))
    assert month_day in shipped_calendars().days_for(mixed, country=code.upper())


# -- the shipped calendars ----------------------------------------------------------------


def test_every_name_day_file_is_shipped_and_tested() -> None:
    assert {p.stem for p in NAMEDAYS.glob("*.tsv")} == set(SHIPPED)


@pytest.mark.parametrize("code", sorted(SHIPPED))
def test_a_calendar_file_has_every_day_once(code: str) -> None:
    text = (NAMEDAYS / f"{code}.tsv").read_text("utf-8")
    seen: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        match = LINE.fullmatch(line)
        assert match, f"{code}.tsv:{number}: {line!r}"
        seen.append(match[1])
    assert len(seen) == len(set(seen)), f"{code}.tsv names a day twice"
    assert seen == sorted(seen), f"{code}.tsv is not in calendar order"
    assert set(seen) | SHIPPED[code] == set(MONTH_DAYS)
    assert not set(seen) & SHIPPED[code], "a day listed as nameless has names"
    assert parse_calendar(text).keys() == set(seen)


def test_the_shipped_calendars_answer_the_usual_questions() -> None:
    calendars = shipped_calendars()
    assert calendars.days_for("Lukáš", locale="cs-CZ") == ("10-18",)
    assert calendars.days_for("lukas", country="SK") == ("10-18",)
    assert calendars.days_for("Zoltan", locale="sk") == ("04-07",)
    assert calendars.days_for("Josef", country="cz") == ("03-19",)
    assert calendars.days_for("Jozef", country="sk") == ("03-19",)
    assert calendars.days_for("Ľubomír", locale="sk-SK") == ("08-13",)
    assert calendars.days_for("Lubomir", locale="cs") == ("06-28",)
    assert calendars.names_on("CZ", "03-14") == ("Rút", "Matylda")
    assert calendars.names_on("sk", "06-29") == ("Peter", "Pavol", "Petra")


# -- calendar texts that do not parse -----------------------------------------------------


@pytest.mark.parametrize("text, problem", [
    ("01-01 Karina\n", "line 1: expected MM-DD"),
    ("# comment\n13-01\tKarina\n", "line 2: expected MM-DD"),
    ("02-30\tKarina\n", "line 1: expected MM-DD"),
    ("01-02\tKarina\n01-02\tRadmila\n", "line 2: 01-02 appears twice"),
    ("01-02\tKarina,\n", "line 1: an empty name"),
])
def test_a_bad_calendar_names_its_line(text: str, problem: str) -> None:
    with pytest.raises(CalendarError, match=problem):
        parse_calendar(text)


def test_a_calendar_needs_a_country_code_once() -> None:
    with pytest.raises(CalendarError, match="not a country code"):
        NameDays([("CZE", "01-02\tKarina\n")])
    with pytest.raises(CalendarError, match="two calendars for CZ"):
        NameDays([("cz", "01-02\tKarina\n"), ("CZ", "01-03\tRadmila\n")])


def test_comments_blank_lines_and_a_byte_order_mark_are_skipped() -> None:
    assert parse_calendar("\ufeff# head\n\n01-02\tKarina  # after\n") == {"01-02": ("Karina",)}
