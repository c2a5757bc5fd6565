"""What ad-audience exports read and remember in Redis.

A segment's members are found by scanning the profile hashes (a profile keeps its
segments in `sg`), a page of keys per round trip; an export runs every few hours,
so it reads the profiles rather than have every event keep an index per segment.
A stored segment (edge/store/segments.py, such as a lookalike) lists its members
itself: they are read from its set, and their profiles as the scan reads them.

| key | type | holds |
|---|---|---|
| `kairos:audience:{a:<name>}` | hash | profile id -> the hashed identifiers last sent for the person |
| `kairos:audiences` | hash | audience name -> when it was last exported (ms) |
| `kairos:audience:{a:<name>}:lock` | string | the worker exporting it now (expires) |

The export's state is written as each request is answered, so an export cut short
sends what is left (and nothing twice that was answered) the next time.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from edge.store import keys as K
from edge.store import segments
from edge.store.profiles import decode_delivery_state

LAST_EXPORTS = "kairos:audiences"
TRAITS = K.SUFFIXES[4].encode()  # the profile's traits hash, beside it
SCAN_PAGE = 1_000
MAX_HOPS = 16  # pointers followed from a stored member, as the profile store does


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
    """Every profile now in `segment`, from one of two sources: the stored segment of
    that name when there is one (edge/store/segments.py: `kairos lookalike` writes
    them), else the profiles whose rules' segments (`sg`) hold it. A profile merged
    into another is its pointer: a scan skips it (the other is found under its own
    key), a stored member's is followed to the profile it joined."""
    seen: set[bytes] = set()
    if await segments.is_stored(client, segment):
        async for ids in segments.member_pages(client, segment, page):
            keys = [K.profile_key(profile_id).encode() for profile_id in ids]
            for member in await _members(client, keys, _anyone, seen, follow=True):
                yield member
        return
    wanted = functools.partial(_in_segment, segment=segment)
    async for keys in profile_key_pages(client, page):
        for member in await _members(client, keys, wanted, seen, follow=False):
            yield member


async def profile_key_pages(client: aioredis.Redis, page: int = SCAN_PAGE
                            ) -> AsyncIterator[list[bytes]]:
    """The key of every profile hash, a SCAN page at a time: the profiles, and the
    pointers that merged ones left (not the keys beside a profile: :t, :cart, ...)."""
    cursor = 0
    while True:
        cursor, found = await client.scan(cursor, match="{p:*}", count=page, _type="hash")
        profile_keys = [key for key in found if key.endswith(b"}")]
        if profile_keys:
            yield profile_keys
        if cursor == 0:
            return


async def _members(client: aioredis.Redis, profile_keys: list[bytes],
                   wanted: Callable[[bytes | None], bool], seen: set[bytes],
                   follow: bool) -> list[SegmentMember]:
    heads = await _heads(client, profile_keys)
    chosen: list[tuple[bytes, list[Any]]] = []
    for _ in range(MAX_HOPS):
        pointers = []
        for key, head in zip(profile_keys, heads):
            if head[3]:
                if follow:
                    pointers.append(K.profile_key(head[3].decode()).encode())
            elif head[0] and head[0] not in seen and wanted(head[1]):
                seen.add(head[0])
                chosen.append((key, head))
        if not pointers:
            break
        profile_keys, heads = pointers, await _heads(client, pointers)
    if not chosen:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for key, _ in chosen:
            pipe.hmget(key + TRAITS, "email", "phone")
        traits = await pipe.execute()
    return [SegmentMember(
        profile_id=head[0].decode(),
        traits={name: orjson.loads(raw) for name, raw in
                (("email", email), ("phone", phone)) if raw},
        delivery_state=decode_delivery_state(head[2] or b""))
        for (_, head), (email, phone) in zip(chosen, traits)]


async def _heads(client: aioredis.Redis, profile_keys: list[bytes]) -> list[list[Any]]:
    """Per key: the profile's id, its segments, its delivery state, its pointer."""
    async with client.pipeline(transaction=False) as pipe:
        for key in profile_keys:
            pipe.hmget(key, "id", "sg", "dl", "->")
        return await pipe.execute()


def _anyone(raw: bytes | None) -> bool:
    return True


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
