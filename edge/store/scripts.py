"""Lua scripts, loaded from the files beside this module and called by SHA, and the
positional arguments and replies they exchange with Python, declared once.

EVALSHA first; on NOSCRIPT (a restarted or flushed Redis) the script is loaded
and the call repeated, so callers never see the difference.

Each positional array a script reads or returns is an array-like msgspec Struct
here: Python builds the Struct (msgpack-encoded, or as plain ARGV through
`argv`), and the Lua side names the same fields in the same order, by
destructuring (`local mode, primary, ... = elements(ARGV[1])`), never by number.
tests/test_script_contracts.py reads every script and holds it to these
declarations. Flat lists of repeated groups (aggregate updates, a delivery's
caps) are declared by the Struct of one group; the script steps through them by
its width.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any, Mapping, Sequence

import msgspec
import orjson
from redis.exceptions import NoScriptError


class Script:
    def __init__(self, name: str, argv: type[msgspec.Struct] | None = None,
                 packed: Mapping[str, type[msgspec.Struct] | tuple[type[msgspec.Struct], ...]]
                 | None = None,
                 replies: Mapping[str, tuple[str, ...] | type[msgspec.Struct]] | None = None) -> None:
        self.name = name
        self.source = resources.files("edge.store").joinpath(f"{name}.lua").read_text()
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()
        # ARGV, one field per position
        self.argv = argv
        # ARGV fields that are msgpack arrays -> the Struct they hold, or the Structs of
        # the groups a flat list repeats
        self.packed = dict(packed or {})
        # status -> the names of the values after it, or the Struct of the whole reply
        self.replies = dict(replies or {})


async def run_scripts(client: Any, calls: Sequence[tuple[Script, Sequence[str], Sequence[Any]]]
                      ) -> list[Any]:
    """EVALSHA each call in one redis-py pipeline; after a Redis restart (NOSCRIPT), load
    and redo only the calls that failed, so none runs twice."""
    replies: list[Any] = [None] * len(calls)
    todo = list(range(len(calls)))
    for attempt in range(2):
        async with client.pipeline(transaction=False) as pipe:
            for i in todo:
                script, keys, args = calls[i]
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            results = await pipe.execute(raise_on_error=False)
        failed = []
        for i, result in zip(todo, results):
            if isinstance(result, NoScriptError) and attempt == 0:
                failed.append(i)
            elif isinstance(result, Exception):
                raise result
            else:
                replies[i] = result
        if not failed:
            break
        for script in {calls[i][0] for i in failed}:
            await client.script_load(script.source)
        todo = failed
    return replies


def argv(args: msgspec.Struct) -> tuple[Any, ...]:
    """A Struct declared as a script's whole ARGV, as the values EVALSHA passes."""
    return msgspec.structs.astuple(args)


def flat_json(values: Mapping[str, Any]) -> list[str]:
    """name, json value, name, json value, ... (how traits travel to the scripts)"""
    return [x for name, value in values.items() for x in (name, orjson.dumps(value).decode())]


# -- event.lua -------------------------------------------------------------------------------
# Redis's Lua msgpack predates the bin type: bytes travel as text; so do numbers the
# script passes to commands (Lua formats a number given to redis.call with
# sprintf("%.14g"), a measurable share of the event script's cost): the *_text fields.


class EventArgs(msgspec.Struct, array_like=True):
    """event.lua ARGV[1]: one event (mode "event"), a read (mode "read"), or a try
    (mode "try": the snapshot the event would leave, changing nothing)."""

    mode: str = "event"
    # the identifier the profile would be created for ("" when the key came from a
    # cache and must already exist); set by the store on each try
    primary: str = ""
    now_text: str = "0"
    ts_text: str = "0"
    message_id: str = ""
    payload: str = ""  # the stream entry's event JSON
    traits_set: list[str] = []  # flat: name, json value, ...
    traits_set_once: list[str] = []
    traits_unset: list[str] = []
    recent_product: str = ""
    recent_category: str = ""
    cart_op: str = ""  # "add" | "remove" | "clear" | ""
    cart_product: str = ""
    cart_item: str = ""  # item JSON
    cart_quantity: int = 0
    unverified_claim: str = ""
    # where the event places the person (JSON, edge/ingest/location.py); "" when nowhere
    location: str = ""


class AggregateUpdate(msgspec.Struct, array_like=True):
    """One group of event.lua ARGV[2], a flat list of these: each update carries its
    aggregate's spec, so the script unpacks the whole list of aggregates only when
    it recounts a value."""

    position: int  # 1-based, in the order of the aggregate keys
    kind: str
    bucket_ms: int
    n_buckets: int
    ttl_text: str  # the key's time to live, ms
    value: str


