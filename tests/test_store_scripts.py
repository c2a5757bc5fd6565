"""Invariants of the event and effects scripts that the HTTP tests cannot see.

The event script keeps every aggregate's windowed value in the profile hash
(field "g") instead of summing all buckets on every event. These tests hold it
to what summing did: at every step, over random histories with out-of-order and
too-old events, clocks that step back a little, merges, key expiry and erasure,
the stored value equals a recount, and no aggregate hash keeps a bucket that has
left its window (the recount used to evict those on every event). That the
recount equals a brute-force count is tests/test_aggregates_redis.py's part.
"""

from __future__ import annotations

import asyncio
import math

import msgspec
import orjson
import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings, strategies as st

from edge.runtime.config import ProfileLimits, Settings
from edge.ingest.normalize import Incoming
from edge.pipeline.delivery import profile_from
from edge.pipeline.handler import encode_update, event_write
from edge.store import keys as K
from edge.store.profiles import AggregateLayout, OutcomeWrite, ProfileStore, decode_snapshot
from rules.aggregates import AggregateSpec, bucket_ms_for

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
WINDOWS = [5 * MINUTE, 60 * MINUTE, 6 * HOUR, 2 * DAY, 7 * DAY, 30 * DAY]
START = 1_800_000_000_000


def specs_for(windows: list[int]) -> list[AggregateSpec]:
    return [AggregateSpec(id=f"{kind}_{w}", kind=kind, window_ms=w, bucket_ms=bucket_ms_for(w))
            for w in windows for kind in ("count", "sum", "distinct", "last")]


def updates_for(specs: list[AggregateSpec], value: object) -> list:
    numeric = float(value) if isinstance(value, (int, float)) else 1.0
    out: list = []
    for position, spec in enumerate(specs, start=1):
        v = numeric if spec.kind == "sum" else str(value) if spec.kind == "distinct" else value
        out += (position, encode_update(spec.kind, v))
    return out


def same(a: dict, b: dict) -> bool:
    return all(a[k] == b[k] or (isinstance(a[k], float) and math.isclose(a[k], b[k], abs_tol=1e-9))
               for k in a)


class Harness:
    """One store, the fake time, and each aggregate key's expiry on that clock
    (Redis expires keys by its own clock, which a test cannot move)."""

    def __init__(self, url: str, layout: AggregateLayout, limits: ProfileLimits | None = None) -> None:
        self.store = ProfileStore(aioredis.Redis.from_url(url),
                                  Settings(profiles=limits or ProfileLimits()), url)
        self.client = redis.Redis.from_url(url)
        self.layout = layout
        self.expiry: dict[str, int] = {}
        self.now = START

    def close(self) -> None:
        self.store.batcher.close()
        self.client.close()

    def aggregate_keys(self, profile_id: str) -> list[str]:
        return K.profile_keys(profile_id, self.layout.ids)[7:]

    def note_expiry(self, profile_id: str) -> None:
        """A key whose time to live was just set expires a whole ttl from now."""
        for key, n, bucket in zip(self.aggregate_keys(profile_id), self.layout.n_buckets, self.layout.bucket_ms):
            ttl = (n + 1) * bucket
            if self.client.pttl(key) > ttl - 60_000:
                self.expiry[key] = self.now + ttl

    def expire(self) -> None:
        for key, at in list(self.expiry.items()):
            if at <= self.now:
                self.client.delete(key)
                del self.expiry[key]

    async def event(self, who: str, ts: int, updates: list, message_id: str) -> dict:
        incoming = Incoming(event={"type": "track"}, message_id=message_id, ts_ms=ts, primary=who)
        status, reply = await self.store.apply_event(who, event_write(incoming, self.now),
                                                     self.layout, updates)
        self.note_expiry(await self.store.resolve(who) or who)
        return decode_snapshot(reply, self.layout)["aggregates"]

    async def read(self, who: str) -> dict:
        reply = await self.store.read(who, self.layout, self.now)
        return decode_snapshot(reply, self.layout)["aggregates"]

    async def recount(self, who: str) -> dict:
        """The values as summing every bucket gives them: read without the stored ones."""
        key = K.profile_key(await self.store.resolve(who))
        stored = self.client.hget(key, "g")
        self.client.hdel(key, "g")
        try:
            return await self.read(who)
        finally:
            if stored is not None:
                self.client.hset(key, "g", stored)

    def assert_no_stale_bucket(self, profile_id: str) -> None:
        for key, kind, bucket, n in zip(self.aggregate_keys(profile_id), self.layout.kinds,
                                        self.layout.bucket_ms, self.layout.n_buckets):
            if kind == "last":
                continue
            cutoff = self.now // bucket - n
            for field, value in self.client.hgetall(key).items():
                b = int(value if kind == "distinct" else field)
                assert b > cutoff, (key, b, cutoff)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    windows=st.lists(st.sampled_from(WINDOWS), min_size=1, max_size=2, unique=True),
    steps=st.lists(st.tuples(
        st.integers(0, 1),  # which profile
        st.one_of(st.integers(-2 * MINUTE, 3 * HOUR), st.integers(0, 20 * DAY)),  # clock moves
        st.integers(0, 40 * DAY),  # age of the event
        st.one_of(st.sampled_from(["shoes", "bags", "x"]), st.integers(-5, 50),
                  st.floats(min_value=-100, max_value=1000, allow_nan=False).map(lambda f: round(f, 2))),
    ), min_size=1, max_size=20),
    merge_at=st.one_of(st.none(), st.integers(0, 19)),
)
def test_stored_values_equal_a_recount_at_every_step(redis_url, windows, steps, merge_at):
    specs = specs_for(windows)
    layout = AggregateLayout.of(specs)
    history: dict[str, list] = {"anon:p0": [], "anon:p1": []}

    async def run() -> None:
        h = Harness(redis_url, layout)
        merged = False
        try:
            for n, (who, advance, age, value) in enumerate(steps):
                h.now += advance
                h.expire()
                name = "anon:p0" if merged else f"anon:p{who}"
                ts = h.now - age
                got = await h.event(name, ts, updates_for(specs, value), f"m{n}")
                history[name].append((ts, value))
                assert same(got, await h.recount(name)), (n, got)
                h.assert_no_stale_bucket(await h.store.resolve(name))
                if n == merge_at and not merged and all(history.values()):
                    await h.store.merge("anon:p1", "anon:p0", layout)
                    h.note_expiry("anon:p0")
                    history["anon:p0"] += history.pop("anon:p1")
                    history["anon:p1"] = []
                    merged = True
            for who in ("anon:p0", "anon:p1"):
                if history[who]:
                    assert same(await h.read(who), await h.recount(who))
        finally:
            h.close()

    redis.Redis.from_url(redis_url).flushall()
    asyncio.run(run())


