"""The durable timer store (edge/store/timers.py) on a real Redis.

Times are passed explicitly: a lease "expires" because the caller's clock says
so, not because the test waited. A worker killed with -9 is a worker that
forgets its timers without releasing them.
"""

from __future__ import annotations

import asyncio
import uuid
import zlib
from typing import Any, Awaitable, Callable

import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, rule,
                                 run_state_machine_as_test)
from redis.crc import key_slot

from edge.store.timers import Timer, TimerCounts, TimerStore, TimerWrites

T0 = 1_800_000_000_000
LEASE = 30_000


def run(redis_url: str, body: Callable[[TimerStore], Awaitable[Any]], **kwargs: Any) -> Any:
    async def go() -> Any:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await body(TimerStore(client, **kwargs))
        finally:
            await client.aclose()

    return asyncio.run(go())


def member(n: int) -> str:
    return f"anon:{uuid.UUID(int=n)}|abandoned-cart|c-{n}"


def person(n: int) -> str:
    return f"anon:{uuid.UUID(int=n)}"


def test_schedule_claim_release(redis_url, redis_client):
    async def body(store: TimerStore) -> None:
        await store.schedule("anon:a", "anon:a|welcome|r1", T0 + 1000)
        assert await store.due_of("anon:a", "anon:a|welcome|r1") == T0 + 1000
        assert await store.claim(T0 + 999, 10, LEASE) == []
        [timer] = await store.claim(T0 + 1000, 10, LEASE)
        shard = store.shard_of("anon:a")
        assert timer == Timer(shard=shard, member="anon:a|welcome|r1", due_ms=T0 + 1000,
                              lease_until_ms=T0 + 1000 + LEASE, reclaimed=False)
        assert await store.due_of("anon:a", "anon:a|welcome|r1") is None
        assert redis_client.zscore(store.lease_key(shard), timer.member) == T0 + 1000 + LEASE
        assert await store.claim(T0 + 2000, 10, LEASE) == []
        assert await store.release(timer) is True
        assert redis_client.zcard(store.lease_key(shard)) == 0
        assert await store.release(timer) is False
        assert await store.claim(T0 + 10 * LEASE, 10, LEASE) == []

    run(redis_url, body)


def test_scheduling_again_moves_the_timer(redis_url, redis_client):
    async def body(store: TimerStore) -> None:
        await store.schedule("anon:a", "m", T0 + 1000)
        await store.schedule("anon:a", "m", T0 + 5000)
        assert redis_client.zcard(store.due_key(store.shard_of("anon:a"))) == 1
        assert await store.due_of("anon:a", "m") == T0 + 5000
        assert await store.claim(T0 + 1000, 10, LEASE) == []
        await store.schedule("anon:a", "m", T0 + 500)  # earlier also moves it
        [timer] = await store.claim(T0 + 1000, 10, LEASE)
        assert (timer.member, timer.due_ms) == ("m", T0 + 500)

    run(redis_url, body)


def test_cancel_removes_the_timer_and_its_lease(redis_url, redis_client):
    async def body(store: TimerStore) -> None:
        shard = store.shard_of("anon:a")
        await store.schedule("anon:a", "pending", T0 + 1000)
        await store.schedule("anon:a", "claimed", T0)
        [timer] = await store.claim(T0, 10, LEASE)
        await store.schedule("anon:a", "claimed", T0 + 2000)  # leased and scheduled again
        await store.cancel("anon:a", "pending")
        await store.cancel("anon:a", "claimed")
        assert redis_client.zcard(store.due_key(shard)) == 0
        assert redis_client.zcard(store.lease_key(shard)) == 0
        assert await store.release(timer) is False
        assert await store.claim(T0 + 10 * LEASE, 10, LEASE) == []
        await store.cancel("anon:a", "never-scheduled")

    run(redis_url, body)


