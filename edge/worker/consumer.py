"""Reading a stream through a consumer group, at least once.

Several workers share one group; each entry goes to one of them and stays pending
until it is acknowledged. An entry whose worker died (kill -9 mid-batch) stays
pending under that worker's name: after `visibility_ms` without an acknowledgement
any other worker takes it over with XAUTOCLAIM, so nothing acknowledged by the edge
is lost. What a worker does with an entry must therefore be idempotent: the journey
runner dedupes by the stimulus (see edge/worker/runner.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from edge.store import streams


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    record: Any  # streams.Record, or what the consumer's decode makes; None: unreadable


class StreamConsumer:
    def __init__(self, client: aioredis.Redis, stream: str, group: str, consumer: str,
                 visibility_ms: int = 30_000, batch: int = 200, block_ms: int | None = 200,
                 start: str = "$", decode: Callable[[Any], Any] = streams.decode) -> None:
        self.client = client
        self.decode = decode  # an entry's fields -> its record (raises if it cannot)
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.visibility_ms = visibility_ms
        self.batch = batch
        self.block_ms = block_ms  # None: a read does not wait
        self.start = start  # where a new group begins: "$" (what comes next) or "0" (all)
        self._claim_cursor = "0-0"

    async def ensure_group(self) -> None:
        try:
            await self.client.xgroup_create(self.stream, self.group, id=self.start, mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def read(self) -> list[Entry]:
        """Entries abandoned by dead consumers first, then new ones (waiting up to block_ms)."""
        claimed = await self._reclaim()
        if claimed:
            return claimed
        try:
            reply = await self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"},
                                                 count=self.batch, block=self.block_ms)
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            await self.ensure_group()  # the stream was deleted (FLUSHALL, a restore)
            return []
        entries: list[Entry] = []
        for _, items in reply or ():
            entries += [self._entry(entry_id, fields) for entry_id, fields in items]
        return entries

    async def _reclaim(self) -> list[Entry]:
        try:
            reply = await self.client.xautoclaim(self.stream, self.group, self.consumer,
                                                 min_idle_time=self.visibility_ms,
                                                 start_id=self._claim_cursor, count=self.batch)
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            await self.ensure_group()
            return []
        cursor, items = reply[0], reply[1]
        self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        # an entry erased meanwhile (a person's erasure XDELs it) comes back without fields
        return [self._entry(entry_id, fields) for entry_id, fields in items if entry_id]

    async def ack(self, entry_ids: list[str]) -> None:
        if entry_ids:
            await self.client.xack(self.stream, self.group, *entry_ids)

    async def pending(self) -> int:
        summary = await self.client.xpending(self.stream, self.group)
        return int(summary["pending"]) if summary else 0

    def _entry(self, entry_id: Any, fields: Any) -> Entry:
        text_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        if not fields:
            return Entry(text_id, None)
        try:
            return Entry(text_id, self.decode(fields))
        except Exception:  # a malformed entry must not stop the group: skipped, and counted
            return Entry(text_id, None)


def entry_time_ms(entry_id: str) -> int:
    """When Redis appended the entry: the first part of its id."""
    return int(entry_id.split("-", 1)[0])
