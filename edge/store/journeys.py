"""A person's journey state in Redis, the journey documents of every version, pauses and
per-step counts.

| key | type | holds |
|---|---|---|
| `{p:<id>}:j` | hash | `v` the state's version (each commit adds one), `a` the stimuli applied (msgpack list, the newest `APPLIED_MAX`), `r\\x1f<journey>\\x1f<run key>` a live run (`rules.journeys.Run` as JSON), `e\\x1f<journey>` the person's entries (last time, count) |
| `kairos:journey-docs` | hash | `<journey>@<version>` → the document's text: a run finishes the version it entered, on any worker, after any edit |
| `kairos:journeys:paused` | set | ids of paused journeys |
| `kairos:journey-stats:<journey>` | hash | `<step>\\x1f<outcome>` → count; `<step>\\x1fwaiting` → runs waiting there now |

The state changes only through effects.lua (a JourneyCommit), in the same atomic step
as the sends it causes, so caps, the outbox and the runs agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import redis.asyncio as aioredis

from edge.store import keys as K
from edge.store.scripts import JourneyCommit
from rules.journeys import Change, Entry, PersonJourneys, Run, StepRecord

RUN_PREFIX, ENTRY_PREFIX = "r\x1f", "e\x1f"
VERSION, APPLIED = "v", "a"
APPLIED_MAX = 64
DOCUMENTS = "kairos:journey-docs"
PAUSED = "kairos:journeys:paused"
STATS_PREFIX = "kairos:journey-stats:"
VIEWERS_PREFIX = "kairos:viewers:"
MAX_VIEWERS = 100_000  # the most recent viewers kept per product
WAITING = "waiting"

# Runs travel inside the commit's msgpack, whose Lua reader knows no binary type: JSON text.
_run = msgspec.json.Decoder(Run)
_entry = msgspec.json.Decoder(Entry)
_encode = msgspec.json.Encoder().encode


@dataclass
class StoredJourneys:
    version: int = 0
    applied: frozenset[str] = frozenset()
    state: PersonJourneys = field(default_factory=PersonJourneys)


def journeys_key(profile_id: str) -> str:
    return K.profile_key(profile_id) + K.JOURNEYS


def timer_member(profile_id: str, run_field: str) -> str:
    """A run's timer: the person and the run's field (journey and run key)."""
    return f"{profile_id}\x1f{run_field}"


def parse_member(member: str) -> tuple[str, str]:
    """(profile id, run field) of a timer member; the field is `<journey>\\x1f<key>`."""
    profile_id, journey, key = member.rsplit("\x1f", 2)
    return profile_id, f"{journey}\x1f{key}"


def decode_state(raw: dict[bytes, bytes]) -> StoredJourneys:
    stored = StoredJourneys()
    for name_bytes, value in raw.items():
        name = name_bytes.decode()
        if name == VERSION:
            stored.version = int(value)
        elif name == APPLIED:
            stored.applied = frozenset(msgspec.msgpack.decode(value))
        elif name.startswith(RUN_PREFIX):
            stored.state.runs[name[len(RUN_PREFIX):]] = _run.decode(value)
        elif name.startswith(ENTRY_PREFIX):
            stored.state.entries[name[len(ENTRY_PREFIX):]] = _entry.decode(value)
    return stored


def commit_for(stored: StoredJourneys, stimulus: str, change: Change) -> JourneyCommit:
    writes: list[Any] = []
    deletes: list[str] = []
    for name, run in change.runs.items():
        if run.ended:
            deletes.append(RUN_PREFIX + name)
        else:
            writes += (RUN_PREFIX + name, _encode(run).decode())
    for journey_id, entry in change.entries.items():
        writes += (ENTRY_PREFIX + journey_id, _encode(entry).decode())
    return JourneyCommit(stored.version, stimulus, APPLIED_MAX, writes, deletes)


class JourneyStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def read(self, profile_id: str) -> StoredJourneys:
        return decode_state(await self.client.hgetall(journeys_key(profile_id)))

    async def read_many(self, profile_ids: Sequence[str]) -> list[StoredJourneys]:
        async with self.client.pipeline(transaction=False) as pipe:
            for profile_id in profile_ids:
                pipe.hgetall(journeys_key(profile_id))
            replies = await pipe.execute()
        return [decode_state(raw) for raw in replies]

    # -- who viewed what, for catalog entries ------------------------------------------------
    @staticmethod
    def viewers_key(product_id: str) -> str:
        return VIEWERS_PREFIX + K.profile_key(product_id).replace("{p:", "{v:", 1)

    async def record_view(self, product_id: str, profile_id: str, at_ms: int, keep_ms: int) -> None:
        key = self.viewers_key(product_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {profile_id: at_ms})
            pipe.zremrangebyscore(key, "-inf", at_ms - keep_ms)
            pipe.zremrangebyrank(key, 0, -MAX_VIEWERS - 1)
            pipe.pexpire(key, keep_ms)
            await pipe.execute()

    async def viewers(self, product_id: str, since_ms: int) -> list[str]:
        found = await self.client.zrangebyscore(self.viewers_key(product_id), since_ms, "+inf")
        return [member.decode() for member in found]

    # -- documents, pauses, counts ---------------------------------------------------------
    async def remember_documents(self, documents: Iterable[tuple[str, str, str]]) -> None:
        """(journey id, version, text) of the loaded journeys, kept for runs in flight."""
        mapping = {f"{journey}@{version}": text for journey, version, text in documents}
        if mapping:
            await self.client.hset(DOCUMENTS, mapping=mapping)

    async def documents(self) -> dict[str, str]:
        raw = await self.client.hgetall(DOCUMENTS)
        return {name.decode(): text.decode() for name, text in raw.items()}

    async def paused(self) -> frozenset[str]:
        return frozenset(m.decode() for m in await self.client.smembers(PAUSED))

    async def set_paused(self, journey_id: str, paused: bool) -> None:
        if paused:
            await self.client.sadd(PAUSED, journey_id)
        else:
            await self.client.srem(PAUSED, journey_id)

    @staticmethod
    def count_changes(counts: Counter[tuple[str, str]], records: Sequence[StepRecord],
                      moves: Sequence[tuple[str, str | None, str | None]]) -> None:
        """Adds step outcomes and moves of waiting runs ((journey, from step, to step)) to
        `counts` ((journey, field) -> change), which queue_counts writes: summed first,
        since a batch's runs mostly pass the same few steps."""
        for record in records:
            counts[(record.journey, f"{record.step}\x1f{record.outcome}")] += 1
        for journey, before, after in moves:
            if before is not None:
                counts[(journey, f"{before}\x1f{WAITING}")] -= 1
            if after is not None:
                counts[(journey, f"{after}\x1f{WAITING}")] += 1

    @staticmethod
    def queue_counts(pipe: Any, counts: Counter[tuple[str, str]]) -> None:
        """The per-step counts' changes, as commands of the caller's pipeline. Written
        after the commit: a worker killed in between leaves a count short, never a send
        or a step twice."""
        for (journey, name), change in counts.items():
            if change:
                pipe.hincrby(STATS_PREFIX + journey, name, change)

    async def stats(self, journey_ids: Sequence[str]) -> dict[str, dict[str, dict[str, int]]]:
        """journey -> step -> outcome -> count."""
        async with self.client.pipeline(transaction=False) as pipe:
            for journey_id in journey_ids:
                pipe.hgetall(STATS_PREFIX + journey_id)
            replies = await pipe.execute()
        found: dict[str, dict[str, dict[str, int]]] = {}
        for journey_id, raw in zip(journey_ids, replies):
            steps: dict[str, dict[str, int]] = {}
            for name, value in raw.items():
                step, _, outcome = name.decode().partition("\x1f")
                steps.setdefault(step, {})[outcome] = int(value)
            found[journey_id] = steps
        return found
