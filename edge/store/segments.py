"""Stored segments: a list of people written whole, not a condition of the rules.

The rules' segments live on each profile (`sg`) and the edge recomputes them from the
rules on every event, so a segment worked out elsewhere (`kairos lookalike`) cannot be
written there: the person's next event would overwrite it. A stored segment is a set
of profile ids of its own, replaced whole each time it is written, with what wrote it
and when beside it. Both keys share the hash tag `{s:<name>}`, so the replacement is
one transaction on Redis Cluster too, and a reader never sees half of it.

| key | type | holds |
|---|---|---|
| `kairos:segment:{s:<name>}` | set | the members' profile ids |
| `kairos:segment:{s:<name>}:about` | hash | `stored_at` (ms), `size`, and what its writer says of it (`source`, `seed`, ...) |

A stored segment exists while its `:about` does, even with no members: an empty
lookalike stays a stored segment (exported as nobody), rather than turning into a
rules' segment of the same name that nobody is in either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence

import redis.asyncio as aioredis

WRITE_CHUNK = 5_000  # ids per SADD
READ_PAGE = 1_000


def members_key(name: str) -> str:
    return f"kairos:segment:{{s:{name}}}"


def about_key(name: str) -> str:
    return members_key(name) + ":about"


async def write_segment(client: aioredis.Redis, name: str, profile_ids: Sequence[str],
                        about: Mapping[str, str | int | float], now_ms: int) -> None:
    """Replace the stored segment `name` with `profile_ids`, in one transaction."""
    staging = members_key(name) + ":staging"
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(staging)
        for start in range(0, len(profile_ids), WRITE_CHUNK):
            pipe.sadd(staging, *profile_ids[start:start + WRITE_CHUNK])
        if profile_ids:
            pipe.rename(staging, members_key(name))
        else:  # RENAME of a key that was never made fails: an empty set is no key at all
            pipe.delete(members_key(name))
        pipe.delete(about_key(name))
        pipe.hset(about_key(name), mapping={**about, "stored_at": now_ms,
                                            "size": len(profile_ids)})
        await pipe.execute()


async def is_stored(client: aioredis.Redis, name: str) -> bool:
    return bool(await client.exists(about_key(name)))


async def about_segment(client: aioredis.Redis, name: str) -> dict[str, str]:
    """What its writer said of the stored segment `name`; empty when there is none."""
    return {key.decode(): value.decode()
            for key, value in (await client.hgetall(about_key(name))).items()}


async def member_pages(client: aioredis.Redis, name: str,
                       page: int = READ_PAGE) -> AsyncIterator[list[str]]:
    """The stored segment's profile ids, a page at a time (in no particular order)."""
    cursor = 0
    while True:
        cursor, found = await client.sscan(members_key(name), cursor, count=page)
        if found:
            yield [member.decode() for member in found]
        if cursor == 0:
            return
