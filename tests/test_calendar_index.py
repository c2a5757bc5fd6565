"""The calendar index (edge/worker/calendar_index.py) on a real Redis, at explicit times."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any, Awaitable, Callable

import pytest
import redis
import redis.asyncio as aioredis
from redis.crc import key_slot

from edge.store.keys import profile_key
from edge.worker.calendar_index import CalendarIndex, canonical_zone

PRAGUE = "Europe/Prague"
NEW_YORK = "America/New_York"
JOURNEY = "birthday-greeting"


def at(moment: str) -> int:
    """Epoch milliseconds of an ISO date-time with its offset."""
    return int(datetime.fromisoformat(moment).timestamp() * 1000)


def with_index(redis_url: str, scenario: Callable[[CalendarIndex], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        client = aioredis.from_url(redis_url)
        try:
            return await scenario(CalendarIndex(client))
        finally:
            await client.aclose()
    return asyncio.run(run())


async def everyone(calendar: CalendarIndex, zone: str, index: str, day: str,
                   batch: int = 500) -> list[str]:
    found: list[str] = []
    async for ids in calendar.members(zone, index, day, batch=batch):
        found.extend(ids)
    return found


def test_each_zone_is_swept_on_its_own_local_date(redis_url: str) -> None:
    # 03:00 UTC on 17 May: already 05:00 that day in Prague, still 23:00 on the 16th in New York.
    before_new_york = at("2027-05-17T03:00:00+00:00")
    after_new_york = at("2027-05-17T05:00:00+00:00")

    async def scenario(calendar: CalendarIndex) -> None:
        await calendar.index("user:ana", JOURNEY, PRAGUE, ["05-17"])
        await calendar.index("user:bob", JOURNEY, NEW_YORK, ["05-17"])
        assert await calendar.zones() == [NEW_YORK, PRAGUE]

        due = await calendar.due_sweeps(before_new_york)
        assert due == [(NEW_YORK, "2027-05-16"), (PRAGUE, "2027-05-17")]
        assert await everyone(calendar, PRAGUE, JOURNEY, "2027-05-17") == ["user:ana"]
        assert await everyone(calendar, NEW_YORK, JOURNEY, "2027-05-16") == []
        for zone, day in due:
            assert await calendar.mark_swept(zone, day)

        assert await calendar.due_sweeps(before_new_york) == []
        assert await calendar.due_sweeps(after_new_york) == [(NEW_YORK, "2027-05-17")]
        assert await everyone(calendar, NEW_YORK, JOURNEY, "2027-05-17") == ["user:bob"]
        assert await everyone(calendar, PRAGUE, "another-journey", "2027-05-17") == []

    with_index(redis_url, scenario)


def test_reindexing_moves_a_person(redis_url: str, redis_client: redis.Redis) -> None:
    async def scenario(calendar: CalendarIndex) -> None:
        await calendar.index("user:ana", JOURNEY, PRAGUE, ["05-17", "2027-06-01"])
        await calendar.index("user:ana", "name-day", PRAGUE, ["10-18"])
        await calendar.index("user:ana", JOURNEY, NEW_YORK, ["06-02"])
        await calendar.index("user:ana", JOURNEY, NEW_YORK, ["06-02"])  # again: no change

        assert await everyone(calendar, PRAGUE, JOURNEY, "2027-05-17") == []
        assert await everyone(calendar, PRAGUE, JOURNEY, "2027-06-01") == []
        assert await everyone(calendar, NEW_YORK, JOURNEY, "2027-06-02") == ["user:ana"]
        assert await everyone(calendar, PRAGUE, "name-day", "2027-10-18") == ["user:ana"]
        assert await calendar.entries("user:ana") == {
            JOURNEY: (NEW_YORK, ("06-02",)), "name-day": (PRAGUE, ("10-18",))}

        await calendar.unindex("user:ana", "name-day")
        assert await everyone(calendar, PRAGUE, "name-day", "2027-10-18") == []
        assert await calendar.entries("user:ana") == {JOURNEY: (NEW_YORK, ("06-02",))}

        await calendar.index("user:ana", JOURNEY, NEW_YORK, [])
        assert await calendar.entries("user:ana") == {}

    with_index(redis_url, scenario)
    assert [k for k in redis_client.keys("kairos:cal:*") if redis_client.type(k) == b"set"
            and redis_client.scard(k)] == [b"kairos:cal:zones"]


def test_an_interrupted_update_is_finished_by_the_next_one(redis_url: str,
                                                           redis_client: redis.Redis) -> None:
    """An update that stopped after adding the new entries leaves both in the record; the
    next indexing removes whatever the record lists that is no longer wanted."""
    calendar_key = profile_key("user:ana") + ":cal"

    async def scenario(calendar: CalendarIndex) -> None:
        await calendar.index("user:ana", JOURNEY, PRAGUE, ["05-17"])
        redis_client.sadd(calendar.member_key(NEW_YORK, JOURNEY, "06-02"), "user:ana")
        redis_client.hset(calendar_key, JOURNEY, f"{PRAGUE}|05-17\n{NEW_YORK}|06-02")
        assert await calendar.entries("user:ana") == {JOURNEY: (NEW_YORK, ("06-02",))}

        await calendar.index("user:ana", JOURNEY, PRAGUE, ["07-01"])
        assert await everyone(calendar, PRAGUE, JOURNEY, "2027-05-17") == []
        assert await everyone(calendar, NEW_YORK, JOURNEY, "2027-06-02") == []
        assert await everyone(calendar, PRAGUE, JOURNEY, "2027-07-01") == ["user:ana"]

    with_index(redis_url, scenario)
    assert redis_client.hget(calendar_key, JOURNEY) == f"{PRAGUE}|07-01".encode()


def test_erasure_removes_every_entry_of_the_person(redis_url: str,
                                                   redis_client: redis.Redis) -> None:
    async def scenario(calendar: CalendarIndex) -> int:
        await calendar.index("user:ana", JOURNEY, PRAGUE, ["05-17"])
        await calendar.index("user:ana", "name-day", PRAGUE, ["10-18"])
        await calendar.index("user:ana", "renewal", NEW_YORK, ["2027-06-01"])
        await calendar.index("user:bob", JOURNEY, PRAGUE, ["05-17"])
        removed = await calendar.forget("user:ana")
        assert await calendar.entries("user:ana") == {}
        assert await everyone(calendar, PRAGUE, JOURNEY, "2027-05-17") == ["user:bob"]
        assert await everyone(calendar, PRAGUE, "name-day", "2027-10-18") == []
        assert await everyone(calendar, NEW_YORK, "renewal", "2027-06-01") == []
        assert await calendar.forget("user:ana") == 0
        return removed

    assert with_index(redis_url, scenario) == 3
    assert not redis_client.exists(profile_key("user:ana") + ":cal")
    for key in redis_client.keys("kairos:cal:{*"):
        assert not redis_client.sismember(key, "user:ana"), key


def test_after_downtime_the_missed_dates_are_due_oldest_first(redis_url: str) -> None:
    async def scenario(calendar: CalendarIndex) -> None:
        await calendar.index("user:ana", JOURNEY, PRAGUE, ["05-19"])
        assert await calendar.mark_swept(PRAGUE, "2027-05-17")
        three_days_later = at("2027-05-20T09:00:00+02:00")
        assert await calendar.due_sweeps(three_days_later) == [
            (PRAGUE, "2027-05-18"), (PRAGUE, "2027-05-19"), (PRAGUE, "2027-05-20")]
        assert await calendar.due_sweeps(three_days_later, catch_up_days=1) == [
            (PRAGUE, "2027-05-19"), (PRAGUE, "2027-05-20")]
        assert await calendar.due_sweeps(three_days_later, catch_up_days=0) == [
            (PRAGUE, "2027-05-20")]

        a_month_later = at("2027-06-20T09:00:00+02:00")
        due = await calendar.due_sweeps(a_month_later)
        assert [day for _, day in due] == [f"2027-06-{d}" for d in range(13, 21)]

    with_index(redis_url, scenario)


def test_a_completed_sweep_is_not_due_again_and_the_mark_never_moves_back(
        redis_url: str, redis_client: redis.Redis) -> None:
    now = at("2027-05-20T09:00:00+02:00")

    async def scenario(calendar: CalendarIndex) -> None:
        await calendar.index("user:ana", JOURNEY, PRAGUE, ["05-20"])
        assert await calendar.due_sweeps(now) == [(PRAGUE, "2027-05-20")]
        assert await calendar.mark_swept(PRAGUE, "2027-05-20")
        assert await calendar.due_sweeps(now) == []
        assert not await calendar.mark_swept(PRAGUE, "2027-05-20")
        assert not await calendar.mark_swept(PRAGUE, "2027-05-18")
        assert await calendar.due_sweeps(now) == []
        assert await calendar.due_sweeps(at("2027-05-21T00:00:00+02:00")) == [
            (PRAGUE, "2027-05-21")]
        with pytest.raises(ValueError):
            await calendar.mark_swept(PRAGUE, "2027-02-30")

    with_index(redis_url, scenario)
    assert redis_client.get("kairos:cal:{z:Europe/Prague}:swept") == b"2027-05-20"


def test_leap_day_people_are_greeted_on_28_february_in_common_years(redis_url: str) -> None:
    async def scenario(calendar: CalendarIndex) -> None:
        await calendar.index("user:leap", JOURNEY, PRAGUE, ["02-29"])
        await calendar.index("user:feb28", JOURNEY, PRAGUE, ["02-28"])
        assert sorted(await everyone(calendar, PRAGUE, JOURNEY, "2027-02-28")) == [
            "user:feb28", "user:leap"]
        assert await everyone(calendar, PRAGUE, JOURNEY, "2027-03-01") == []
        assert await everyone(calendar, PRAGUE, JOURNEY, "2028-02-28") == ["user:feb28"]
        assert await everyone(calendar, PRAGUE, JOURNEY, "2028-02-29") == ["user:leap"]

    with_index(redis_url, scenario)


def test_a_one_off_date_is_found_on_that_day_only_and_its_set_expires(
        redis_url: str, redis_client: redis.Redis) -> None:
    async def scenario(calendar: CalendarIndex) -> str:
        await calendar.index("user:ana", "renewal", PRAGUE, ["2099-06-01"])
        assert await everyone(calendar, PRAGUE, "renewal", "2099-06-01") == ["user:ana"]
        assert await everyone(calendar, PRAGUE, "renewal", "2100-06-01") == []
        return calendar.member_key(PRAGUE, "renewal", "2099-06-01")

    key = with_index(redis_url, scenario)
    # Two days after the date (it has passed in every zone by then) and 30 days kept.
    expires_ms = at("2099-07-03T00:00:00+00:00")
    assert abs(redis_client.ttl(key) - (expires_ms - time.time() * 1000) / 1000) < 60


def test_a_large_day_comes_in_batches_each_person_once(redis_url: str) -> None:
    people = [f"user:{n}" for n in range(1200)]

    async def scenario(calendar: CalendarIndex) -> list[list[str]]:
        for person in people:
            await calendar.index(person, JOURNEY, PRAGUE, ["02-28", "02-29"])
        return [ids async for ids in calendar.members(PRAGUE, JOURNEY, "2027-02-28", batch=100)]

    batches = with_index(redis_url, scenario)
    assert len(batches) > 2
    found = [person for batch in batches for person in batch]
    assert sorted(found) == sorted(people)


def test_every_key_of_a_zone_shares_one_slot(redis_url: str) -> None:
    async def scenario(calendar: CalendarIndex) -> tuple[list[str], str]:
        keys = [calendar.member_key(PRAGUE, index, day)
                for index in (JOURNEY, "name-day", "a:b{c}d")
                for day in ("05-17", "02-29", "2027-06-01")]
        return [*keys, calendar.swept_key(PRAGUE)], calendar.swept_key(NEW_YORK)

    keys, new_york = with_index(redis_url, scenario)
    assert len({key_slot(k.encode()) for k in keys}) == 1
    assert key_slot(new_york.encode()) != key_slot(keys[0].encode())
    record = CalendarIndex.record_key("user:a{b}")
    assert key_slot(record.encode()) == key_slot(profile_key("user:a{b}").encode())


def test_unknown_zones_are_swept_as_utc(redis_url: str) -> None:
    assert canonical_zone("Mars/Olympus_Mons") == "UTC"
    assert canonical_zone("{z:Europe/Prague}") == "UTC"
    assert canonical_zone(None) == canonical_zone("") == "UTC"
    assert canonical_zone("Asia/Kolkata") == "Asia/Kolkata"

    async def scenario(calendar: CalendarIndex) -> None:
        await calendar.index("user:ana", JOURNEY, "Mars/Olympus_Mons", ["05-17"])
        await calendar.index("user:bob", JOURNEY, None, ["05-17"])
        assert await calendar.zones() == ["UTC"]
        assert await calendar.due_sweeps(at("2027-05-17T00:00:00+00:00")) == [
            ("UTC", "2027-05-17")]
        assert sorted(await everyone(calendar, "UTC", JOURNEY, "2027-05-17")) == [
            "user:ana", "user:bob"]

    with_index(redis_url, scenario)


def test_bad_date_keys_are_refused(redis_url: str) -> None:
    async def scenario(calendar: CalendarIndex) -> None:
        for keys in (["02-30"], ["2027-02-29"], ["5-17"], ["1990-05-17T00:00:00"]):
            with pytest.raises(ValueError, match="not date keys"):
                await calendar.index("user:ana", JOURNEY, PRAGUE, keys)
        with pytest.raises(ValueError, match="not an index name"):
            await calendar.index("user:ana", "", PRAGUE, ["05-17"])
        assert await calendar.zones() == []
        assert await calendar.due_sweeps(at("2027-05-17T00:00:00+00:00")) == []

    with_index(redis_url, scenario)
