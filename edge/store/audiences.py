"""What ad-audience exports read and remember in Redis.

A segment's members are found by scanning the profile hashes (a profile keeps its
segments in `sg`), a page of keys per round trip; an export runs every few hours,
so it reads the profiles rather than have every event keep an index per segment.

| key | type | holds |
|---|---|---|
| `kairos:audience:{a:<name>}` | hash | profile id -> the hashed identifiers last sent for the person |
| `kairos:audiences` | hash | audience name -> when it was last exported (ms) |
| `kairos:audience:{a:<name>}:lock` | string | the worker exporting it now (expires) |

The export's state is written as each request is answered, so an export cut short
sends what is left (and nothing twice that was answered) the next time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from edge.store import keys as K
from edge.store.profiles import decode_delivery_state

LAST_EXPORTS = "kairos:audiences"
TRAITS = K.SUFFIXES[4].encode()  # the profile's traits hash, beside it
SCAN_PAGE = 1_000


@dataclass(frozen=True, slots=True)
class SegmentMember:
    profile_id: str
    traits: dict[str, Any]  # email and phone, when the person has them
    delivery_state: dict[str, Any]  # the stored "dl": consent among it


def state_key(name: str) -> str:
    return f"kairos:audience:{{a:{name}}}"


def lock_key(name: str) -> str:
    return state_key(name) + ":lock"


async def segment_members(client: aioredis.Redis, segment: str,
                          page: int = SCAN_PAGE) -> AsyncIterator[SegmentMember]:
    """Every profile now in `segment` (a profile merged into another is its pointer and
    is skipped; the other is found under its own key)."""
    cursor = 0
    while True:
        cursor, found = await client.scan(cursor, match="{p:*}", count=page, _type="hash")
        profile_keys = [key for key in found if key.endswith(b"}")]  # not :t, :cart, ...
        if profile_keys:
            async with client.pipeline(transaction=False) as pipe:
                for key in profile_keys:
                    pipe.hmget(key, "id", "sg", "dl", "->")
                heads = await pipe.execute()
            members = [(key, head) for key, head in zip(profile_keys, heads)
                       if head[0] and not head[3] and _in_segment(head[1], segment)]
            if members:
                async with client.pipeline(transaction=False) as pipe:
                    for key, _ in members:
                        pipe.hmget(key + TRAITS, "email", "phone")
                    traits = await pipe.execute()
                for (_, head), (email, phone) in zip(members, traits):
                    yield SegmentMember(
                        profile_id=head[0].decode(),
                        traits={name: orjson.loads(raw) for name, raw in
                                (("email", email), ("phone", phone)) if raw},
                        delivery_state=decode_delivery_state(head[2] or b""))
        if cursor == 0:
            return


def _in_segment(raw: bytes | None, segment: str) -> bool:
    if not raw:
        return False
    try:
        return segment in orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False


async def exported(client: aioredis.Redis, name: str) -> dict[str, str]:
    """profile id -> the hashes last sent for them (as Member.stored() wrote them)."""
    found: dict[str, str] = {}
    async for field, value in client.hscan_iter(state_key(name), count=SCAN_PAGE):
        found[field.decode()] = value.decode()
    return found


async def record_added(client: aioredis.Redis, name: str, sent: Mapping[str, str]) -> None:
    if sent:
        await client.hset(state_key(name), mapping=dict(sent))


async def record_removed(client: aioredis.Redis, name: str, profile_ids: Sequence[str]) -> None:
    if profile_ids:
        await client.hdel(state_key(name), *profile_ids)


async def last_exports(client: aioredis.Redis) -> dict[str, int]:
    return {name.decode(): int(at) for name, at in (await client.hgetall(LAST_EXPORTS)).items()}


async def mark_exported(client: aioredis.Redis, name: str, at_ms: int) -> None:
    await client.hset(LAST_EXPORTS, name, int(at_ms))


def export_lock(client: aioredis.Redis, name: str, lease_s: float) -> Any:
    """Held by the one worker exporting `name` now; it expires if that worker dies."""
    return client.lock(lock_key(name), timeout=lease_s, blocking=False)