def test_after_downtime_the_backlog_comes_in_due_order(redis_url):
    dues = [T0 - (n * 7919) % 100_000 for n in range(400)]  # overdue, in no order

    async def body(store: TimerStore) -> tuple[list[list[Timer]], list[Timer]]:
        await store.schedule_many([(person(n % 37), member(n), due) for n, due in enumerate(dues)])
        batches = []
        while batch := await store.claim(T0, 25, LEASE):
            batches.append(batch)
            for timer in batch:
                assert await store.release(timer)
        return batches, await store.claim(T0 + 10 * LEASE, 25, LEASE)

    batches, after = run(redis_url, body)
    claimed = [t for batch in batches for t in batch]
    assert after == []
    assert all(len(batch) == 25 for batch in batches)
    assert sorted(t.member for t in claimed) == sorted(member(n) for n in range(400))
    assert {t.member: t.due_ms for t in claimed} == {member(n): due for n, due in enumerate(dues)}
    for batch in batches:
        assert [t.due_ms for t in batch] == sorted(t.due_ms for t in batch)
    for shard in range(8):
        in_shard = [(t.due_ms, t.member) for t in claimed if t.shard == shard]
        assert in_shard == sorted(in_shard)


def test_one_shard_drains_in_due_order_overall(redis_url):
    dues = [T0 - (n * 7919) % 100_000 for n in range(200)]

    async def body(store: TimerStore) -> list[Timer]:
        await store.schedule_many([(person(n), member(n), due) for n, due in enumerate(dues)])
        out = []
        while batch := await store.claim(T0, 30, LEASE):
            out += batch
        return out

    claimed = run(redis_url, body, shards=1)
    assert [t.due_ms for t in claimed] == sorted(dues)


def test_the_limit_holds_across_shards_and_leftover_room_is_used(redis_url):
    async def body(store: TimerStore) -> None:
        # all in one shard: its share of the limit is small, the rest of the room follows
        crowded = [n for n in range(2000) if store.shard_of(person(n)) == 3][:100]
        await store.schedule_many([(person(n), member(n), T0 - n) for n in crowded])
        first = await store.claim(T0, 30, LEASE)
        assert len(first) == 30
        assert [t.member for t in first] == [member(n) for n in reversed(crowded)][:30]
        # a limit below the number of shards still finds a lone timer anywhere
        for shard in range(8):
            n = next(n for n in range(2000) if store.shard_of(person(n)) == shard)
            await store.schedule(person(n), "lone", T0)
            [timer] = await store.claim(T0, 1, LEASE)
            assert timer.member in ("lone", *(member(n) for n in crowded))
            await store.cancel(person(n), "lone")
        # spread over every shard: never more than the limit
        await store.schedule_many([(person(n), member(n), T0) for n in range(5000, 5100)])
        for limit in (1, 5, 13):
            assert len(await store.claim(T0, limit, LEASE)) == limit

    run(redis_url, body)


def test_a_killed_worker_s_timers_are_reclaimed_when_the_lease_expires(redis_url):
    async def body(store: TimerStore) -> None:
        await store.schedule_many([(person(n), member(n), T0 + n) for n in range(5)])
        held = await store.claim(T0 + 10, 10, LEASE)  # this worker is then killed -9
        assert len(held) == 5 and not any(t.reclaimed for t in held)
        assert await store.claim(T0 + 10 + LEASE - 1, 10, LEASE) == []
        again = await store.claim(T0 + 10 + LEASE, 10, 5000)
        assert sorted(t.member for t in again) == sorted(t.member for t in held)
        assert all(t.reclaimed for t in again)
        # the original due time is gone: a reclaimed timer is due when its lease expired
        assert {t.due_ms for t in again} == {T0 + 10 + LEASE}
        assert {t.lease_until_ms for t in again} == {T0 + 10 + LEASE + 5000}
        assert all([await store.release(t) for t in again])
        assert await store.claim(T0 + 100 * LEASE, 10, LEASE) == []

    run(redis_url, body)


def test_release_after_the_lease_was_taken_over_changes_nothing(redis_url, redis_client):
    async def body(store: TimerStore) -> None:
        await store.schedule("anon:a", "m", T0)
        [slow] = await store.claim(T0, 1, LEASE)
        [fast] = await store.claim(T0 + LEASE, 1, LEASE)
        assert fast.reclaimed and fast.lease_until_ms == T0 + 2 * LEASE
        assert await store.release(slow) is False
        lease = store.lease_key(slow.shard)
        assert redis_client.zscore(lease, "m") == fast.lease_until_ms
        assert await store.extend(slow, LEASE, T0 + LEASE + 1) is None
        assert redis_client.zscore(lease, "m") == fast.lease_until_ms
        assert await store.claim(T0 + LEASE + 1, 1, LEASE) == []
        assert await store.release(fast) is True
        assert redis_client.zcard(lease) == 0

    run(redis_url, body)


