"""Geofences: distances on the Earth, shops' fences and opening hours, where an event places
a person, how the edge keeps that location, and the shop settings' errors."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.ingest.location import location_of, locate, shops_of
from edge.runtime.clock import FakeClock
from edge.runtime.config import SettingsError, load_settings
from rules.geo import EARTH_RADIUS_M, Shop, distance_m, shop_at, shop_with_hotspot
from rules.localtime import WEEKDAYS
from rules.opening_hours import OpeningHours, parse_days, parse_opening_hours
from tests.support import SETTINGS_YAML, LiveEdge, write_config

PRAGUE = ZoneInfo("Europe/Prague")
MINUTE = 60_000


def local(text: str, zone: ZoneInfo = PRAGUE) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=zone).timestamp() * 1000)


latitudes = st.floats(min_value=-90, max_value=90, allow_nan=False)
longitudes = st.floats(min_value=-180, max_value=180, allow_nan=False)
points = st.tuples(latitudes, longitudes)


# -- distance ----------------------------------------------------------------------------------

@given(points, points)
def test_distance_is_symmetric_and_within_half_the_circumference(a, b) -> None:
    there, back = distance_m(*a, *b), distance_m(*b, *a)
    assert there is not None and back is not None
    assert math.isclose(there, back, rel_tol=1e-12, abs_tol=1e-6)
    assert 0 <= there <= math.pi * EARTH_RADIUS_M + 1e-6


@given(points)
def test_a_point_is_nowhere_from_itself(a) -> None:
    assert distance_m(*a, *a) == 0.0


@given(points, points, points)
def test_distance_obeys_the_triangle_inequality(a, b, c) -> None:
    ab, bc, ac = distance_m(*a, *b), distance_m(*b, *c), distance_m(*a, *c)
    # haversine's rounding is below a millimetre at any distance on the Earth
    assert ac <= ab + bc + 1e-3  # type: ignore[operator]


@pytest.mark.parametrize("point", [(90.5, 0), (0, -180.01), (math.nan, 0), (0, math.inf),
                                   ("50", 14), (True, 0), (None, 0)])
def test_a_point_off_the_globe_has_no_distance(point) -> None:
    assert distance_m(*point, 0, 0) is None
    assert distance_m(0, 0, *point) is None


def test_distance_across_the_antimeridian_is_the_short_way_round() -> None:
    # 0.2 degrees of the equator, not 359.8
    assert round(distance_m(0, 179.9, 0, -179.9)) == round(0.2 / 360 * 2 * math.pi * EARTH_RADIUS_M)  # type: ignore[arg-type]


# -- fences ------------------------------------------------------------------------------------

def shop(shop_id: str, latitude: float, longitude: float, radius: float,
         hotspots: frozenset[str] = frozenset()) -> Shop:
    return Shop(shop_id, shop_id.title(), latitude, longitude, radius, OpeningHours(),
                "Europe/Prague", hotspots)


def test_the_fence_holds_its_boundary_and_nothing_past_it() -> None:
    fence = shop("a", 50.0, 14.0, 100.0)
    edge_latitude = 50.0 + math.degrees(100.0 / EARTH_RADIUS_M)  # 100 m due north
    assert distance_m(50.0, 14.0, edge_latitude, 14.0) == pytest.approx(100.0, abs=1e-6)
    assert fence.contains(50.0 + math.degrees(99.99 / EARTH_RADIUS_M), 14.0)
    assert not fence.contains(50.0 + math.degrees(100.01 / EARTH_RADIUS_M), 14.0)


def test_overlapping_fences_give_the_nearest_shop() -> None:
    big, small = shop("big", 50.0, 14.0, 1000.0), shop("small", 50.002, 14.0, 300.0)
    assert shop_at([big, small], 50.0019, 14.0) is small
    assert shop_at([big, small], 50.0001, 14.0) is big
    assert shop_at([big, small], 51.0, 14.0) is None
    assert shop_with_hotspot([big, small], "guest") is None
    assert shop_with_hotspot([big, shop("h", 0, 0, 1, frozenset({"guest"}))], "guest").id == "h"  # type: ignore[union-attr]


# -- opening hours -----------------------------------------------------------------------------

def test_days_are_read_as_written() -> None:
    assert parse_days("mon-fri") == WEEKDAYS[:5]
    assert parse_days("fri-mon") == ("fri", "sat", "sun", "mon")
    assert parse_days("Weekend") == ("sat", "sun")
    assert parse_days("daily") == WEEKDAYS
    assert parse_days("monday") is None and parse_days("mon-xyz") is None


HOURS = {"mon-thu": "09:00-18:00", "fri": "09:00-12:00, 13:00-02:00", "sat": ["10:00-14:00"],
         "sun": "closed"}


@pytest.mark.parametrize("moment, is_open", [
    ("2026-03-02T08:59", False), ("2026-03-02T09:00", True), ("2026-03-02T17:59", True),
    ("2026-03-02T18:00", False),                       # a range's end is closed
    ("2026-03-06T12:30", False), ("2026-03-06T23:30", True),  # Friday's lunch, its night
    ("2026-03-07T01:59", True), ("2026-03-07T02:00", False),  # Friday's night on Saturday
    ("2026-03-07T10:00", True), ("2026-03-08T12:00", False),  # Saturday, Sunday
    ("2026-03-29T12:00", False),                        # a Sunday the clocks change
])
def test_opening_hours_on_the_shops_clock(moment: str, is_open: bool) -> None:
    hours, problems = parse_opening_hours(HOURS)
    assert problems == []
    assert hours.is_open(local(moment), "Europe/Prague") is is_open


def test_the_same_moment_is_open_in_one_zone_and_closed_in_another() -> None:
    hours, _ = parse_opening_hours({"daily": "09:00-17:00"})
    moment = local("2026-03-02T10:00")  # 10:00 in Prague is 04:00 in New York
    assert hours.is_open(moment, "Europe/Prague") and not hours.is_open(moment, "America/New_York")


ranges = st.tuples(st.integers(0, 1439), st.integers(0, 1440)).filter(lambda r: r[0] != r[1])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(ranges, max_size=3), min_size=7, max_size=7),
       st.integers(0, 7 * 1440 - 1))
def test_open_means_inside_an_opening_counted_on_the_week(days, minute_of_week) -> None:
    """Each opening covers [start, end) minutes from its day's midnight, an end before the
    start meaning the next day: open exactly when some opening of the week covers it."""
    week = 7 * 1440
    covered = False
    for day, openings in enumerate(days):
        for start, end in openings:
            length = end - start if end > start else end + 1440 - start
            begins = day * 1440 + start
            covered |= (minute_of_week - begins) % week < length
    hours = OpeningHours(tuple(tuple(openings) for openings in days))
    monday = local("2026-03-02T00:00", ZoneInfo("UTC"))  # a Monday, on a clock without DST
    assert hours.is_open(monday + minute_of_week * MINUTE, "UTC") is covered


@pytest.mark.parametrize("hours, problem", [
    ({"moonday": "09:00-18:00"}, "'moonday' is not a day"),
    ({"mon": "9 to 5"}, "'9 to 5' is not a range of hours"),
    ({"mon": "09:00-09:00"}, "is not a range of hours"),
    ({"mon": "24:00-02:00"}, "is not a range of hours"),
    ({"mon": 9}, "must be"),
    ({"weekdays": "09:00-18:00", "fri": "09:00-12:00"}, "fri is given twice (also by 'weekdays')"),
])
def test_bad_opening_hours_say_what_is_wrong(hours, problem: str) -> None:
    _, problems = parse_opening_hours(hours)
    assert any(problem in message for _, message in problems), problems


# -- where an event places the person ----------------------------------------------------------

SHOPS = (shop("old-town", 50.0870, 14.4208, 150.0, frozenset({"old-town-guest"})),)


def app_event(location: object, **fields: object) -> dict:
    return {"type": "track", "event": "Application Opened", "properties": {},
            "context": {"location": location}, **fields}


def test_an_app_location_inside_a_fence_names_the_shop() -> None:
    placed = location_of(app_event({"latitude": 50.0871, "longitude": 14.421, "city": "Prague"}),
                         SHOPS, 1000)
    assert placed == {"latitude": 50.0871, "longitude": 14.421, "at": 1000, "shop": "old-town",
                      "source": "device"}
    outside = location_of(app_event({"latitude": 50.1, "longitude": 14.421}), SHOPS, 1000)
    assert outside is not None and outside["shop"] is None


@pytest.mark.parametrize("location", [
    {"latitude": "50.08", "longitude": 14.42}, {"latitude": 95, "longitude": 14.42},
    {"latitude": 50.08}, {"city": "Prague"}, "Prague", None, {"latitude": True, "longitude": 1},
])
def test_a_location_that_is_not_a_point_is_ignored(location: object) -> None:
    assert location_of(app_event(location), SHOPS, 1000) is None


def test_a_hotspot_login_places_the_person_in_its_shop() -> None:
    login = {"type": "track", "event": "Hotspot Login", "properties": {"hotspot": "old-town-guest"}}
    assert location_of(login, SHOPS, 5) == {"latitude": 50.087, "longitude": 14.4208, "at": 5,
                                            "shop": "old-town", "source": "hotspot"}
    unknown = {**login, "properties": {"hotspot": "cafe-next-door"}}
    assert location_of(unknown, SHOPS, 5) is None


def test_rules_read_the_shops_name_and_whether_it_is_open_now() -> None:
    hours, _ = parse_opening_hours({"mon-fri": "09:00-19:00"})
    open_shop = Shop("old-town", "Old Town store", 50.087, 14.4208, 150.0, hours, "Europe/Prague")
    profile = {"location": {"shop": "old-town", "at": 1}}
    locate(profile, (open_shop,), local("2026-03-02T10:00"))
    assert profile["location"] == {"shop": "old-town", "at": 1, "shop_name": "Old Town store",
                                   "shop_open": True}
    evening = {"location": {"shop": "old-town", "at": 1}}
    locate(evening, (open_shop,), local("2026-03-02T19:00"))
    assert evening["location"]["shop_open"] is False
    nowhere: dict = {"location": None}
    locate(nowhere, (open_shop,), 0)
    assert nowhere == {"location": None}


# -- the settings ------------------------------------------------------------------------------

SHOP_SETTINGS = """
    shops:
      old-town:
        name: Old Town store
        latitude: 50.0870
        longitude: 14.4208
        radius: 150
        hours: { mon-fri: "09:00-19:00", sat: "10:00-16:00", sun: closed }
        hotspots: [old-town-guest]
