"""Durable timers for the automation worker: schedule a member for a time, claim what
is due under a lease, release it when done; a worker that dies without releasing
loses its leases when they expire, and the next claim takes them over.

Keys (prefix `kairos:timers` by default), per shard n in 0..shards-1:

| key | type | holds |
|---|---|---|
| `<prefix>:{t<n>}` | zset | scheduled members, scored by due time (ms) |
| `<prefix>:{t<n>}:lease` | zset | claimed members, scored by lease expiry (ms) |

A shard's two keys share the hash tag `{t<n>}`, so each script touches one slot
(Redis Cluster safe), and a person's timers all live in the shard
`crc32(person id) % shards`, the same in every process. Members are the caller's
opaque strings; a member is scheduled at most once at a time (scheduling it
again moves it), and leased by at most one holder at a time: a member that
comes due while leased (its holder rescheduled it) waits until the lease is
released or expires.

A lease is identified by its expiry: release and extend act only if the member's
lease score still equals the one the caller was given. A reclaimed lease always
expires later than the one it replaces (`lease_ms` must be positive and the new
claimer's clock has passed the old expiry), so a holder that lost its lease
cannot release or extend the new one.

Delivery is at least once: a holder killed after doing the work but before
releasing has it done again by whoever reclaims the lease.
"""

from __future__ import annotations

import zlib
from typing import Any, Sequence

import msgspec
import redis.asyncio as aioredis

from edge.store.scripts import (RELEASE_CHUNK, TIMER_CLAIM, TIMER_EXTEND, TIMER_RELEASE,
                                ClaimedTimer, TimerClaimArgs, TimerExtendArgs,
                                TimerReleaseArgs, argv, run_scripts)

CLAIMED_TIMER_WIDTH = len(ClaimedTimer.__struct_fields__)
_pack = msgspec.msgpack.Encoder().encode


class Timer(msgspec.Struct, frozen=True):
    """A claimed timer, held until `lease_until_ms`. For a reclaimed timer (its
    previous lease expired unreleased) `due_ms` is that lease's expiry: the
    original due time is not kept once a timer is claimed."""

    shard: int
    member: str
    due_ms: int
    lease_until_ms: int
    reclaimed: bool = False


class TimerCounts(msgspec.Struct, frozen=True):
    """For metrics: the lag of the worker is `now - oldest_overdue_ms`."""

    pending: int  # scheduled, due or not (a leased member rescheduled counts here too)
    leased: int  # claimed and not released, expired leases included
    overdue: int  # scheduled with a due time at or before now
    oldest_overdue_ms: int | None  # the earliest due time among those, None when none


