"""The person's wall clock for arbitration and engagement, remembered per zone, is the clock."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.pipeline.delivery import local_clock
from rules.localtime import WEEKDAYS, zone_named

ZONES = ["Europe/Prague", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe",
         "Pacific/Chatham", "UTC", "Not/AZone", None]
# 1990 to 2060; zones with half- and quarter-hour offsets and with changes of offset
moments = st.integers(min_value=631_152_000_000, max_value=2_840_140_800_000)


def clock_by_datetime(now_ms: int, timezone: str | None) -> tuple[str, int, str]:
    moment = datetime.fromtimestamp(now_ms / 1000, zone_named(timezone))
    return WEEKDAYS[moment.weekday()], moment.hour * 60 + moment.minute, moment.date().isoformat()


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(moments, st.sampled_from(ZONES), st.integers(0, 7_200_000)),
                min_size=1, max_size=20))
def test_the_remembered_clock_is_the_clock(steps: list[tuple[int, str | None, int]]) -> None:
    # Each step asks at a moment and again a little later in the same zone, as events do.
    for moment, zone, later in steps:
        for now_ms in (moment, moment + later):
            assert local_clock(now_ms, zone) == clock_by_datetime(now_ms, zone)


def test_a_change_of_offset_is_seen_at_once() -> None:
    # Europe/Prague went from +1 to +2 at 2026-03-29 01:00 UTC.
    change = 1_774_746_000_000
    assert local_clock(change - 60_000, "Europe/Prague") == ("sun", 1 * 60 + 59, "2026-03-29")
    assert local_clock(change, "Europe/Prague") == ("sun", 3 * 60, "2026-03-29")
