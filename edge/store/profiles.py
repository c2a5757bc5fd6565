"""The profile store: every Redis operation on a person, behind plain async methods.

Identifier resolution is optimistic: a process-local map remembers where each
identifier was last found. Merges only ever move an identifier forward, so a
stale entry costs one extra round trip (the script answers "moved") and never
a wrong answer.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

import msgspec
import orjson
import redis.asyncio as aioredis

from edge.runtime.config import Settings
from edge.store import keys as K
from edge.store import streams
from edge.store.batcher import ScriptBatcher
from edge.store.pipelined import pack_arguments
from edge.store.scripts import (DROP_POINTER, EFFECTS, EVENT, LINK, MERGE, AggregateList,
                                CapCheck, CapRecord, DropPointerArgs, EffectsArgs, EventArgs,
                                JourneyCommit,
                                EventArgv, Limits, LinkArgs, MergeArgs, Snapshot, argv,
                                flat_json)
from rules.arbitration import deliveries_per_key

MAX_HOPS = 16


class StoreError(Exception):
    pass


@dataclass(slots=True)
class OutcomeWrite:
    """Everything one decision changes in the profile; see ProfileStore.write_outcome."""

    now_ms: int
    segments: list[str] | None = None  # None: unchanged
    tags: list[str] | None = None
    traits: dict[str, Any] = field(default_factory=dict)
    deliveries: list[list[tuple[str, int, int]]] = field(default_factory=list)
    horizon_ms: int = 0  # the longest cap window: older delivery times are dropped
    variants: dict[str, str] = field(default_factory=dict)
    consent: list[tuple[str, int, int, str]] = field(default_factory=list)
    engagement: tuple = ()  # (local hour, channel, engaged 0|1, time ms) or ()
    # (delivery number from 1, or 0 for none; the record): an entry that belongs to
    # a delivery is written only if the delivery's caps had room
    # the edge's own records for the event stream (exposures, segment changes)
    records: list[tuple[int, streams.Exposure | streams.SegmentChange]] = field(default_factory=list)
    messages: list[tuple[int, streams.OutboundMessage]] = field(default_factory=list)

    def is_empty(self) -> bool:
        return (self.segments is None and self.tags is None and not self.traits
                and not self.deliveries and not self.variants and not self.consent
                and not self.engagement and not self.records and not self.messages)


@dataclass(frozen=True, slots=True)
class AggregateLayout:
    """The aggregates the loaded rules need, in script order."""

    ids: tuple[str, ...]
    kinds: tuple[str, ...]
    bucket_ms: tuple[int, ...]
    n_buckets: tuple[int, ...]
    # Positions of the sums and of the last values, whose values the event script's
    # reply carries in another form than the rules read (see decode_snapshot).
    sums: tuple[int, ...] = field(default=(), compare=False)
    lasts: tuple[int, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        positions = {kind: tuple(i for i, k in enumerate(self.kinds) if k == kind)
                     for kind in ("sum", "last")}
        object.__setattr__(self, "sums", positions["sum"])
        object.__setattr__(self, "lasts", positions["last"])

    @classmethod
    def of(cls, aggregates: Sequence[Any]) -> "AggregateLayout":
        return cls(
            ids=tuple(a.id for a in aggregates),
            kinds=tuple(a.kind for a in aggregates),
            bucket_ms=tuple(a.bucket_ms for a in aggregates),
            n_buckets=tuple(a.window_ms // a.bucket_ms for a in aggregates),
        )

    @property
    def signature(self) -> str:
        """Names this list of aggregates: the event script ignores windowed values stored for another."""
        described = "|".join(f"{i}:{k}:{b}:{n}" for i, k, b, n
                             in zip(self.ids, self.kinds, self.bucket_ms, self.n_buckets))
        return hashlib.sha1(described.encode()).hexdigest()[:12]

    @property
    def aggregate_list(self) -> AggregateList:
        """The aggregates as the event and merge scripts take them."""
        return AggregateList(list(self.kinds), list(self.bucket_ms), list(self.n_buckets))


class IdentityCache:
    """identifier -> profile id it was last found in; bounded, least recently used out."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._map: OrderedDict[str, str] = OrderedDict()

    def get(self, identifier: str) -> str:
        found = self._map.get(identifier)
        if found is None:
            return identifier
        self._map.move_to_end(identifier)
        return found

    def put(self, identifier: str, profile_id: str) -> None:
        if identifier == profile_id:
            self._map.pop(identifier, None)
            return
        self._map[identifier] = profile_id
        self._map.move_to_end(identifier)
        if len(self._map) > self.size:
            self._map.popitem(last=False)

    def forget(self, identifier: str) -> None:
        self._map.pop(identifier, None)