def test_a_member_rescheduled_while_leased_waits_for_the_lease(redis_url):
    async def body(store: TimerStore) -> None:
        await store.schedule("anon:a", "run", T0)
        await store.schedule("anon:a", "other", T0 + 2)
        [timer] = await store.claim(T0, 10, LEASE)
        await store.schedule("anon:a", "run", T0 + 1)  # the next step, already due
        # not handed to a second worker while held; the member behind it is
        [other] = await store.claim(T0 + 5, 10, LEASE)
        assert other.member == "other"
        assert await store.release(timer) is True
        assert await store.due_of("anon:a", "run") == T0 + 1
        [step] = await store.claim(T0 + 5, 10, LEASE)
        assert (step.member, step.due_ms, step.reclaimed) == ("run", T0 + 1, False)

    run(redis_url, body)


def test_extend_renews_only_a_lease_still_held(redis_url):
    async def body(store: TimerStore) -> None:
        await store.schedule("anon:a", "m", T0)
        [timer] = await store.claim(T0, 1, LEASE)
        longer = await store.extend(timer, 2 * LEASE, T0 + LEASE - 1)
        assert longer == Timer(shard=timer.shard, member="m", due_ms=T0,
                               lease_until_ms=T0 + 3 * LEASE - 1)
        assert await store.claim(T0 + LEASE, 1, LEASE) == []  # the old expiry no longer counts
        assert await store.extend(timer, LEASE, T0 + LEASE) is None  # not the lease it holds
        assert await store.extend(longer, LEASE, T0 + 3 * LEASE - 1) is None  # expired
        assert await store.release(longer) is True

    run(redis_url, body)


def test_counts(redis_url):
    async def body(store: TimerStore) -> tuple[TimerCounts, TimerCounts, TimerCounts]:
        empty = await store.counts(T0)
        await store.schedule_many([(person(n), member(n), T0 - 100 + 50 * n) for n in range(6)])
        await store.claim(T0 - 100, 1, LEASE)  # takes the one due at T0 - 100
        return empty, await store.counts(T0), await store.counts(T0 - 1000)

    empty, now, before = run(redis_url, body)
    assert empty == TimerCounts(pending=0, leased=0, overdue=0, oldest_overdue_ms=None)
    # due at T0 - 50 and T0 are overdue at T0; T0 + 50 .. T0 + 150 are not yet
    assert now == TimerCounts(pending=5, leased=1, overdue=2, oldest_overdue_ms=T0 - 50)
    assert before == TimerCounts(pending=5, leased=1, overdue=0, oldest_overdue_ms=None)


def test_scripts_are_loaded_again_after_a_flush(redis_url, redis_client):
    async def body(store: TimerStore) -> None:
        await store.schedule("anon:a", "m", T0)
        redis_client.script_flush()
        [timer] = await store.claim(T0, 1, LEASE)
        redis_client.script_flush()
        assert await store.extend(timer, 2 * LEASE, T0) is not None
        redis_client.script_flush()
        assert await store.release(timer) is False  # extended: no longer that lease

    run(redis_url, body)


def test_a_shard_s_keys_share_one_hash_slot():
    store = TimerStore(None, shards=8, prefix="kairos:timers")  # type: ignore[arg-type]
    for shard in range(8):
        due, lease = store.due_key(shard), store.lease_key(shard)
        assert due == f"kairos:timers:{{t{shard}}}" and lease == due + ":lease"
        assert key_slot(due.encode()) == key_slot(lease.encode()) == key_slot(f"t{shard}".encode())
    assert len({key_slot(store.due_key(shard).encode()) for shard in range(8)}) == 8
    # the shard is a plain CRC-32, the same in every process (unlike hash())
    assert store.shard_of("anon:1") == zlib.crc32(b"anon:1") % 8 == 4
    assert store.shard_of("user:42") == 6


def test_a_pending_timer_costs_at_most_250_bytes(redis_url, redis_client):
    count = 50_000
    members = [f"anon:{uuid.uuid4()}|abandoned-cart|c-{10_000 + n % 90_000}" for n in range(count)]
    assert 60 <= len(members[0]) <= 70

    async def body(store: TimerStore) -> list[str]:
        for start in range(0, count, 5000):
            await store.schedule_many([(m.split("|")[0], m, T0 + n)
                                       for n, m in enumerate(members[start:start + 5000], start)])
        return [store.due_key(shard) for shard in range(store.shards)]

    before = redis_client.info("memory")["used_memory"]
    keys = run(redis_url, body)
    after = redis_client.info("memory")["used_memory"]
    assert sum(redis_client.zcard(k) for k in keys) == count
    per_timer = (after - before) / count
    by_keys = sum(redis_client.memory_usage(k, samples=0) for k in keys) / count
    assert per_timer <= 250, per_timer
    assert by_keys <= 250, by_keys


