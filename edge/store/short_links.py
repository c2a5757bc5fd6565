"""Short links of text messages: `kairos:short:<code>` -> the signed click token the
code stands for (edge/ingest/tracking.py), kept for `delivery.short_link_days`.

The token carries the destination and its signature, so a stored value changed by
anyone who can write to Redis still cannot send a reader elsewhere than a token we
signed; the code is a MAC of the token, the same on every attempt at the message.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis

PREFIX = "kairos:short:"


async def save(client: aioredis.Redis, codes: Mapping[str, str], ttl_ms: int) -> None:
    if not codes:
        return
    async with client.pipeline(transaction=False) as pipe:
        for code, token in codes.items():
            pipe.set(PREFIX + code, token, px=ttl_ms)
        await pipe.execute()


async def load(client: aioredis.Redis, code: str) -> str | None:
    found = await client.get(PREFIX + code)
    return found.decode() if isinstance(found, bytes) else found