class ProfileStore:
    def __init__(self, client: aioredis.Redis, settings: Settings, url: str) -> None:
        self.client = client
        self.batcher = ScriptBatcher(url)
        self.settings = settings
        self.stream_key = settings.stream.key
        self.outbox_key = streams.OUTBOX
        self.cache = IdentityCache()
        p = settings.profiles
        self.limits = Limits(
            anon_ttl=str(p.anonymous_ttl_days * 86_400_000), max_traits=p.max_traits,
            rp_cap=p.recent_products, rc_cap=p.recent_categories, cart_cap=p.max_cart_items,
            distinct_cap=p.max_distinct_values, dedupe_ms=p.dedupe_window_hours * 3_600_000,
            dedupe_max=p.dedupe_max_ids, gap_ms=p.session_gap_minutes * 60_000,
            stream_max=str(settings.stream.max_length))
        self.limits_packed = _msgpack(self.limits)
        # the layout of the rules loaded, and what its events share (see _per_layout)
        self._layout: AggregateLayout | None = None
        self._layout_shared: _PerLayout | None = None

    # -- events -----------------------------------------------------------------------------

    async def apply_event(self, identifier: str, event: EventArgs, layout: AggregateLayout,
                          updates: Sequence[Any]) -> tuple[str, list[Any]]:
        """Run the event script on the profile `identifier` resolves to (created for
        it if it has none); returns (status, reply). `event.primary` is set here.

        `updates` is flat: aggregate position (1-based), value, position, value, ...
        """
        return await self._run_event(identifier, layout, event, self._with_specs(layout, updates))

    def _with_specs(self, layout: AggregateLayout, updates: Sequence[Any]) -> bytes:
        # each update travels with its aggregate's spec (AggregateUpdate), so the
        # script needs the whole list of aggregates only when it recounts a value
        specs = self._per_layout(layout).specs
        return _msgpack([x for j in range(0, len(updates), 2)
                         for x in (updates[j], *specs[updates[j] - 1], updates[j + 1])])

    async def try_event(self, identifier: str, event: EventArgs, layout: AggregateLayout,
                        updates: Sequence[Any]) -> list[Any] | None:
        """The snapshot the event would leave on the profile `identifier` resolves to,
        computed by the event script on scratch copies, writing nothing; None when
        there is no such profile. Takes what apply_event takes."""
        event.mode = "try"
        status, reply = await self._run_event(identifier, layout, event,
                                              self._with_specs(layout, updates), create=False,
                                              keys=K.TryKeys(layout.ids, self.stream_key))
        return reply if status == "ok" else None

    async def read(self, identifier: str, layout: AggregateLayout, now_ms: int) -> list[Any] | None:
        now = str(now_ms)
        status, reply = await self._run_event(
            identifier, layout, EventArgs(mode="read", now_text=now, ts_text=now), _NO_UPDATES,
            create=False)
        return reply if status == "ok" else None

    async def _run_event(self, identifier: str, layout: AggregateLayout, event: EventArgs,
                         updates: bytes, create: bool = True,
                         keys: K.EventKeys | None = None) -> tuple[str, list[Any]]:
        profile_id = self.cache.get(identifier)
        per_layout = self._per_layout(layout)
        event_keys = keys or per_layout.keys
        for _ in range(MAX_HOPS):
            event.primary = identifier if (create and profile_id == identifier) else ""
            reply = await self.batcher.call_packed(
                EVENT, event_keys.pack(profile_id), event_keys.count,
                pack_arguments((_msgpack(event), updates)) + per_layout.constants, _EVENT_ARGC)
            status = reply[0].decode()
            if status == "moved":
                profile_id = reply[1].decode()
                continue
            if status == "stale":
                # The cached or pointed-to profile was erased: start again from the identifier.
                self.cache.forget(identifier)
                if profile_id != identifier:
                    await self.batcher.call(DROP_POINTER, [K.profile_key(identifier)],
                                            argv(DropPointerArgs(profile_id)))
                profile_id = identifier
                continue
            if status == "missing":
                return status, reply
            self.cache.put(identifier, profile_id)
            return status, reply
        raise StoreError(f"identifier {identifier!r} did not resolve within {MAX_HOPS} hops")

    def _per_layout(self, layout: AggregateLayout) -> "_PerLayout":
        """What is the same for every event of one ruleset: the script's constant
        arguments and the key packer."""
        # The loaded rules' layout is one object for every event until a reload.
        if layout is self._layout:
            return self._layout_shared  # type: ignore[return-value]
        aggregates = _msgpack(layout.aggregate_list)
        constant = argv(EventArgv(event=b"", updates=b"", limits=self.limits_packed,
                                  aggregates=aggregates, signature=layout.signature))
        shared = _PerLayout(
            constants=pack_arguments(constant[_EVENT_ARGS_PER_EVENT:]),
            aggregates=aggregates,
            # an AggregateUpdate but its first and last field
            specs=[(kind, bucket, n, str((n + 1) * bucket)) for kind, bucket, n
                   in zip(layout.kinds, layout.bucket_ms, layout.n_buckets)],
            keys=K.EventKeys(layout.ids, self.stream_key))
        self._layout, self._layout_shared = layout, shared
        return shared

    # -- identity -----------------------------------------------------------------------------

    async def resolve(self, identifier: str) -> str | None:
        """The canonical profile id for an identifier, or None if it has none yet."""
        profile_id = self.cache.get(identifier)
        for _ in range(MAX_HOPS):
            pointer, exists = await self.batcher.command("HMGET", K.profile_key(profile_id), "->", "id")
            if pointer is not None:
                profile_id = pointer.decode()
                continue
            if exists is None:
                if profile_id != identifier:
                    self.cache.forget(identifier)
                    profile_id = identifier
                    continue
                return None
            self.cache.put(identifier, profile_id)
            return profile_id
        raise StoreError(f"identifier {identifier!r} did not resolve within {MAX_HOPS} hops")

    async def link(self, identifier: str, profile_id: str, user_id: str | None,
                   layout: AggregateLayout) -> str | None:
        """Join an identifier to a profile, merging when it already has a profile of its own.

        Returns the canonical profile id afterwards, or None when the profile
        already belongs to another customer (a shared device): two customers
        are never merged by an identify.
        """
        same_profile_pointer = ""
        for _ in range(MAX_HOPS):
            keys = [K.profile_key(identifier), *K.profile_keys(profile_id, ())]
            args = LinkArgs(identifier, profile_id, user_id or "", same_profile_pointer)
            reply = await self.batcher.call(LINK, keys, argv(args))
            status = reply[0].decode()
            if status == "linked":
                self.cache.put(identifier, profile_id)
                return profile_id
            if status == "moved":
                profile_id = reply[1].decode()
                continue
            if status == "other_user":
                return None
            if status == "missing":
                raise StoreError(f"profile {profile_id!r} vanished while linking")
            pointer = reply[1].decode()
            other = await self.resolve(pointer)
            if other is None or other == profile_id:
                # The identifier points at a profile merged into this one (or erased):
                # let the next try point it straight here.
                same_profile_pointer = pointer
                continue
            survivor = await self.merge(other, profile_id, layout)
            if survivor is None:
                return None
            profile_id = survivor
        raise StoreError(f"linking {identifier!r} did not settle within {MAX_HOPS} tries")

    async def merge(self, a: str, b: str, layout: AggregateLayout,
                    force: bool = False) -> str | None:
        """Merge two profiles; the survivor is chosen deterministically. Returns it.

        Two profiles that belong to different customers are left apart (None)
        unless `force` (an explicit alias from a trusted server) says otherwise.
        """
        for _ in range(MAX_HOPS):
            if a == b:
                return a
            uid_a, uid_b = await self._user_ids(a, b)
            if uid_a and uid_b and uid_a != uid_b and not force:
                return None
            survivor, merged = choose_survivor(a, uid_a, b, uid_b)
            keys = [*K.profile_keys(merged, layout.ids), *K.profile_keys(survivor, layout.ids)]
            args = MergeArgs(merged, survivor, self.limits_packed,
                             self._per_layout(layout).aggregates)
            reply = await self.batcher.call(MERGE, keys, argv(args))
            status = reply[0].decode()
            if status == "merged":
                self.cache.put(merged, survivor)
                return survivor
            if status == "moved":
                target = reply[2].decode()
                if (reply[1] == b"S") == (merged == a):
                    a = target
                else:
                    b = target
                continue
            # one side vanished (erased meanwhile): whichever remains is the answer
            return survivor if reply[1] == b"S" else merged
        raise StoreError(f"merging {a!r} and {b!r} did not settle within {MAX_HOPS} tries")

    async def _user_ids(self, a: str, b: str) -> tuple[str | None, str | None]:
        ua, ub = await asyncio.gather(self.batcher.command("HGET", K.profile_key(a), "uid"),
                                      self.batcher.command("HGET", K.profile_key(b), "uid"))
        return (ua.decode() if ua else None), (ub.decode() if ub else None)

    # -- effects ------------------------------------------------------------------------------

    async def write_outcome(self, profile_id: str, outcome: "OutcomeWrite") -> list[bool]:
        """Store what a decision leaves behind (edge/store/effects.lua) in one round trip.

        Returns, per delivery, whether its caps still had room: a concurrent
        event of the same person may have taken it first.
        """
        reply = await self._effects(profile_id, outcome, b"")
        if reply[0] != b"ok":
            return [False] * len(outcome.deliveries)  # merged or erased meanwhile: deliver nothing
        return [flag == 1 for flag in reply[1]]

    async def commit_journeys(self, profile_id: str, outcome: "OutcomeWrite",
                              commit: JourneyCommit) -> tuple[str, str | None]:
        """A journey step's changes and effects, in the same script as the edge's decisions:
        (status, the profile moved to or None). Status "ok"; "dup" (the stimulus was applied
        before); "stale" (the state changed since it was read); "capped" (a send no longer
        fits its caps: nothing was written); "moved" or "missing" (no such profile now)."""
        reply = await self._effects(profile_id, outcome, _msgpack(commit))
        status = reply[0].decode()
        return status, reply[1].decode() if status == "moved" else None

    async def _effects(self, profile_id: str, outcome: "OutcomeWrite", commit: bytes) -> list[Any]:
        o = outcome
        args = EffectsArgs(
            now=o.now_ms,
            segments=orjson.dumps(o.segments).decode() if o.segments is not None else "",
            tags=orjson.dumps(o.tags).decode() if o.tags is not None else "",
            traits_set=flat_json(o.traits), horizon_ms=o.horizon_ms,
            variants=[x for pair in o.variants.items() for x in pair],
            consent=[x for change in o.consent for x in change], engagement=list(o.engagement),
            records=[x for needs, record in o.records
                     for x in (needs, streams.kind_of(record), streams.event_json(record))],
            messages=[x for needs, record in o.messages
                      for x in (needs, streams.event_json(record))])
        deliveries: list[Any] = []
        for caps in o.deliveries:
            deliveries += _delivery_arg(caps)
        key = K.profile_key(profile_id)
        return await self.batcher.call(
            EFFECTS, [key, key + ":t", self.stream_key, self.outbox_key, key + K.JOURNEYS],
            (_msgpack(args), _msgpack(deliveries), self.limits_packed, commit))

    async def register_aggregates(self, layout: AggregateLayout) -> None:
        """Remember every aggregate id ever maintained, so erasure can find its keys."""
        if layout.ids:
            await self.client.sadd(K.AGGREGATE_REGISTRY, *layout.ids)

    # -- reading and erasing ------------------------------------------------------------------

    async def identifiers(self, profile_id: str) -> list[str]:
        members = await self.client.smembers(K.profile_key(profile_id) + ":ids")
        return sorted(m.decode() for m in members)

    async def erase(self, profile_id: str, layout: AggregateLayout) -> dict[str, int]:
        """Delete every key of the person, every identifier pointing to it, its events
        and the messages still waiting for delivery."""
        identifiers = set(await self.identifiers(profile_id)) | {profile_id}
        deleted_keys = 0
        for identifier in identifiers:
            base = K.profile_key(identifier)
            names = [base, *(base + s for s in K.SUFFIXES), base + K.JOURNEYS, base + ":cal"]
            names += [base + ":g:" + a.decode() for a in await self.client.smembers(K.AGGREGATE_REGISTRY)]
            deleted_keys += await self.client.delete(*names)
            self.cache.forget(identifier)
        deleted_events = await self._erase_entries(self.stream_key, identifiers)
        deleted_messages = await self._erase_entries(self.outbox_key, identifiers)
        return {"identifiers": len(identifiers), "keys": deleted_keys, "events": deleted_events,
                "messages": deleted_messages}

    async def _erase_entries(self, stream: str, profile_ids: set[str]) -> int:
        wanted = {p.encode() for p in profile_ids}
        field = streams.PROFILE.encode()
        deleted = 0
        cursor = "-"
        while True:
            entries = await self.client.xrange(stream, min=cursor, max="+", count=1000)
            if not entries:
                return deleted
            doomed = [entry_id for entry_id, fields in entries if fields.get(field) in wanted]
            if doomed:
                deleted += await self.client.xdel(stream, *doomed)
            last = entries[-1][0].decode()
            cursor = "(" + last
            if len(entries) < 1000:
                return deleted


