"""Calendar triggers in Redis: people indexed by date key, swept once a day per time zone.

A person with a birthday is one set entry under their "MM-DD", not a timer a
year ahead: each zone's sweep reads the sets of the local date that has just
begun there (rules.calendars.keys_for_day: the full date, its "MM-DD", and
"02-29" on 28 February of a common year).

| key | type | holds |
|---|---|---|
| `<prefix>:{z:<zone>}:<index>:<date key>` | set | profile ids celebrating `<index>` (a journey id) then, in that zone |
| `<prefix>:{z:<zone>}:swept` | string | the zone's last completed local date, "YYYY-MM-DD" |
| `<prefix>:zones` | set | every zone anyone was ever indexed in |
| `{p:<id>}:cal` | hash | per index, the person's entries: "zone\\|datekey,datekey" |

Each zone's keys share one hash tag, so a sweep touches one slot of a Redis
Cluster; the person's record lives in the person's slot. Nothing here spans
two slots in one command, so writes are ordered, not atomic, and the order is
what keeps them safe. New entries are added before old ones are removed: a
crash leaves a stale entry (the sweep's caller re-checks each person against
the profile), never a missing one. Before old entries are removed, the
person's record lists the old and the new together, so the next indexing, or
an erasure, finds whatever an interrupted update left; only a crash right
after adding the new entries leaves them unlisted, until that indexing is
retried (the worker's events are delivered at least once).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import AsyncIterator, Iterable

import redis.asyncio as aioredis

from edge.store.keys import _escape as escape_tag
from edge.store.keys import profile_key
from rules.calendars import is_date_key, keys_for_day
from rules.localtime import zone_named

CALENDAR_SUFFIX = ":cal"
FALLBACK_ZONE = "UTC"
# The characters of the time zone database's names: none of them can break a
# key's hash tag or the person's record.
_ZONE_NAME = re.compile(r"[A-Za-z0-9/_+-]{1,64}")

# Compares ISO dates as text, which orders them as dates for four-digit years.
_MARK_SWEPT = """
local done = redis.call('GET', KEYS[1])
if done and done >= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


def canonical_zone(zone: object) -> str:
    """The zone a person is indexed in: their own if it is a real zone, else UTC.

    Zone names come from visitors; folding the unknown ones into UTC (which is how
    rules.localtime reads them) keeps the set of zones, and so of sweeps, bounded.
    """
    if zone.__class__ is not str or not _ZONE_NAME.fullmatch(zone):  # type: ignore[arg-type]
        return FALLBACK_ZONE
    return zone if zone_named(zone) is not UTC else FALLBACK_ZONE  # type: ignore[return-value]


def local_date_at(now_ms: int, zone: str) -> date:
    return datetime.fromtimestamp(now_ms / 1000, zone_named(zone)).date()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _record_line(zone: str, date_keys: Iterable[str]) -> str:
    return zone + "|" + ",".join(date_keys)


def _parse_record(record: bytes | str | None) -> list[tuple[str, tuple[str, ...]]]:
    """Every (zone, date keys) a record lists: one line normally, two while an update
    is under way (the old entries and the new)."""
    if not record:
        return []
    found = []
    for line in _text(record).split("\n"):
        zone, _, listed = line.partition("|")
        found.append((zone, tuple(k for k in listed.split(",") if k)))
    return found