# -- against a model ------------------------------------------------------------------------

MEMBERS = [f"p{n % 5}|journey|r{n}" for n in range(8)]  # each member belongs to one person


class TimerMachine(RuleBasedStateMachine):
    """Random schedules, reschedules, cancels, claims at advancing times, releases,
    extensions and workers that die holding timers, against a plain model of the
    two zsets of each shard. Each schedule is an instance: it is claimed at most
    once, never after it was cancelled or replaced, and at the end every live one
    has been claimed."""

    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.client = aioredis.Redis.from_url(self.url)
        self.sync = redis.Redis.from_url(self.url)
        self.store = TimerStore(self.client, shards=3, prefix=f"test:{uuid.uuid4().hex[:8]}")
        self.now = T0
        self.due: dict[str, int] = {}  # the due zsets, all shards
        self.lease: dict[str, int] = {}  # the lease zsets
        self.held: list[Timer] = []  # what live workers hold, stale leases included
        self.instance: dict[str, int] = {}  # member -> its current schedule's number
        self.claimed: set[int] = set()  # schedule numbers claimed from the due zset
        self.made = 0

    def call(self, awaitable: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(awaitable)

    def person_of(self, m: str) -> str:
        return m.split("|")[0]

    @initialize()
    def start(self) -> None:
        assert self.call(self.store.counts(self.now)).pending == 0

    @rule(m=st.sampled_from(MEMBERS), delay=st.integers(-5000, 20_000))
    def schedule(self, m: str, delay: int) -> None:
        self.call(self.store.schedule(self.person_of(m), m, self.now + delay))
        self.due[m] = self.now + delay
        self.made += 1
        self.instance[m] = self.made

    @rule(ms=st.lists(st.sampled_from(MEMBERS), min_size=1, max_size=4),
          delay=st.integers(-5000, 20_000))
    def schedule_many(self, ms: list[str], delay: int) -> None:
        self.call(self.store.schedule_many(
            [(self.person_of(m), m, self.now + delay + i) for i, m in enumerate(ms)]))
        for i, m in enumerate(ms):
            self.due[m] = self.now + delay + i
            self.made += 1
            self.instance[m] = self.made

    @rule(m=st.sampled_from(MEMBERS))
    def cancel(self, m: str) -> None:
        self.call(self.store.cancel(self.person_of(m), m))
        self.due.pop(m, None)
        self.lease.pop(m, None)
        self.instance.pop(m, None)

    @rule(dt=st.integers(0, 30_000))
    def advance(self, dt: int) -> None:
        self.now += dt

    def candidates(self, shard: int) -> list[tuple[str, int, bool]]:
        """What one shard would hand out, in order: (member, due, reclaimed)."""
        def here(m: str) -> bool:
            return self.store.shard_of(self.person_of(m)) == shard

        expired = sorted((score, m) for m, score in self.lease.items()
                         if here(m) and score <= self.now)
        due = sorted((score, m) for m, score in self.due.items()
                     if here(m) and score <= self.now and m not in self.lease)
        return [(m, s, True) for s, m in expired] + [(m, s, False) for s, m in due]

    @rule(limit=st.integers(1, 6), lease_ms=st.integers(1, 40_000))
    def claim(self, limit: int, lease_ms: int) -> None:
        expected = {shard: self.candidates(shard) for shard in range(self.store.shards)}
        got = self.call(self.store.claim(self.now, limit, lease_ms))
        waiting = sum(len(c) for c in expected.values())
        assert len(got) == min(limit, waiting)
        assert [t.due_ms for t in got] == sorted(t.due_ms for t in got)
        for shard, order in expected.items():
            mine = {(t.member, t.due_ms, t.reclaimed) for t in got if t.shard == shard}
            # the earliest of the shard, whichever its share of the limit was
            assert mine == set(order[:len(mine)]), (shard, mine, order)
        for t in got:
            # a lease still running is never handed out
            assert self.lease.get(t.member, self.now) <= self.now
            assert t.lease_until_ms == self.now + lease_ms
            if not t.reclaimed:
                number = self.instance[t.member]
                assert number not in self.claimed
                self.claimed.add(number)
                del self.due[t.member]
            self.lease[t.member] = t.lease_until_ms
            self.held.append(t)

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        if not self.held:
            return
        t = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        holds = self.lease.get(t.member) == t.lease_until_ms
        assert self.call(self.store.release(t)) is holds
        if holds:
            del self.lease[t.member]

    @rule(data=st.data(), lease_ms=st.integers(1, 40_000))
    def extend(self, data: st.DataObject, lease_ms: int) -> None:
        if not self.held:
            return
        i = data.draw(st.integers(0, len(self.held) - 1))
        t = self.held[i]
        holds = self.lease.get(t.member) == t.lease_until_ms and t.lease_until_ms > self.now
        renewed = self.call(self.store.extend(t, lease_ms, self.now))
        assert (renewed is not None) is holds
        if renewed is not None:
            assert renewed.lease_until_ms == self.now + lease_ms
            self.lease[t.member] = renewed.lease_until_ms
            self.held[i] = renewed

    @rule(data=st.data())
    def worker_dies(self, data: st.DataObject) -> None:
        """A killed worker's timers are forgotten, never released."""
        if self.held:
            keep = data.draw(st.integers(0, len(self.held) - 1))
            self.held = self.held[:keep]

    @invariant()
    def store_matches_the_model(self) -> None:
        due: dict[str, int] = {}
        lease: dict[str, int] = {}
        for shard in range(self.store.shards):
            for key, into in ((self.store.due_key(shard), due), (self.store.lease_key(shard), lease)):
                for m, score in self.sync.zrange(key, 0, -1, withscores=True):
                    assert self.store.shard_of(self.person_of(m.decode())) == shard
                    into[m.decode()] = int(score)
        assert (due, lease) == (self.due, self.lease)

    def teardown(self) -> None:
        try:
            # nothing is lost: far enough ahead, everything live is claimed once more
            self.now += 10**9
            for _ in range(3):  # a reclaimed member may still have its next step due
                self.held = []
                self.claim(limit=100, lease_ms=1)
                for t in self.held:
                    assert self.call(self.store.release(t))
                    del self.lease[t.member]
            assert set(self.instance.values()) <= self.claimed
            assert (self.due, self.lease) == ({}, {})
        finally:
            self.sync.delete(*(k for s in range(self.store.shards)
                               for k in (self.store.due_key(s), self.store.lease_key(s))))
            self.sync.close()
            self.call(self.client.aclose())
            self.loop.close()


def test_timers_against_a_model(redis_url):
    TimerMachine.url = redis_url
    run_state_machine_as_test(TimerMachine, settings=settings(
        max_examples=60, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(leased=st.sets(st.integers(0, 5)),
       ops=st.lists(st.tuples(st.sampled_from(["schedule", "cancel"]), st.integers(0, 5),
                              st.integers(0, 100_000)), max_size=25))
def test_gathered_writes_leave_what_the_same_writes_one_by_one_leave(redis_url, leased, ops):
    """TimerWrites keeps only what a sequence leaves; written per shard in a pipeline it
    ends where schedule() and cancel() called in order end, leases included."""
    async def apply(store: TimerStore, gathered: bool) -> tuple[list, list]:
        for n in leased:
            await store.schedule(person(n), member(n), T0)
        await store.claim(T0, 10, LEASE)
        writes = TimerWrites()
        for op, n, due in ops:
            if gathered:
                getattr(writes, op)(person(n), member(n), *([T0 + due] if op == "schedule" else []))
            elif op == "schedule":
                await store.schedule(person(n), member(n), T0 + due)
            else:
                await store.cancel(person(n), member(n))
        if gathered:
            async with store.client.pipeline(transaction=False) as pipe:
                store.queue_writes(pipe, writes)
                await pipe.execute()
        state = ([await store.client.zrange(store.due_key(s), 0, -1, withscores=True)
                  for s in range(store.shards)],
                 [await store.client.zrange(store.lease_key(s), 0, -1, withscores=True)
                  for s in range(store.shards)])
        await store.client.delete(*(k for s in range(store.shards)
                                    for k in (store.due_key(s), store.lease_key(s))))
        return state

    one_by_one = run(redis_url, lambda store: apply(store, False), shards=3, prefix="t:seq")
    gathered = run(redis_url, lambda store: apply(store, True), shards=3, prefix="t:gathered")
    assert gathered == one_by_one