@dataclass(frozen=True, slots=True)
class _PerLayout:
    # the event script's ARGV after the event's own (EventArgv), packed as RESP
    constants: bytes
    aggregates: bytes  # AggregateList, msgpack
    # per position: kind, bucket ms, number of buckets, the key's time to live (ms, as text)
    specs: list[tuple[str, int, int, str]]
    keys: K.EventKeys


def choose_survivor(a: str, uid_a: str | None, b: str, uid_b: str | None) -> tuple[str, str]:
    """(survivor, merged): a profile with a customer id beats an anonymous one; then the smaller id."""
    rank_a = (uid_a is None, a)
    rank_b = (uid_b is None, b)
    return (a, b) if rank_a <= rank_b else (b, a)


_msgpack = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.Decoder().decode
_EVENT_ARGC = len(EventArgv.__struct_fields__)
_EVENT_ARGS_PER_EVENT = 2  # EventArgv's event and updates; the rest is per ruleset
_NO_UPDATES = _msgpack([])


def _delivery_arg(caps: Sequence[tuple[str, int, int]]) -> tuple[Any, ...]:
    """One delivery for effects.lua, flat: the number of caps to check, each cap (key,
    window, max, how many deliveries it counts), the number of keys to record delivery
    times under, each (key, how many times)."""
    return _delivery_arg_of(tuple(caps))