class TimerStore:
    def __init__(self, client: aioredis.Redis, shards: int = 8,
                 prefix: str = "kairos:timers") -> None:
        if shards < 1:
            raise ValueError("shards must be at least 1")
        self.client = client
        self.shards = shards
        self.prefix = prefix
        # Which shard gets the remainder of a split limit first; turns each claim so
        # that with a limit below the number of shards every shard is asked in turn.
        self._turn = 0

    # -- keys -------------------------------------------------------------------------------

    def shard_of(self, person_id: str) -> int:
        return zlib.crc32(person_id.encode()) % self.shards

    def due_key(self, shard: int) -> str:
        return f"{self.prefix}:{{t{shard}}}"

    def lease_key(self, shard: int) -> str:
        return f"{self.prefix}:{{t{shard}}}:lease"

    # -- scheduling -------------------------------------------------------------------------

    async def schedule(self, person_id: str, member: str, due_ms: int) -> None:
        """Schedule `member` at `due_ms`; an already scheduled member moves there."""
        await self.client.zadd(self.due_key(self.shard_of(person_id)), {member: int(due_ms)})

    async def schedule_many(self, items: Sequence[tuple[str, str, int]]) -> None:
        """(person id, member, due ms) each, in one round trip. A member repeated keeps
        its last time."""
        if not items:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for person_id, member, due_ms in items:
                pipe.zadd(self.due_key(self.shard_of(person_id)), {member: int(due_ms)})
            await pipe.execute()

    def queue_writes(self, pipe: Any, writes: "TimerWrites") -> None:
        """The gathered schedules and cancels, as a few commands per shard of the
        caller's pipeline (several stores' writes in one round trip)."""
        by_shard: dict[int, tuple[dict[str, int], list[str], list[str]]] = {}
        for (person_id, member), due_ms in writes.due.items():
            scheduled, unscheduled, _ = by_shard.setdefault(self.shard_of(person_id),
                                                           ({}, [], []))
            if due_ms is None:
                unscheduled.append(member)
            else:
                scheduled[member] = due_ms
        for person_id, member in writes.dropped_leases:
            by_shard.setdefault(self.shard_of(person_id), ({}, [], []))[2].append(member)
        for shard, (scheduled, unscheduled, dropped) in by_shard.items():
            if scheduled:
                pipe.zadd(self.due_key(shard), scheduled)
            if unscheduled:
                pipe.zrem(self.due_key(shard), *unscheduled)
            if dropped:
                pipe.zrem(self.lease_key(shard), *dropped)

    async def cancel(self, person_id: str, member: str) -> None:
        """Unschedule `member` and drop its lease: a holder's release then answers False."""
        shard = self.shard_of(person_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zrem(self.due_key(shard), member)
            pipe.zrem(self.lease_key(shard), member)
            await pipe.execute()

    async def due_of(self, person_id: str, member: str) -> int | None:
        score = await self.client.zscore(self.due_key(self.shard_of(person_id)), member)
        return None if score is None else int(score)

    # -- leases -----------------------------------------------------------------------------

    async def claim(self, now_ms: int, limit: int, lease_ms: int,
                    lease_now_ms: int | None = None) -> list[Timer]:
        """Lease at most `limit` timers until `lease_now_ms + lease_ms`: expired leases
        first (`reclaimed`), then timers due by `now_ms`, in due order within each shard.
        The answer is sorted by `due_ms` across shards.

        Due times are on the journeys' clock (`now_ms`), leases on the workers' own
        (`lease_now_ms`, the same by default): under a simulated clock a lease still
        expires as time passes for the worker that holds it.

        The limit is split over the shards, all asked in one round trip; room a shard
        left unused goes, in a further round trip, to the shards that had more waiting,
        so fewer than `limit` come back only when nothing more was due. Which timers
        are taken is not the earliest `limit` of all shards together: a shard's
        backlog is drained earliest first, but the shards share the limit.
        """
        if lease_ms <= 0:
            raise ValueError("lease_ms must be positive")
        if limit <= 0:
            return []
        lease_now = int(now_ms if lease_now_ms is None else lease_now_ms)
        now_ms, lease_until = int(now_ms), lease_now + int(lease_ms)
        turn, self._turn = self._turn, (self._turn + 1) % self.shards
        # A shard asked for 0 only answers whether it has anything waiting.
        asked = dict(zip(range(self.shards), _split(limit, self.shards, turn)))
        timers: list[Timer] = []
        while asked:
            calls = [(TIMER_CLAIM, [self.due_key(shard), self.lease_key(shard)],
                      argv(TimerClaimArgs(now=now_ms, lease_now=lease_now,
                                          lease_until=lease_until, limit=share)))
                     for shard, share in asked.items()]
            waiting = []
            for shard, reply in zip(asked, await run_scripts(self.client, calls)):
                _status, more, taken = reply
                for i in range(0, len(taken), CLAIMED_TIMER_WIDTH):
                    claimed = ClaimedTimer(*taken[i:i + CLAIMED_TIMER_WIDTH])
                    timers.append(Timer(shard=shard, member=claimed.member.decode(),
                                        due_ms=_ms(claimed.due), lease_until_ms=lease_until,
                                        reclaimed=bool(claimed.reclaimed)))
                if more:
                    waiting.append(shard)
            left = limit - len(timers)
            if left <= 0 or not waiting:
                break
            # Every shard asked again gets at least one, and either takes one or
            # answers that nothing is left: the rounds end.
            asked = {shard: share for shard, share in
                     zip(waiting, _split(left, len(waiting), turn)) if share}
        timers.sort(key=lambda t: (t.due_ms, t.shard, t.member))
        return timers

    async def release(self, timer: Timer) -> bool:
        """Drop the lease if `timer` still holds it. False when the lease was taken over
        (after expiring) or cancelled: then nothing changes. A member the holder
        rescheduled stays scheduled."""
        [released] = await self.release_many([timer])
        return released

    async def release_many(self, timers: Sequence[Timer]) -> list[bool]:
        """release() of each, in one round trip: one call per shard and lease."""
        if not timers:
            return []
        groups: dict[tuple[int, int], list[int]] = {}
        for index, timer in enumerate(timers):
            groups.setdefault((timer.shard, timer.lease_until_ms), []).append(index)
        calls, order = [], []
        for (shard, lease_until), indexes in groups.items():
            for start in range(0, len(indexes), RELEASE_CHUNK):
                chunk = indexes[start:start + RELEASE_CHUNK]
                members = _pack([timers[i].member for i in chunk])
                calls.append((TIMER_RELEASE, [self.lease_key(shard)],
                              argv(TimerReleaseArgs(lease_until=lease_until, members=members))))
                order.append(chunk)
        released = [False] * len(timers)
        for chunk, reply in zip(order, await run_scripts(self.client, calls)):
            for index, flag in zip(chunk, reply):
                released[index] = bool(flag)
        return released

    async def extend(self, timer: Timer, lease_ms: int, now_ms: int) -> Timer | None:
        """Renew a lease the caller still holds (its own, not expired at `now_ms`) until
        `now_ms + lease_ms`: the Timer to release later, or None if it is not held."""
        if lease_ms <= 0:
            raise ValueError("lease_ms must be positive")
        new_lease_until = int(now_ms) + int(lease_ms)
        [extended] = await run_scripts(self.client, [(
            TIMER_EXTEND, [self.lease_key(timer.shard)],
            argv(TimerExtendArgs(member=timer.member, lease_until=timer.lease_until_ms,
                                 now=int(now_ms), new_lease_until=new_lease_until)))])
        return msgspec.structs.replace(timer, lease_until_ms=new_lease_until) if extended else None

    # -- metrics ----------------------------------------------------------------------------

    async def counts(self, now_ms: int) -> TimerCounts:
        async with self.client.pipeline(transaction=False) as pipe:
            for shard in range(self.shards):
                due = self.due_key(shard)
                pipe.zcard(due)
                pipe.zcard(self.lease_key(shard))
                pipe.zcount(due, "-inf", int(now_ms))
                pipe.zrange(due, 0, 0, withscores=True)
            replies = await pipe.execute()
        pending = leased = overdue = 0
        oldest: int | None = None
        for i in range(0, len(replies), 4):
            n_due, n_leased, n_overdue, first = replies[i:i + 4]
            pending, leased, overdue = pending + n_due, leased + n_leased, overdue + n_overdue
            if n_overdue:
                first_due = int(first[0][1])
                oldest = first_due if oldest is None else min(oldest, first_due)
        return TimerCounts(pending=pending, leased=leased, overdue=overdue,
                           oldest_overdue_ms=oldest)


class TimerWrites:
    """Schedules and cancels gathered for one pipeline. Each is idempotent, so what a
    sequence leaves is what counts: a member's last write sets its due time (or
    unschedules it), and a cancel anywhere in the sequence drops its lease."""

    def __init__(self) -> None:
        self.due: dict[tuple[str, str], int | None] = {}  # (person, member) -> due or None
        self.dropped_leases: set[tuple[str, str]] = set()

    def __bool__(self) -> bool:
        return bool(self.due or self.dropped_leases)

    def schedule(self, person_id: str, member: str, due_ms: int) -> None:
        self.due[(person_id, member)] = int(due_ms)

    def cancel(self, person_id: str, member: str) -> None:
        self.due[(person_id, member)] = None
        self.dropped_leases.add((person_id, member))

    def then(self, later: "TimerWrites") -> "TimerWrites":
        """These writes followed by `later`'s (to keep what a failed flush left)."""
        merged = TimerWrites()
        merged.due = {**self.due, **later.due}
        merged.dropped_leases = self.dropped_leases | later.dropped_leases
        return merged


def _split(total: int, parts: int, turn: int) -> list[int]:
    """`total` in `parts` shares differing by at most one, the larger ones from `turn` on."""
    base, extra = divmod(total, parts)
    return [base + ((i - turn) % parts < extra) for i in range(parts)]


def _ms(score: bytes) -> int:
    # Redis writes an integral score without exponent up to 17 digits; float() also
    # reads any other form it might take.
    return int(float(score))