class CalendarIndex:
    def __init__(self, client: aioredis.Redis, prefix: str = "kairos:cal",
                 keep_days: int = 30) -> None:
        """`keep_days`: how long after its day a one-off date's set is kept (it is never
        swept again once the sweeps' catch-up window has passed it)."""
        self.client = client
        self.prefix = prefix
        self.keep_days = keep_days
        self.zones_key = f"{prefix}:zones"
        self._mark_swept = client.register_script(_MARK_SWEPT)

    # -- key names ---------------------------------------------------------------------------

    def zone_tag(self, zone: str) -> str:
        return f"{self.prefix}:{{z:{escape_tag(zone)}}}"

    def member_key(self, zone: str, index: str, date_key: str) -> str:
        return f"{self.zone_tag(zone)}:{index}:{date_key}"

    def swept_key(self, zone: str) -> str:
        return f"{self.zone_tag(zone)}:swept"

    @staticmethod
    def record_key(profile_id: str) -> str:
        return profile_key(profile_id) + CALENDAR_SUFFIX

    def _members_of(self, index: str, recorded: list[tuple[str, tuple[str, ...]]]) -> set[str]:
        return {self.member_key(zone, index, key) for zone, keys in recorded for key in keys}

    # -- a person's entries ------------------------------------------------------------------

    async def index(self, profile_id: str, index: str, zone: str | None,
                    date_keys: Iterable[str]) -> None:
        """Index the person under `date_keys` ("MM-DD" or "YYYY-MM-DD") for `index` in
        `zone`, replacing what they were indexed under for `index` before. Idempotent."""
        if index.__class__ is not str or not index:
            raise ValueError(f"not an index name: {index!r}")
        wanted = sorted(set(date_keys))
        bad = [k for k in wanted if not is_date_key(k)]
        if bad:
            raise ValueError(f"not date keys: {bad!r}")
        if not wanted:
            await self.unindex(profile_id, index)
            return
        zone = canonical_zone(zone)
        record_key = self.record_key(profile_id)
        recorded = _parse_record(await self.client.hget(record_key, index))
        line = _record_line(zone, wanted)
        new = {self.member_key(zone, index, key) for key in wanted}
        old = self._members_of(index, recorded) - new
        # One pipeline, in this order: the server runs a prefix of it if the
        # connection drops, and every prefix is a safe state.
        pipe = self.client.pipeline(transaction=False)
        for date_key in wanted:
            key = self.member_key(zone, index, date_key)
            pipe.sadd(key, profile_id)
            if len(date_key) == 10:
                pipe.expireat(key, self._one_off_expiry(date_key))
        pipe.sadd(self.zones_key, zone)
        if old:
            old_lines = [_record_line(z, keys) for z, keys in recorded]
            pipe.hset(record_key, index, "\n".join([*old_lines, line]))
            for key in sorted(old):
                pipe.srem(key, profile_id)
        pipe.hset(record_key, index, line)
        await pipe.execute()

    def _one_off_expiry(self, full_date: str) -> int:
        # Two days after the date's UTC midnight it has ended in every zone (UTC-12
        # is the last); the sets are kept `keep_days` longer for late sweeps.
        day = date.fromisoformat(full_date) + timedelta(days=2 + self.keep_days)
        return (day - date(1970, 1, 1)).days * 86_400

    async def unindex(self, profile_id: str, index: str) -> None:
        """Remove the person's entries for `index`."""
        record_key = self.record_key(profile_id)
        recorded = _parse_record(await self.client.hget(record_key, index))
        pipe = self.client.pipeline(transaction=False)
        for key in sorted(self._members_of(index, recorded)):
            pipe.srem(key, profile_id)
        pipe.hdel(record_key, index)
        await pipe.execute()

    async def forget(self, profile_id: str) -> int:
        """Erase everything of the person here; answers how many entries were removed."""
        record_key = self.record_key(profile_id)
        records = await self.client.hgetall(record_key)
        pipe = self.client.pipeline(transaction=False)
        for index, record in sorted(records.items()):
            for key in sorted(self._members_of(_text(index), _parse_record(record))):
                pipe.srem(key, profile_id)
        pipe.delete(record_key)
        removed = await pipe.execute()
        return sum(removed[:-1])

    async def entries(self, profile_id: str) -> dict[str, tuple[str, tuple[str, ...]]]:
        """index → (zone, date keys) the person is indexed under now."""
        records = await self.client.hgetall(self.record_key(profile_id))
        found = {}
        for index, record in records.items():
            lines = _parse_record(record)
            if lines:
                found[_text(index)] = lines[-1]
        return found

    # -- the sweeps ---------------------------------------------------------------------------

    async def zones(self) -> list[str]:
        return sorted(_text(z) for z in await self.client.smembers(self.zones_key))

    async def due_sweeps(self, now_ms: int, catch_up_days: int = 7) -> list[tuple[str, str]]:
        """(zone, local date) of every sweep due at `now_ms`, oldest date first.

        A zone's due dates are those that have begun there since its last completed
        sweep: its current local date the first time, and after downtime every missed
        date too, back to at most `catch_up_days` before the current one.
        """
        if now_ms.__class__ is not int or catch_up_days.__class__ is not int or catch_up_days < 0:
            raise ValueError("now_ms and catch_up_days must be integers, catch_up_days >= 0")
        zones = await self.zones()
        if not zones:
            return []
        pipe = self.client.pipeline(transaction=False)
        for zone in zones:
            pipe.get(self.swept_key(zone))
        marks = await pipe.execute()
        due = []
        for zone, mark in zip(zones, marks):
            today = local_date_at(now_ms, zone)
            first = today
            if mark:
                after_mark = date.fromisoformat(_text(mark)) + timedelta(days=1)
                first = max(after_mark, today - timedelta(days=catch_up_days))
            day = first
            while day <= today:
                due.append((day.isoformat(), zone))
                day += timedelta(days=1)
        return [(zone, day) for day, zone in sorted(due)]

    async def members(self, zone: str, index: str, local_date: str,
                      batch: int = 500) -> AsyncIterator[list[str]]:
        """The profile ids celebrating `index` on `local_date` in `zone`, in batches.

        A person is yielded once per call; one indexed under a date key that no longer
        matches (a crash mid-update) may still be among them, so the caller checks each
        against the profile before acting."""
        zone = canonical_zone(zone)
        seen: set[str] = set()
        for date_key in keys_for_day(local_date):
            key = self.member_key(zone, index, date_key)
            cursor: int = 0
            while True:
                cursor, found = await self.client.sscan(key, cursor, count=batch)
                fresh = [m for m in map(_text, found) if m not in seen]
                seen.update(fresh)
                if fresh:
                    yield fresh
                if not cursor:
                    break

    async def mark_swept(self, zone: str, local_date: str) -> bool:
        """Record the zone's sweep of `local_date` as complete; never moves back.
        Answers whether the mark moved."""
        if len(local_date) != 10 or not is_date_key(local_date):
            raise ValueError(f"not a date: {local_date!r}")
        moved = await self._mark_swept(keys=[self.swept_key(canonical_zone(zone))],
                                       args=[local_date])
        return bool(moved)