"""


def with_shops(text: str = SHOP_SETTINGS) -> str:
    return SETTINGS_YAML.replace("    timezone: Europe/Prague\n",
                                 "    timezone: Europe/Prague\n" + text.lstrip("\n"), 1)


def problems_of(tmp_path: Path, old: str, new: str) -> str:
    target = write_config(tmp_path / "config", settings_yaml=with_shops(
        SHOP_SETTINGS.replace(old, new, 1)))
    with pytest.raises(SettingsError) as caught:
        load_settings(target)
    return str(caught.value)


def test_shops_load_into_fences_in_the_sites_zone(tmp_path: Path) -> None:
    settings_ = load_settings(write_config(tmp_path / "config", settings_yaml=with_shops()))
    [old_town] = shops_of(settings_.sites["shop"])
    assert (old_town.id, old_town.name, old_town.radius_m, old_town.zone) == \
        ("old-town", "Old Town store", 150.0, "Europe/Prague")
    assert old_town.is_open(local("2026-03-07T15:59")) and not old_town.is_open(local("2026-03-08T12:00"))
    assert shops_of(settings_.sites["shop"])[0] is old_town  # built once per settings


@pytest.mark.parametrize("old, new, expected", [
    ("latitude: 50.0870", "latitude: 95", "sites.shop.shops.old-town.latitude: must be a latitude"),
    ("longitude: 14.4208", "longitude: -181", "sites.shop.shops.old-town.longitude: must be a longitude"),
    ("radius: 150", "radius: 0", "sites.shop.shops.old-town.radius: must be more than 0 metres"),
    ("radius: 150", "radius: -5", "sites.shop.shops.old-town.radius: must be more than 0 metres"),
    ("radius: 150", "radius: wide", "sites.shop.shops.old-town.radius must be a number, not text"),
    ('sat: "10:00-16:00"', 'sat: "10-16"',
     "sites.shop.shops.old-town.hours.sat: '10-16' is not a range of hours"),
    ('sun: closed', 'sunday: closed', "sites.shop.shops.old-town.hours.sunday: 'sunday' is not a day"),
    ("hotspots: [old-town-guest]", "hotspots: [old-town-guest]\n        timezone: Europe/Praha",
     "sites.shop.shops.old-town.timezone: unknown time zone 'Europe/Praha'"),
    ("      old-town:", "      any:", "sites.shop.shops.any: 'any' is not a shop id"),
    ('        hours: { mon-fri: "09:00-19:00", sat: "10:00-16:00", sun: closed }\n', "",
     "sites.shop.shops.old-town needs 'hours'"),
])
def test_a_bad_shop_setting_is_named_with_its_line(tmp_path: Path, old: str, new: str,
                                                   expected: str) -> None:
    message = problems_of(tmp_path, old, new)
    assert expected in message, message
    line = message.split(": ", 1)[0].rsplit(":", 2)[1]
    assert line.isdigit() and int(line) > 1, message  # file:line:column of the setting


def test_a_hotspot_names_one_shop(tmp_path: Path) -> None:
    second = SHOP_SETTINGS + """      harbour:
        latitude: 50.1
        longitude: 14.5
        radius: 80
        hours: { daily: "00:00-24:00" }
        hotspots: [old-town-guest]
