"""From a wire event to what the pipeline needs: checked, typed, time-corrected.

Everything here is synchronous and cheap. It enforces the input limits,
decides which identifiers the event may use (a browser's claim of a known
customer counts only when signed), corrects the client's clock skew, and
extracts the profile updates the event implies (traits, cart, recently viewed).
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from edge.ingest import channels, consent, ecommerce, engagement, location
from edge.ingest.auth import Caller, verify_user_hash
from edge.runtime.config import Limits
from edge.ingest.wire import EVENT_TYPES, INT_RANGE_REASON, LARGEST_INT, SMALLEST_INT, Event, InputError
from edge.store.streams import IMPORTED

SET_ONCE_KEY = "$set_once"
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f]")
UNSET_KEY = "$unset"


@dataclass(slots=True)
class Incoming:
    """One accepted event, ready for the store and the rules."""

    event: dict[str, Any]              # normalized Segment-style event (what rules see)
    message_id: str
    ts_ms: int
    primary: str                       # the identifier the event is stored under
    links: list[str] = field(default_factory=list)  # verified identifiers to join to the profile
    user_id: str | None = None         # verified user id, recorded on the profile
    merge_from: list[str] = field(default_factory=list)  # alias: identifiers whose profiles merge in
    claim: str | None = None           # an unverified identity claim, recorded only
    traits_set: dict[str, Any] = field(default_factory=dict)
    traits_set_once: dict[str, Any] = field(default_factory=dict)
    traits_unset: list[str] = field(default_factory=list)
    product: str = ""
    category: str = ""
    cart: ecommerce.CartChange | None = None
    purchased: list[str] = field(default_factory=list)  # product ids of a completed order
    consent: list[consent.ConsentChange] = field(default_factory=list)
    engagement: engagement.Engagement | None = None
    location: str = ""                 # where the event places the person (JSON), to store
    shops: tuple[Any, ...] = ()        # the site's shops (rules.geo.Shop), for `location`


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def check_limits(value: Any, path: str, limits: Limits, depth: int = 0) -> None:
    """Depth, keys per object, items per list, string length and number range, naming the
    first offender."""
    # Nearly every event is within its limits: check without building the path of
    # every value, and only when something is off look again to name it.
    if not _within_limits(value, limits, depth):
        _name_offender(value, path, limits, depth)
        raise InputError(path, "exceeds a limit")  # not reached: the offender is named above


def _within_limits(value: Any, limits: Limits, depth: int) -> bool:
    """The checks of _name_offender, as a yes or no."""
    if isinstance(value, str):
        return len(value) <= limits.max_string_length
    if isinstance(value, dict):
        if depth >= limits.max_depth or len(value) > limits.max_properties:
            return False
        longest_key = limits.max_id_length
        for key, item in value.items():
            if len(key) > longest_key or not _within_limits(item, limits, depth + 1):
                return False
        return True
    if isinstance(value, list):
        if depth >= limits.max_depth or len(value) > limits.max_properties:
            return False
        return all(_within_limits(item, limits, depth + 1) for item in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return not isinstance(value, int) or SMALLEST_INT <= value <= LARGEST_INT


def _name_offender(value: Any, path: str, limits: Limits, depth: int) -> None:
    """Raises InputError naming the first value past a limit, if there is one."""
    if isinstance(value, str):
        if len(value) > limits.max_string_length:
            raise InputError(path, f"string longer than {limits.max_string_length} characters")
    elif isinstance(value, dict):
        if depth >= limits.max_depth:
            raise InputError(path, f"nested deeper than {limits.max_depth} levels")
        if len(value) > limits.max_properties:
            raise InputError(path, f"more than {limits.max_properties} keys")
        for key, item in value.items():
            if len(key) > limits.max_id_length:
                raise InputError(path, f"key longer than {limits.max_id_length} characters")
            _name_offender(item, f"{path}.{key}", limits, depth + 1)
    elif isinstance(value, list):
        if depth >= limits.max_depth:
            raise InputError(path, f"nested deeper than {limits.max_depth} levels")
        if len(value) > limits.max_properties:
            raise InputError(path, f"more than {limits.max_properties} items")
        for index, item in enumerate(value):
            _name_offender(item, f"{path}[{index}]", limits, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InputError(path, "number is not finite")
    elif isinstance(value, int) and not SMALLEST_INT <= value <= LARGEST_INT:
        raise InputError(path, INT_RANGE_REASON)


def _id(value: Any, path: str, limits: Limits) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InputError(path, "expected a string or an integer")
    text = str(value)
    if not text or text.isspace():
        raise InputError(path, "must not be empty")
    if len(text) > limits.max_id_length:
        raise InputError(path, f"longer than {limits.max_id_length} characters")
    if _CONTROL_CHARACTERS.search(text):
        raise InputError(path, "contains control characters")
    return text


def hashed(kind: str, value: str) -> str:
    return f"{kind}:" + hashlib.sha256(value.encode()).hexdigest()


def email_identifier(email: Any) -> str | None:
    if isinstance(email, str) and "@" in email:
        return hashed("email", email.strip().lower())
    return None


def phone_identifier(phone: Any) -> str | None:
    if isinstance(phone, (str, int)):
        digits = "".join(ch for ch in str(phone) if ch.isdigit())
        if len(digits) >= 6:
            return hashed("phone", digits)
    return None


def event_time(event: Event, received_ms: int) -> int:
    """The event's time on the server's clock.

    SDKs stamp `timestamp` with the device clock and `sentAt` when the request
    left, so `received - sentAt` is the device's skew. Events never lie in the
    future: a still-skewed time is clamped to the moment of receipt.
    """
    stamped = event.timestamp or event.originalTimestamp
    if stamped is None:
        return received_ms
    ts = to_ms(stamped)
    if event.sentAt is not None:
        ts += received_ms - to_ms(event.sentAt)
    return min(ts, received_ms)


def normalize(event: Event, caller: Caller, limits: Limits, received_ms: int,
              path: str = "", forced_type: str | None = None,
              batch_sent_at: datetime | None = None, imported: bool = False) -> Incoming:
    """`imported`: history loaded by `kairos import events` (edge/pipeline/importer.py),
    marked so on the event: nothing is delivered of it and no journey runs for it. Only
    the importer passes it; no field of a request can set it."""
    prefix = f"{path}." if path else ""
    kind = forced_type or event.type
    if kind is None:
        # Only events without a typed path (/v1/batch, /v1/b, /v1/e) carry their own type.
        raise InputError(f"{prefix}type", "required: one of " + ", ".join(EVENT_TYPES))
    if kind not in EVENT_TYPES:
        raise InputError(f"{prefix}type", "must be one of " + ", ".join(EVENT_TYPES))

    message_id = _id(event.messageId, f"{prefix}messageId", limits) or str(uuid.uuid4())
    anonymous_id = _id(event.anonymousId, f"{prefix}anonymousId", limits)
    user_id = _id(event.userId, f"{prefix}userId", limits)
    previous_id = _id(event.previousId, f"{prefix}previousId", limits)
    group_id = _id(event.groupId, f"{prefix}groupId", limits)
    for name in ("properties", "traits", "context", "integrations"):
        value = getattr(event, name)
        if value is not None:
            check_limits(value, f"{prefix}{name}", limits)
    properties = event.properties or {}
    traits = event.traits or {}
    context = event.context or {}
    context_traits = context.get("traits")
    if context_traits is None:
        context_traits = {}
    elif not isinstance(context_traits, dict):
        raise InputError(f"{prefix}context.traits", "expected an object of traits")

    if kind == "track":
        if not event.event or not event.event.strip():
            raise InputError(f"{prefix}event", "required for track: the event's name")
        if len(event.event) > limits.max_id_length:
            raise InputError(f"{prefix}event", f"longer than {limits.max_id_length} characters")
    if kind == "alias" and (previous_id is None or user_id is None):
        missing = "previousId" if previous_id is None else "userId"
        raise InputError(f"{prefix}{missing}", "required for alias")
    if kind == "group" and group_id is None:
        raise InputError(f"{prefix}groupId", "required for group")
    if anonymous_id is None and user_id is None:
        raise InputError(f"{prefix}userId", "either userId or anonymousId is required")

    if batch_sent_at is not None and event.sentAt is None:
        event.sentAt = batch_sent_at
    ts = event_time(event, received_ms)

    # Who is this? A secret key is trusted; a browser's claim needs the site's signature.
    signed = not caller.is_public or (
        user_id is not None and verify_user_hash(caller.site, user_id, context.get("userHash"))
    )
    claim: str | None = None
    verified_user = user_id if signed else None
    if user_id is not None and not signed:
        claim = user_id
        if anonymous_id is None:
            raise InputError(f"{prefix}anonymousId",
                             "required with a public key unless userId is signed (context.userHash)")
    primary = f"user:{verified_user}" if verified_user else f"anon:{anonymous_id}"

    links: list[str] = []
    merge_from: list[str] = []
    if verified_user and kind in ("identify", "alias"):
        links.append(f"user:{verified_user}")
        if anonymous_id is not None:
            links.append(f"anon:{anonymous_id}")
        if not caller.is_public:
            # Only the site's own server may join contact details: a browser could
            # otherwise claim somebody else's email and be merged with them.
            person = {**context_traits, **traits}
            for identifier in (email_identifier(person.get("email")),
                               phone_identifier(person.get("phone")),
                               _device_identifier(context)):
                if identifier:
                    links.append(identifier)
    if kind == "alias" and previous_id is not None and signed:
        if previous_id == anonymous_id:
            merge_from = [f"anon:{previous_id}"]
        elif not caller.is_public:
            # Segment's previousId may be an old anonymous id or an old user id.
            merge_from = [f"anon:{previous_id}", f"user:{previous_id}"]

    normalized: dict[str, Any] = {
        "type": kind,
        "messageId": message_id,
        "timestamp": ts,
        "receivedAt": received_ms,
        "anonymousId": anonymous_id,
        "userId": verified_user,
        "properties": properties,
        "traits": traits,
        "context": context,
        "site": caller.site_id,
    }
    if kind == "track":
        normalized["event"] = event.event
    if event.name is not None:
        normalized["name"] = event.name
    if previous_id is not None:
        normalized["previousId"] = previous_id
    if group_id is not None:
        normalized["groupId"] = group_id
    if claim is not None:
        normalized["unverifiedUserId"] = claim
    if imported:
        normalized[IMPORTED] = True

    incoming = Incoming(event=normalized, message_id=message_id, ts_ms=ts, primary=primary,
                        links=links, user_id=verified_user, merge_from=merge_from, claim=claim,
                        shops=location.shops_of(caller.site))
    placed = location.location_of(normalized, incoming.shops, ts)
    if placed is not None:
        incoming.location = orjson.dumps(placed).decode()
    # Segment's spec lets any call carry the person's traits in context.traits (some
    # SDKs send an identify's traits only there): they count as the person's traits,
    # except where the identify's own `traits` say otherwise.
    from_context = {key: value for key, value in context_traits.items()
                    if kind != "identify" or key not in traits}
    if from_context:
        _split_traits(from_context, incoming, f"{prefix}context.traits")
    if kind == "identify":
        _split_traits(traits, incoming, f"{prefix}traits")
    elif kind == "track":
        name = event.event or ""
        ecommerce.check_amounts(name, properties, f"{prefix}properties", limits.max_amount)
        shop = ecommerce.shop_change(name, properties)
        if shop is not ecommerce.NO_CHANGE:
            incoming.product, incoming.category, incoming.cart = shop.product, shop.category, shop.cart
            incoming.purchased = list(shop.purchased)
        address = channels.new_address(name, properties, prefix)
        if address is not None:
            incoming.traits_set[address.trait] = address.address
            incoming.consent.append(address.consent)
        removed = channels.removed_address(name)
        if removed is not None:
            incoming.traits_unset.append(removed)
        if name == consent.CONSENT_EVENT:
            incoming.consent = consent.parse(properties, f"{prefix}properties", "consent event")
        incoming.engagement = engagement.engagement_of(name, properties)
    return incoming


def _device_identifier(context: dict[str, Any]) -> str | None:
    device = context.get("device")
    if isinstance(device, dict) and isinstance(device.get("id"), str) and device["id"]:
        return f"device:{device['id']}"
    return None


def _split_traits(traits: dict[str, Any], incoming: Incoming, path: str) -> None:
    for key, value in traits.items():
        if key == SET_ONCE_KEY:
            if not isinstance(value, dict):
                raise InputError(f"{path}.{SET_ONCE_KEY}", "expected an object of traits")
            incoming.traits_set_once.update(value)
        elif key == UNSET_KEY:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InputError(f"{path}.{UNSET_KEY}", "expected a list of trait names")
            incoming.traits_unset.extend(value)
        elif key == consent.CONSENT_TRAIT:
            incoming.consent = consent.parse(value, f"{path}.{key}", "identify")
        elif value is None:
            incoming.traits_unset.append(key)
        else:
            incoming.traits_set[key] = value