def test_values_written_for_another_ruleset_are_recounted(redis_url):
    first = AggregateLayout.of(specs_for([HOUR]))
    second = AggregateLayout.of(list(reversed(specs_for([HOUR, DAY]))))

    async def run() -> None:
        h = Harness(redis_url, first)
        try:
            for n in range(3):
                await h.event("anon:r", h.now, updates_for(specs_for([HOUR]), "shoes"), f"m{n}")
            h.layout = second
            values = await h.read("anon:r")
            assert values["count_3600000"] == 3 and values["count_86400000"] == 0
            assert values["distinct_3600000"] == 1 and values["last_3600000"] == "shoes"
        finally:
            h.close()

    asyncio.run(run())


def test_erasure_takes_the_stored_values_with_it(redis_url):
    specs = specs_for([DAY])
    layout = AggregateLayout.of(specs)

    async def run() -> None:
        h = Harness(redis_url, layout)
        try:
            await h.store.register_aggregates(layout)
            for n in range(4):
                await h.event("anon:e", h.now, updates_for(specs, 3), f"m{n}")
            await h.store.erase("anon:e", layout)
            assert not h.client.keys("{p:anon:e}*")
            values = await h.event("anon:e", h.now, updates_for(specs, 3), "again")
            assert values["count_86400000"] == 1 and values["sum_86400000"] == 3.0
        finally:
            await h.store.client.aclose()
            h.close()

    asyncio.run(run())


def test_every_key_of_an_anonymous_profile_expires(redis_url):
    """Keys an event creates after the profile's first one expire with the profile too."""
    layout = AggregateLayout.of(specs_for([HOUR]))

    async def run() -> None:
        h = Harness(redis_url, layout)
        try:
            store = h.store
            await store.apply_event("anon:k", event_write(Incoming(
                event={"type": "page"}, message_id="a", ts_ms=h.now, primary="anon:k"), h.now),
                layout, [])
            # a trait set by a rule creates the traits hash
            await store.write_outcome("anon:k", OutcomeWrite(now_ms=h.now, traits={"engaged": True}))
            h.now += MINUTE
            await store.apply_event("anon:k", event_write(Incoming(
                event={"type": "track"}, message_id="b", ts_ms=h.now, primary="anon:k",
                product="p1", category="shoes"), h.now), layout, updates_for(specs_for([HOUR]), "shoes"))
            keys = h.client.keys("{p:anon:k}*")
            assert len(keys) == 10  # profile, seen, ids, traits, 2 recent lists, 4 aggregates
            assert all(h.client.pttl(key) > 0 for key in keys), {k: h.client.pttl(k) for k in keys}
            # a known customer's keys never expire
            await store.link("user:u", "anon:k", "u", layout)
            profile_keys = [b"{p:anon:k}", *h.client.keys("{p:anon:k}:[^g]*")]
            assert all(h.client.pttl(key) == -1 for key in profile_keys)
        finally:
            h.close()

    asyncio.run(run())