"""
    target = write_config(tmp_path / "config", settings_yaml=with_shops(second))
    with pytest.raises(SettingsError, match="sites.shop.shops.harbour.hotspots\\[0\\]: "
                                            "'old-town-guest' is already a hotspot of 'old-town'"):
        load_settings(target)


# -- the edge keeps the newest location --------------------------------------------------------

def placed_at(edge: LiveEdge, user: str, latitude: float, longitude: float,
              timestamp: str | None = None, anonymous: str | None = None) -> None:
    fields: dict = {"context": {"location": {"latitude": latitude, "longitude": longitude}}}
    if timestamp is not None:
        fields["timestamp"] = timestamp
    ids = {"anonymousId": anonymous} if anonymous else {"userId": user}
    answer = edge.track("Application Opened", **ids, **fields)
    assert answer.status_code == 200, answer.text


def test_the_profile_keeps_the_newest_location_and_its_shop(tmp_path: Path, redis_url: str) -> None:
    config = write_config(tmp_path / "config", settings_yaml=with_shops())
    clock = FakeClock(local("2026-03-02T10:00"))
    with LiveEdge(config, redis_url, clock=clock) as edge:
        placed_at(edge, "ann", 50.0871, 14.4209)
        shown = edge.profile("user:ann").json()["location"]
        assert shown == {"latitude": 50.0871, "longitude": 14.4209, "at": clock.now_ms(),
                         "shop": "old-town", "source": "device", "shop_name": "Old Town store",
                         "shop_open": True}
        # a late event's older location does not replace the newer one
        placed_at(edge, "ann", 50.2, 14.6, timestamp="2026-03-02T08:00:00+01:00")
        assert edge.profile("user:ann").json()["location"]["shop"] == "old-town"
        clock.advance(MINUTE)
        placed_at(edge, "ann", 50.2, 14.6)  # out of town
        moved = edge.profile("user:ann").json()["location"]
        assert (moved["latitude"], moved["shop"], moved["shop_open"]) == (50.2, None, False)
        # an event without a location changes nothing; a bad one is accepted and ignored
        answer = edge.track("Application Opened", userId="ann",
                            context={"location": {"latitude": "north", "longitude": 14.42}})
        assert answer.status_code == 200
        assert edge.profile("user:ann").json()["location"] == moved


def test_a_merged_profile_keeps_the_newer_location(tmp_path: Path, redis_url: str) -> None:
    config = write_config(tmp_path / "config", settings_yaml=with_shops())
    clock = FakeClock(local("2026-03-02T10:00"))
    with LiveEdge(config, redis_url, clock=clock) as edge:
        placed_at(edge, "bo", 50.2, 14.6)  # the customer's profile: out of town, earlier
        clock.advance(MINUTE)
        placed_at(edge, "", 50.0871, 14.4209, anonymous="phone-1")  # then, signed out, in the shop
        clock.advance(MINUTE)
        answer = edge.post("/v1/identify", {"userId": "bo", "anonymousId": "phone-1"})
        assert answer.status_code == 200, answer.text
        assert edge.profile("user:bo").json()["location"]["shop"] == "old-town"


# -- the language's distance() and near() ------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(points, points)
def test_the_compiled_distance_is_the_references_to_the_last_bit(a, b) -> None:
    from rules.expression import compile_expression, reference_value
    from rules.reference import Environment

    env = Environment(profile={"traits": {"a": list(a), "b": list(b)}})
    text = "distance(traits.a[0], traits.a[1], traits.b[0], traits.b[1])"
    assert compile_expression(text)(env) == reference_value(text, env) == distance_m(*a, *b)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.sampled_from(["old-town", "harbour"])),
       st.one_of(st.integers(-10**6, 10**7), st.just("soon")),
       st.sampled_from(['near("any")', 'near("old-town")', 'near("old-town", 1m)',
                        'near("harbour", 2h)', 'near(location.shop)']))
def test_near_compiled_agrees_with_the_reference(shop_id, age, text) -> None:
    from rules.expression import compile_expression, reference_value
    from rules.reference import Environment

    now = 1_700_000_000_000
    at = now - age if isinstance(age, int) else age
    env = Environment(profile={"location": {"shop": shop_id, "at": at}}, now=now)
    found = compile_expression(text)(env)
    assert found is reference_value(text, env)
    assert found is (shop_id is not None and isinstance(age, int)
                     and (text.startswith('near("any")') or text == "near(location.shop)"
                          or shop_id in text)
                     and age <= (60_000 if "1m" in text else 7_200_000 if "2h" in text
                                 else 900_000))


def test_near_reads_the_profile_so_it_is_refused_where_only_the_event_is_seen() -> None:
    from rules.expression import ExpressionInvalid, parse_checked

    with pytest.raises(ExpressionInvalid, match="near\\(\\) cannot be used"):
        parse_checked('near("any")', roots=frozenset({"event"}))