class Limits(msgspec.Struct, array_like=True):
    """The profile limits, packed once: event.lua ARGV[3], merge.lua and effects.lua too."""

    anon_ttl: str  # ms, as text (a command argument)
    max_traits: int
    rp_cap: int
    rc_cap: int
    cart_cap: int
    distinct_cap: int
    dedupe_ms: int
    dedupe_max: int
    gap_ms: int
    stream_max: str  # the event stream's MAXLEN ~, as text


class AggregateList(msgspec.Struct, array_like=True):
    """The loaded rules' aggregates in key order, packed once per ruleset: event.lua
    ARGV[4] (unpacked only to recount) and merge.lua."""

    kinds: list[str]
    bucket_sizes: list[int]
    bucket_counts: list[int]


class ProfileFields(msgspec.Struct, array_like=True):
    """The profile hash's fields in the event script's reply ("" when absent)."""

    id: bytes
    fs: bytes  # first seen ms
    ls: bytes  # last seen ms
    visits: bytes
    events: bytes
    uid: bytes  # verified customer id
    sg: bytes  # segments JSON
    tg: bytes  # tags JSON
    cu: bytes  # cart updated ms
    claim: bytes  # unverified identity claim
    dl: bytes  # delivery state (msgpack; JSON where not rewritten since)
    loc: bytes  # the newest location (JSON: latitude, longitude, at, shop, source)


class Snapshot(msgspec.Struct, array_like=True):
    """event.lua's reply when it found (or made) the profile: status "ok" or "dup"."""

    status: bytes
    profile: ProfileFields
    traits_flat: list[bytes]
    cart_flat: list[bytes]
    recent_products: list[bytes]
    recent_categories: list[bytes]
    windowed: bytes  # msgpack: the signature, lo, hi, then position, value, until per aggregate


class EventArgv(msgspec.Struct, array_like=True):
    """event.lua's ARGV. What is the same for every event of one ruleset (limits,
    aggregates, signature) is packed once per ruleset (see ProfileStore)."""

    event: bytes  # EventArgs
    updates: bytes  # AggregateUpdate, flat
    limits: bytes  # Limits
    aggregates: bytes  # AggregateList
    signature: str  # names that list of aggregates: a stored "g" written for another is ignored


EVENT = Script(
    "event", argv=EventArgv,
    packed={"event": EventArgs, "updates": (AggregateUpdate,), "limits": Limits,
            "aggregates": AggregateList},
    replies={"moved": ("target",), "missing": (), "stale": (), "ok": Snapshot, "dup": Snapshot})


# -- link.lua, merge.lua, drop_pointer.lua ---------------------------------------------------


class LinkArgs(msgspec.Struct, array_like=True):
    identifier: str
    profile_id: str
    user_id: str  # to record; "" if the identifier is not one
    # a pointer value the caller found to lead to this same profile (through merges
    # since), which may be shortened to point straight at it, or ""
    same_pointer: str


LINK = Script("link", argv=LinkArgs, replies={
    "linked": (), "moved": ("target",), "missing": (), "conflict": ("other",),
    "other_user": ("user_id",)})


class MergeArgs(msgspec.Struct, array_like=True):
    merged_id: str
    survivor_id: str
    limits: bytes  # Limits, msgpack
    aggregates: bytes  # AggregateList, msgpack


MERGE = Script("merge", argv=MergeArgs, packed={"limits": Limits, "aggregates": AggregateList}, replies={
    "merged": (), "moved": ("which", "target"), "missing": ("which",)})


class DropPointerArgs(msgspec.Struct, array_like=True):
    profile_id: str  # the profile the pointer should name


DROP_POINTER = Script("drop_pointer", argv=DropPointerArgs)


# -- effects.lua -----------------------------------------------------------------------------


class EffectsArgv(msgspec.Struct, array_like=True):
    outcome: bytes  # EffectsArgs
    deliveries: bytes  # CapCheck and CapRecord groups, flat
    limits: bytes  # Limits
    commit: bytes = b""  # JourneyCommit, or empty for the edge's own decisions


class JourneyCommit(msgspec.Struct, array_like=True):
    """effects.lua ARGV[4] for a journey step: the person's journey state changes only
    from the version it was read at, and once per stimulus."""

    expected: int  # the state's version ("v") the step was computed from
    stimulus: str  # the event's message id, the timer's or the enrolment's key
    applied_max: int  # how many applied stimuli the state remembers
    run_writes: list[Any]  # flat: field, msgpack value, ...
    run_deletes: list[str]  # fields to remove (ended runs)


class EffectsArgs(msgspec.Struct, array_like=True):
    """What one decision changes: effects.lua ARGV[1]."""

    now: int
    segments: str  # JSON, or "" when unchanged
    tags: str  # JSON, or ""
    traits_set: list[str]  # flat: name, json value, ...
    horizon_ms: int  # delivery times older than this are dropped
    variants: list[str]  # flat: experiment id, variant, ...
    consent: list[Any]  # flat: name, granted 0|1, time ms, source, ...
    engagement: list[Any]  # [local hour, channel, engaged 0|1, time ms] or []
    # flat: delivery number (1-based; 0 = none) the entry depends on, (kind,) event JSON, ...
    records: list[Any]  # to the event stream: needs, kind, event JSON, ...
    messages: list[Any]  # to the outbox


