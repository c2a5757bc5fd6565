"""The stream records: what the edge appends to Redis streams, and what a reader gets back.

Two streams:

- `kairos:events` (EVENTS; `stream.key` in the settings), trimmed with
  `MAXLEN ~ stream.max_length`: every accepted event, and the edge's own records
  that describe what happened (exposures, catalog changes). The log that the
  automation worker, the archive and replays read.
- `kairos:outbox` (OUTBOX), never trimmed: messages to deliver later (email, SMS,
  WhatsApp). An undelivered message must not be trimmed away. The delivery worker
  will read it through a consumer group (XREADGROUP, XACK once sent, then XDEL);
  nothing here creates the group: a group created later from id 0 starts with
  every entry still in the stream. Erasing a person XDELs their entries, also
  ones a consumer holds pending, so a consumer skips entries it can no longer read.

An entry has the fields `p` (profile id; "" when no person: catalog changes),
`e` (the record as event JSON, laid out as a normalized track event, so a reader
of events reads every record) and, only on the edge's own records, `k` (its
kind). A client's own "Experiment Viewed" is an event like any other: only `k`
makes a record the edge's. The event and effects scripts and catalog_put.lua
write entries in this layout (tests/test_script_contracts.py checks their XADDs);
every reader decodes them with `decode`.

History loaded by `kairos import events` is marked: its events carry `imported: true`
at the top of `e` (normalize sets it only for the importer; no field of the HTTP API
reaches it), and so do the segment changes its decisions made (`imported` among the
properties). They stay on the stream for every reader; the automation worker starts,
ends and advances no journey for them (edge/worker/runner.py).
"""

from __future__ import annotations

import itertools
import os
import uuid
from typing import Any, Mapping, Union

import msgspec
import orjson

EVENTS = "kairos:events"
OUTBOX = "kairos:outbox"

# an entry's fields, in the order the writers add them
PROFILE, EVENT, KIND = "p", "e", "k"
FIELDS = (PROFILE, EVENT, KIND)

# values of `k`
EXPOSURE, CATALOG, MESSAGE, ENROLLMENT, SEGMENTS = (
    "exposure", "catalog", "message", "enroll", "segments")

# the event names of the edge's own records
EXPERIMENT_VIEWED = "Experiment Viewed"
MESSAGE_QUEUED = "Message Queued"
ENROLLMENT_REQUESTED = "Journey Enrollment Requested"
SEGMENTS_CHANGED = "Segments Changed"
PRICE_DROPPED = "product_price_dropped"
BACK_IN_STOCK = "product_back_in_stock"

_LIBRARY = {"library": {"name": "kairos-edge"}}

# the top-level field of an imported event's `e`, and the property of a segment change
# its decision made
IMPORTED = "imported"


class Event(msgspec.Struct, frozen=True):
    """An accepted event, as normalize made it."""

    profile_id: str
    event: dict[str, Any]

    @property
    def message_id(self) -> str:
        return self.event["messageId"]

    @property
    def name(self) -> str | None:
        return self.event.get("event")

    @property
    def imported(self) -> bool:
        """History loaded by `kairos import events`, not an event happening now."""
        return self.event.get(IMPORTED) is True


class Exposure(msgspec.Struct, frozen=True, kw_only=True):
    """A person saw an experiment's variant ("Experiment Viewed"), or was held in its
    control group and saw nothing (`exposed` false)."""

    profile_id: str
    message_id: str
    timestamp: int
    experiment: str
    variant: str
    rule: str
    exposed: bool


class OutboundMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A message to deliver on a channel that delivers later ("Message Queued", on the outbox)."""

    profile_id: str
    message_id: str
    timestamp: int
    rule: str  # the rule that chose it; "" for a journey's
    channel: str  # email | sms | whatsapp | push | in_app | webhook (a journey's webhook step)
    title: str | None = None
    body: str = ""
    link: str | None = None  # a webhook step's URL
    # a journey's send: its message_id is the step's idempotency key (run, step, attempt),
    # so a delivery worker can tell a redelivered message from a new one
    journey: str | None = None
    version: str | None = None
    step: str | None = None
    run: str | None = None


class CatalogChange(msgspec.Struct, frozen=True, kw_only=True):
    """A product's effective price dropped (same currency), or it came back in stock."""

    change: str  # PRICE_DROPPED | BACK_IN_STOCK
    message_id: str
    timestamp: int
    product_id: str
    name: str = ""
    url: str = ""
    image: str = ""
    currency: str = ""
    category: str = ""  # the category path, "A > B > C"
    brand: str = ""
    price: float | None = None  # the list price on a drop; the effective price back in stock
    sale_price: float | None = None  # a drop
    new_price: float | None = None   # a drop: the effective price now
    old_price: float | None = None   # a drop: the stored effective price (added by the script)
    new_stock: int | None = None     # back in stock
    old_stock: int | None = None     # back in stock: 0 (added by the script)


class Enrollment(msgspec.Struct, frozen=True, kw_only=True):
    """A person enrolled into a journey through the API, for the worker to carry out."""

    profile_id: str
    message_id: str
    timestamp: int
    journey: str
    idempotency_key: str  # with the journey and the person: the enrolment's stimulus
    key: str | None = None  # the run key (a cart, an order); None: the journey's own
    data: dict[str, Any] = {}  # properties the journey's templates read as event.properties