# A delivery's argument depends only on its caps, which come from the rule (and the
# channel it went out on): a few shapes per ruleset, worked out once each.
@lru_cache(maxsize=4096)
def _delivery_arg_of(caps: tuple[tuple[str, int, int], ...]) -> tuple[Any, ...]:
    checks = Counter(caps)
    records = deliveries_per_key(caps)
    out: list[Any] = [len(checks)]
    for (key, per, most), count in checks.items():
        out += argv(CapCheck(key, per, most, count))
    out.append(len(records))
    for key, count in records.items():
        out += argv(CapRecord(key, count))
    return tuple(out)


def decode_snapshot(reply: list[Any], layout: AggregateLayout) -> dict[str, Any]:
    """The event script's reply (a Snapshot) as the profile's stored parts, decoded;
    "delivery_state" is the stored delivery state as it is (see effects.lua)."""
    snapshot = _to_snapshot(reply)
    fields, traits_flat = snapshot.profile, snapshot.traits_flat
    traits = {traits_flat[i].decode(): orjson.loads(traits_flat[i + 1])
              for i in range(0, len(traits_flat), 2)}
    # [signature, lo, hi, position, value, until, ...] for every aggregate whose
    # value is not 0 (see event.lua); an empty value is 0 for every kind
    stored = _unpack(snapshot.windowed)
    values: list[Any] = [0] * len(layout.ids)
    for k in range(3, len(stored), 3):
        values[stored[k] - 1] = stored[k + 1]
    for position in layout.sums:
        values[position] = float(values[position])
    for position in layout.lasts:
        raw = values[position]
        values[position] = orjson.loads(raw) if raw != 0 else None
    aggregates = dict(zip(layout.ids, values))
    uid, claim = fields.uid, fields.claim
    return {
        "id": fields.id.decode(),
        "traits": traits,
        "tags": orjson.loads(fields.tg) if fields.tg else [],
        "segments": orjson.loads(fields.sg) if fields.sg else [],
        "aggregates": aggregates,
        "cart": cart_from_fields(snapshot.cart_flat, int(fields.cu) if fields.cu else None),
        "recent_products": [p.decode() for p in snapshot.recent_products],
        "recent_categories": [c.decode() for c in snapshot.recent_categories],
        "first_seen": int(fields.fs) if fields.fs else None,
        "last_seen": int(fields.ls) if fields.ls else None,
        "visits": int(fields.visits) if fields.visits else 0,
        "events": int(fields.events) if fields.events else 0,
        "verified": bool(uid),
        "user_id": uid.decode() if uid else None,
        "unverified_claim": claim.decode() if claim else None,
        "delivery_state": decode_delivery_state(fields.dl),
        # the newest location an event gave (edge/ingest/location.py), or None
        "location": orjson.loads(fields.loc) if fields.loc else None,
    }


_to_snapshot = functools.partial(msgspec.convert, type=Snapshot)


def decode_delivery_state(raw: bytes) -> dict[str, Any]:
    """The stored delivery state "dl": effects.lua writes msgpack (a map, never
    starting with "{"); profiles not written since hold JSON."""
    if not raw:
        return {}
    return orjson.loads(raw) if raw[0] == 0x7B else _unpack(raw)


def cart_from_fields(flat: list[bytes], updated_at: int | None) -> dict[str, Any]:
    """The cart from its hash (event.lua): item json per product id, quantity under q:<id>."""
    fields = dict(zip(flat[::2], flat[1::2]))
    items = []
    value = 0.0
    for key, raw in fields.items():
        if key.startswith(b"q:"):
            continue
        item = orjson.loads(raw)
        quantity = int(fields.get(b"q:" + key, 1))
        item["quantity"] = quantity
        price = item.get("price")
        if isinstance(price, (int, float)) and not isinstance(price, bool):
            value += price * quantity
        items.append(item)
    items.sort(key=lambda item: item["product_id"])
    return {"items": items, "value": round(value, 2), "updated_at": updated_at}