class CapCheck(msgspec.Struct, array_like=True):
    """effects.lua ARGV[2] is a flat list of deliveries, each: the number of caps to
    check, that many CapChecks, the number of keys to record times under, that many
    CapRecords. Two caps on one key check one delivery twice, add it once."""

    key: str
    window_ms: int
    most: int
    count: int  # how many deliveries this one counts as


class CapRecord(msgspec.Struct, array_like=True):
    key: str
    times: int


EFFECTS = Script("effects", argv=EffectsArgv,
                 packed={"outcome": EffectsArgs, "deliveries": (CapCheck, CapRecord),
                         "limits": Limits, "commit": JourneyCommit},
                 replies={"ok": ("accepted",), "moved": ("target",), "missing": (), "dup": (),
                          "stale": (), "capped": ()})


# -- catalog_put.lua, catalog_delete.lua -----------------------------------------------------


class CatalogPutArgs(msgspec.Struct, array_like=True):
    product_id: str
    product_json: bytes
    price: str  # effective price
    stock: str  # "" = unknown
    currency: str
    path: str  # category path, "" = none
    read_path: str  # the category path the caller read as stored
    # the announcements' event JSON, without the old value only the script knows
    price_drop_event: str
    back_in_stock_event: str
    stream_max: int


CATALOG_PUT = Script("catalog_put", argv=CatalogPutArgs,
                     replies={"ok": ("dropped", "back"), "recat": ("stored",)})


class CatalogDeleteArgs(msgspec.Struct, array_like=True):
    product_id: str
    read_path: str


CATALOG_DELETE = Script("catalog_delete", argv=CatalogDeleteArgs,
                        replies={"ok": (), "missing": (), "recat": ("stored",)})


# -- timer_claim.lua, timer_release.lua, timer_extend.lua ------------------------------------
# Times are whole ms, passed as ARGV text and handed to commands as they came, never
# through a Lua number (which redis.call would format with 14 significant digits).


class TimerClaimArgs(msgspec.Struct, array_like=True):
    now: int  # timers due at or before this are taken
    lease_now: int  # leases that expired at or before this are taken again
    lease_until: int  # the expiry of every lease this call hands out
    limit: int  # at most this many; 0 only asks whether any is waiting


class ClaimedTimer(msgspec.Struct, array_like=True):
    """One group of timer_claim.lua's flat `taken` reply."""

    member: bytes
    due: bytes  # the due score; for a reclaimed timer the expired lease's
    reclaimed: int  # 1: its lease had expired and was taken over


TIMER_CLAIM = Script("timer_claim", argv=TimerClaimArgs, replies={"ok": ("more", "taken")})


class TimerReleaseArgs(msgspec.Struct, array_like=True):
    lease_until: int  # the lease the caller was given
    members: bytes  # msgpack: one ReleasedTimer each, all of that lease


class ReleasedTimer(msgspec.Struct, array_like=True):
    member: str


# at most this many members per call: Lua unpacks them onto its stack
RELEASE_CHUNK = 1_000

TIMER_RELEASE = Script("timer_release", argv=TimerReleaseArgs,
                       packed={"members": (ReleasedTimer,)})


class TimerExtendArgs(msgspec.Struct, array_like=True):
    member: str
    lease_until: int  # the lease the caller was given
    now: int
    new_lease_until: int


TIMER_EXTEND = Script("timer_extend", argv=TimerExtendArgs)


# -- delivery_claim.lua, delivery_finish.lua -------------------------------------------------


class DeliveryClaimArgs(msgspec.Struct, array_like=True):
    mode: str  # new | retry | retake
    now: int  # the worker's wall clock: a lease that expired by now is a dead holder's
    lease_until: int  # the lease this attempt holds until
    ttl_ms: int  # how long the ledger remembers the message


DELIVERY_CLAIM = Script("delivery_claim", argv=DeliveryClaimArgs, replies={
    "go": ("attempt",), "done": ("state",), "busy": (), "scheduled": (),
    "interrupted": ("attempt",)})


class DeliveryFinishArgs(msgspec.Struct, array_like=True):
    state: str  # sent | failed | dead | retry
    lease_until: int  # the lease the attempt was given
    provider_id: str
    reason: str
    now: int
    message: str  # the message (JSON): what a retry sends, what a provider's status joins to


DELIVERY_FINISH = Script("delivery_finish", argv=DeliveryFinishArgs)

ALL = (EVENT, LINK, MERGE, DROP_POINTER, EFFECTS)
EVERY = (*ALL, CATALOG_PUT, CATALOG_DELETE, TIMER_CLAIM, TIMER_RELEASE, TIMER_EXTEND,
         DELIVERY_CLAIM, DELIVERY_FINISH)