def test_retries_are_recognised_within_the_window_and_the_cap(redis_url):
    limits = ProfileLimits(dedupe_window_hours=1, dedupe_max_ids=5)
    layout = AggregateLayout.of([])

    async def run() -> None:
        h = Harness(redis_url, layout, limits)
        try:
            async def send(message_id: str) -> str:
                incoming = Incoming(event={"type": "track"}, message_id=message_id, ts_ms=h.now,
                                    primary="anon:d")
                status, _ = await h.store.apply_event("anon:d", event_write(incoming, h.now), layout, [])
                return status

            assert await send("m") == "ok"
            h.now += 30 * MINUTE
            assert await send("m") == "dup"
            h.now += 31 * MINUTE  # now past the window
            assert await send("m") == "ok"
            assert await send("m") == "dup"
            for n in range(5):  # five newer ids push it out of the newest five
                h.now += 1
                assert await send(f"other{n}") == "ok"
            assert await send("m") == "ok"
            for n in range(100):
                h.now += 1
                await send(f"more{n}")
            # pruned now and then: never far above the cap
            assert h.client.zcard("{p:anon:d}:seen") <= 5 + 32
        finally:
            h.close()

    asyncio.run(run())


def test_delivery_state_stored_as_json_is_still_read(redis_url):
    """Profiles whose delivery state was written as JSON keep it; the next write turns it to msgpack."""
    layout = AggregateLayout.of([])

    async def run() -> None:
        h = Harness(redis_url, layout)
        try:
            await h.store.apply_event("anon:j", event_write(Incoming(
                event={"type": "page"}, message_id="a", ts_ms=h.now, primary="anon:j"), h.now),
                layout, [])
            legacy = {"c": {"global": [h.now - HOUR]}, "x": {"hero": "b"},
                      "k": {"email": [True, h.now - DAY, "form"]}}
            h.client.hset("{p:anon:j}", "dl", orjson.dumps(legacy))
            profile = profile_from(await h.store.read("anon:j", layout, h.now), layout)
            assert profile["deliveries"] == {"global": [h.now - HOUR]}
            assert profile["experiments"] == {"hero": "b"}
            assert profile["consent"]["email"]["granted"] is True
            accepted = await h.store.write_outcome("anon:j", OutcomeWrite(
                now_ms=h.now, deliveries=[[("global", DAY, 2)]], horizon_ms=DAY))
            assert accepted == [True]
            stored = msgspec.msgpack.decode(h.client.hget("{p:anon:j}", "dl"))
            assert stored["c"] == {"global": [h.now - HOUR, h.now]} and stored["x"] == {"hero": "b"}
            accepted = await h.store.write_outcome("anon:j", OutcomeWrite(
                now_ms=h.now, deliveries=[[("global", DAY, 2)]], horizon_ms=DAY))
            assert accepted == [False]  # the cap of two a day is full
        finally:
            h.close()

    asyncio.run(run())


def test_a_clock_behind_the_last_writer_sees_no_bucket_that_has_not_begun(redis_url):
    """Workers' clocks differ a little: a bucket counted by one has not begun for another."""
    # one-minute buckets; no sum, since a sum is recounted whenever it changes
    specs = [s for s in specs_for([HOUR]) if s.kind != "sum"]
    layout = AggregateLayout.of(specs)

    async def run() -> None:
        h = Harness(redis_url, layout)
        try:
            h.now = START - START % MINUTE + 30_000
            assert (await h.event("anon:c", h.now, updates_for(specs, 1), "a"))["count_3600000"] == 1
            h.now -= 45_000  # the previous minute, for a worker whose clock is behind
            assert (await h.read("anon:c"))["count_3600000"] == 0
            got = await h.event("anon:c", h.now - 10 * DAY, updates_for(specs, 1), "b")  # too old to count
            assert got["count_3600000"] == 0 and same(got, await h.recount("anon:c"))
            # a bucket dated ahead, counted once it has begun, is not counted by a clock behind it
            minute = h.now - h.now % MINUTE + 10 * MINUTE
            h.now = minute + 30_000
            await h.event("anon:f", minute + 2 * MINUTE, updates_for(specs, 1), "c")
            h.now = minute + 2 * MINUTE + 10_000
            assert (await h.event("anon:f", h.now - 10 * DAY, [], "d"))["count_3600000"] == 1
            h.now = minute + 2 * MINUTE - 10_000
            assert (await h.read("anon:f"))["count_3600000"] == 0
        finally:
            h.close()

    asyncio.run(run())


def test_a_value_stops_holding_when_its_key_expires(redis_url):
    """A bucket dated ahead enters the window later than its key may live."""
    specs = specs_for([5 * MINUTE])  # one-minute buckets, keys live six minutes
    layout = AggregateLayout.of(specs)

    async def run() -> None:
        h = Harness(redis_url, layout)
        try:
            assert (await h.event("anon:x", h.now + 3 * MINUTE, updates_for(specs, 2), "a"))["count_300000"] == 0
            key = K.profile_key("anon:x") + ":g:count_300000"
            h.now += 4 * MINUTE
            h.client.pexpire(key, 300)  # Redis's clock cannot be moved: the key's end, sooner
            assert (await h.event("anon:x", h.now - DAY, [], "b"))["count_300000"] == 1
            await asyncio.sleep(0.4)
            h.now += 1_000
            assert (await h.read("anon:x"))["count_300000"] == 0
        finally:
            h.close()

    asyncio.run(run())
