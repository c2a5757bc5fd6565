"""What event forwarding to destinations keeps in Redis.

Each destination reads the event stream through a consumer group of its own
(`kairos-destination-<name>`), so one slow or failing destination holds back
nobody else. Erasures travel on a stream of their own: an erased person's events
are removed from the event stream, but the systems that received them must be
told to delete them too.

| key | type | holds |
|---|---|---|
| `kairos:erasures` | stream | `p` (the erased profile id), `ids` (JSON: every identifier joined to it), `at` (ms); written only while a destination forwards erasures, trimmed once every such destination has sent them |
| `kairos:destinations:stats` | hash | `<destination>:<forwarded|dead|erasures>` -> count |
| `kairos:destinations:dead` | stream | batches a destination refused for good, or past its attempts: destination, reason, the events' stream ids and message ids |
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

ERASURES = "kairos:erasures"
STATS = "kairos:destinations:stats"
DEAD = "kairos:destinations:dead"
DEAD_MAX = 100_000  # dead letters kept (MAXLEN ~)


def group_of(destination: str) -> str:
    return f"kairos-destination-{destination}"


@dataclass(frozen=True, slots=True)
class Erasure:
    profile_id: str
    identifiers: tuple[str, ...]
    at_ms: int


def decode_erasure(fields: dict[bytes, bytes]) -> Erasure:
    return Erasure(fields[b"p"].decode(), tuple(orjson.loads(fields[b"ids"])),
                   int(fields[b"at"]))


async def record_erasure(client: aioredis.Redis, profile_id: str, identifiers: Sequence[str],
                         now_ms: int) -> None:
    await client.xadd(ERASURES, {"p": profile_id, "ids": orjson.dumps(sorted(identifiers)),
                                 "at": int(now_ms)})


async def count(client: aioredis.Redis, destination: str, what: str, n: int = 1) -> None:
    if n:
        await client.hincrby(STATS, f"{destination}:{what}", n)


async def dead_letter(client: aioredis.Redis, destination: str, reason: str,
                      entry_ids: Sequence[str], message_ids: Sequence[str]) -> None:
    await client.xadd(DEAD, {"destination": destination, "reason": reason[:500],
                             "entries": orjson.dumps(list(entry_ids)),
                             "messages": orjson.dumps(list(message_ids))},
                      maxlen=DEAD_MAX, approximate=True)


async def trim_erasures(client: aioredis.Redis, groups: Sequence[str]) -> None:
    """Drop the erasures every one of `groups` has sent: the stream keeps identifiers of
    erased people only as long as a destination still has to be told."""
    try:
        infos = {info["name"].decode() if isinstance(info["name"], bytes) else info["name"]: info
                 for info in await client.xinfo_groups(ERASURES)}
    except ResponseError:  # no stream yet
        return
    bounds = []
    for group in groups:
        info = infos.get(group)
        if info is None:
            return  # a destination that has not started reading: keep everything for it
        if info["pending"]:
            first = await client.xpending_range(ERASURES, group, min="-", max="+", count=1)
            bounds.append(_id(first[0]["message_id"]))
        else:
            ms, seq = _id(info["last-delivered-id"])
            bounds.append((ms, seq + 1))  # MINID keeps ids from this one on
    if bounds:
        ms, seq = min(bounds)
        await client.xtrim(ERASURES, minid=f"{ms}-{seq}")


def _id(value: Any) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else str(value)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def group_lag(client: aioredis.Redis, stream: str, group: str, now_ms: int
                    ) -> tuple[int, float] | None:
    """(entries taken and not yet forwarded, seconds since the oldest entry not yet
    forwarded was appended); None while the group does not exist."""
    try:
        infos = await client.xinfo_groups(stream)
    except ResponseError:
        return None
    info = next((i for i in infos if (i["name"].decode() if isinstance(i["name"], bytes)
                                      else i["name"]) == group), None)
    if info is None:
        return None
    pending = int(info["pending"])
    if pending:
        first = await client.xpending_range(stream, group, min="-", max="+", count=1)
        oldest = _id(first[0]["message_id"])[0]
    else:
        ms, seq = _id(info["last-delivered-id"])
        following = await client.xrange(stream, min=f"{ms}-{seq + 1}", max="+", count=1)
        if not following:
            return 0, 0.0
        oldest = _id(following[0][0])[0]
    return pending, max(0.0, (now_ms - oldest) / 1000)