class SegmentChange(msgspec.Struct, frozen=True, kw_only=True):
    """A person entered or left segments (the edge's decision on one of their events)."""

    profile_id: str
    message_id: str
    timestamp: int
    entered: list[str] = []
    left: list[str] = []
    imported: bool = False  # made by an imported event: history, not a change happening now


Record = Union[Event, Exposure, OutboundMessage, CatalogChange, Enrollment, SegmentChange]
_KINDS = {Exposure: EXPOSURE, OutboundMessage: MESSAGE, Enrollment: ENROLLMENT,
          SegmentChange: SEGMENTS, CatalogChange: CATALOG}


def kind_of(record: Record) -> str:
    """The `k` of an edge record."""
    return _KINDS[type(record)]

# Per change, the properties its event carries besides the product's own: the
# script adds the last one, which only it knows.
_CHANGE_PROPERTIES = {
    PRICE_DROPPED: ("new_price", "price", "sale_price", "old_price"),
    BACK_IN_STOCK: ("price", "new_stock", "old_stock"),
}
_PRODUCT_PROPERTIES = ("product_id", "name", "url", "image", "currency", "category", "brand")


def event_json(record: Exposure | OutboundMessage | CatalogChange | Enrollment | SegmentChange) -> str:
    """An edge record's `e`: a track event whose properties are the record's own fields."""
    if isinstance(record, CatalogChange):
        return _catalog_change_json(record)
    if isinstance(record, SegmentChange):
        name, properties = SEGMENTS_CHANGED, {"entered": record.entered, "left": record.left}
        if record.imported:
            properties[IMPORTED] = True
    elif isinstance(record, Enrollment):
        name, properties = ENROLLMENT_REQUESTED, {
            "journey": record.journey, "idempotency_key": record.idempotency_key,
            "key": record.key, "data": record.data}
    elif isinstance(record, Exposure):
        name, properties = EXPERIMENT_VIEWED, {
            "experiment": record.experiment, "variant": record.variant, "rule": record.rule,
            "exposed": record.exposed}
    else:
        name, properties = MESSAGE_QUEUED, {
            "rule": record.rule, "channel": record.channel, "title": record.title,
            "body": record.body, "link": record.link}
        if record.journey is not None:
            properties.update(journey=record.journey, version=record.version, step=record.step,
                              run=record.run)
    return orjson.dumps({
        "type": "track", "event": name, "properties": properties,
        "messageId": record.message_id, "userId": None, "profileId": record.profile_id,
        "timestamp": record.timestamp, "context": _LIBRARY,
    }).decode()


def _catalog_change_json(change: CatalogChange) -> str:
    # Laid out as normalize lays out a track event, so one consumer reads both.
    properties = {name: getattr(change, name)
                  for name in (*_PRODUCT_PROPERTIES, *_CHANGE_PROPERTIES[change.change])}
    return orjson.dumps({
        "type": "track", "event": change.change, "messageId": change.message_id,
        "timestamp": change.timestamp, "receivedAt": change.timestamp, "anonymousId": None,
        "userId": None, "properties": properties, "traits": {}, "context": {}, "site": None,
    }).decode()


def encode(record: Record) -> dict[str, str]:
    """The entry's fields, as the scripts write them."""
    if isinstance(record, Event):
        return {PROFILE: record.profile_id, EVENT: orjson.dumps(record.event).decode()}
    if isinstance(record, CatalogChange):
        return {PROFILE: "", EVENT: event_json(record), KIND: CATALOG}
    return {PROFILE: record.profile_id, EVENT: event_json(record), KIND: kind_of(record)}


def decode(fields: Mapping[Any, Any]) -> Record:
    """A typed record from a stream entry's fields (as XRANGE/XREAD return them, bytes or text)."""
    def get(name: str) -> str | None:
        raw = fields.get(name.encode(), fields.get(name))
        return raw.decode() if isinstance(raw, bytes) else raw

    profile_id, kind = get(PROFILE) or "", get(KIND)
    event = orjson.loads(get(EVENT) or "null")
    if kind is None:
        return msgspec.convert({"profile_id": profile_id, "event": event}, Event)
    if not isinstance(event, dict):
        raise msgspec.ValidationError(f"a {kind} record's `e` is not an event object")
    found = {**(event.get("properties") or {}), "message_id": event.get("messageId"),
             "timestamp": event.get("timestamp")}
    if kind == EXPOSURE:
        return msgspec.convert({**found, "profile_id": profile_id}, Exposure)
    if kind == MESSAGE:
        return msgspec.convert({**found, "profile_id": profile_id}, OutboundMessage)
    if kind == CATALOG:
        return msgspec.convert({**found, "change": event.get("event")}, CatalogChange)
    if kind == ENROLLMENT:
        return msgspec.convert({**found, "profile_id": profile_id}, Enrollment)
    if kind == SEGMENTS:
        return msgspec.convert({**found, "profile_id": profile_id}, SegmentChange)
    raise msgspec.ValidationError(f"unknown record kind {kind!r}")


# The edge's own records need unique message ids, one or two per answer: a random
# prefix per process and a counter are unique across workers and restarts, and cost
# a tenth of a uuid4 each. A forked child draws a prefix of its own.
_RECORD_PREFIX = ""
_record_numbers = itertools.count(1)


def _new_record_prefix() -> None:
    global _RECORD_PREFIX
    _RECORD_PREFIX = f"kairos-{uuid.uuid4().hex}-"


_new_record_prefix()
os.register_at_fork(after_in_child=_new_record_prefix)


def new_message_id() -> str:
    return f"{_RECORD_PREFIX}{next(_record_numbers)}"
