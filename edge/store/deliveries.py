"""The delivery ledger: one hash per outbound message id, so that a message the outbox
delivers again (a crashed connector, a redelivered entry) or a retry that fires twice
reaches the provider at most once, and what became of it can be asked later.

| key | type | holds |
|---|---|---|
| `kairos:delivery:{<message id>}` | hash | s: sending, retry, sent, failed or dead; a: attempts; l: the running attempt's lease (worker wall clock, ms); p: the provider's id; r: the reason; t: when it ended; m: the message (JSON) |
| `kairos:delivery:provider:{<provider>:<provider id>}` | string | the message id the provider's id belongs to, for status callbacks |
| `kairos:delivery:retry:{t<n>}` (+ `:lease`) | zsets | retries waiting, as timers (edge/store/timers.py), members are message ids |
| `kairos:outbox:dead` | stream | messages given up on, with the reason |

Each ledger hash is its own slot, so the scripts run on Redis Cluster. The ledger
expires (`ttl_ms`) well after any redelivery could come.
"""

from __future__ import annotations

from typing import Any

import msgspec
import redis.asyncio as aioredis

from edge.store import streams
from edge.store.scripts import (DELIVERY_CLAIM, DELIVERY_FINISH, DeliveryClaimArgs,
                                DeliveryFinishArgs, argv, run_scripts)
from edge.store.timers import TimerStore

PREFIX = "kairos:delivery"
DEAD_LETTERS = "kairos:outbox:dead"
DEAD_LETTERS_MAX = 100_000
RETRY_SHARDS = 4


class Claim(msgspec.Struct, frozen=True):
    """What delivery_claim.lua answered: `status` go (send, this is `attempt`), done
    (`state` says how it ended), busy, scheduled, or interrupted."""

    status: str
    attempt: int = 0
    state: str = ""
    lease_until: int = 0


class Record(msgspec.Struct, frozen=True):
    state: str
    attempts: int
    provider_id: str
    reason: str
    ended_ms: int


def retry_timers(client: aioredis.Redis, shards: int = RETRY_SHARDS) -> TimerStore:
    """The retries waiting, as timers whose members are message ids."""
    return TimerStore(client, shards=shards, prefix=f"{PREFIX}:retry")


def ledger_key(message_id: str) -> str:
    return f"{PREFIX}:{{{message_id}}}"


def provider_key(provider: str, provider_id: str) -> str:
    return f"{PREFIX}:provider:{{{provider}:{provider_id}}}"


class DeliveryLedger:
    def __init__(self, client: aioredis.Redis, ttl_ms: int,
                 retry_shards: int = RETRY_SHARDS) -> None:
        self.client = client
        self.ttl_ms = ttl_ms
        self.retries = retry_timers(client, retry_shards)

    async def claim(self, message_id: str, mode: str, now_ms: int, lease_ms: int) -> Claim:
        lease_until = now_ms + lease_ms
        [reply] = await run_scripts(self.client, [(
            DELIVERY_CLAIM, [ledger_key(message_id)],
            argv(DeliveryClaimArgs(mode=mode, now=now_ms, lease_until=lease_until,
                                   ttl_ms=self.ttl_ms)))])
        status = _text(reply[0])
        if status == "go":
            return Claim("go", attempt=int(reply[1]), lease_until=lease_until)
        if status == "done":
            return Claim("done", state=_text(reply[1]))
        if status == "interrupted":
            return Claim("interrupted", attempt=int(reply[1]))
        return Claim(status)

    async def finish(self, message: streams.OutboundMessage, claim: Claim, state: str,
                     now_ms: int, provider_id: str = "", reason: str = "") -> bool:
        """Record the attempt's end, with the message; False when the caller no longer
        held it."""
        [reply] = await run_scripts(self.client, [(
            DELIVERY_FINISH, [ledger_key(message.message_id)],
            argv(DeliveryFinishArgs(state=state, lease_until=claim.lease_until,
                                    provider_id=provider_id, reason=reason, now=now_ms,
                                    message=msgspec.json.encode(message).decode())))])
        return bool(reply)

    async def remember_provider_id(self, provider: str, provider_id: str,
                                   message_id: str) -> None:
        """So that the provider's status callback, which names only its own id, finds
        the message, and through it the person and the journey step."""
        await self.client.set(provider_key(provider, provider_id), message_id, px=self.ttl_ms)

    async def message_for_provider_id(self, provider: str, provider_id: str
                                      ) -> tuple[streams.OutboundMessage, Record] | None:
        message_id = await self.client.get(provider_key(provider, provider_id))
        if message_id is None:
            return None
        message = await self.waiting_message(message_id.decode())
        record = await self.record(message_id.decode())
        return (message, record) if message is not None and record is not None else None

    async def schedule_retry(self, message: streams.OutboundMessage, claim: Claim,
                             due_ms: int, now_ms: int, reason: str) -> bool:
        """Keep the message in its ledger and wake it at `due_ms` (on the journeys' clock).
        The timer is set first: a crash between the two leaves a timer that finds the
        attempt interrupted, never a retry state that no timer wakes."""
        await self.retries.schedule(message.message_id, message.message_id, due_ms)
        return await self.finish(message, claim, "retry", now_ms, reason=reason)

    async def waiting_message(self, message_id: str) -> streams.OutboundMessage | None:
        raw = await self.client.hget(ledger_key(message_id), "m")
        return None if raw is None else msgspec.json.decode(raw, type=streams.OutboundMessage)

    async def dead_letter(self, message: streams.OutboundMessage, reason: str,
                          attempts: int, now_ms: int) -> None:
        await self.client.xadd(DEAD_LETTERS, {
            "message": msgspec.json.encode(message), "reason": reason,
            "attempts": str(attempts), "at": str(now_ms)},
            maxlen=DEAD_LETTERS_MAX, approximate=True)

    async def record(self, message_id: str) -> Record | None:
        found = await self.client.hgetall(ledger_key(message_id))
        if not found:
            return None
        field = {_text(k): _text(v) for k, v in found.items() if k != b"m"}
        return Record(state=field.get("s", ""), attempts=int(field.get("a") or 0),
                      provider_id=field.get("p", ""), reason=field.get("r", ""),
                      ended_ms=int(field.get("t") or 0))

    async def dead_letters(self, count: int = 100) -> list[dict[str, Any]]:
        out = []
        for entry_id, fields in await self.client.xrange(DEAD_LETTERS, count=count):
            message = msgspec.json.decode(fields[b"message"], type=streams.OutboundMessage)
            out.append({"id": _text(entry_id), "message": message,
                        "reason": _text(fields[b"reason"]),
                        "attempts": int(fields[b"attempts"])})
        return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
