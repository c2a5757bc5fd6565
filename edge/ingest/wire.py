"""What crosses HTTP: msgspec schemas for Segment-compatible events and our answers.

The field names are Segment's HTTP Tracking API, so existing analytics SDKs
work unchanged. Unknown fields are ignored (SDKs add their own metadata).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import msgspec

EVENT_TYPES = ("track", "page", "screen", "identify", "alias", "group")

# Segment allows numeric ids; we keep them as given and turn them into strings.
Id = str | int | None


class Event(msgspec.Struct, omit_defaults=True):
    type: str | None = None
    messageId: Id = None
    anonymousId: Id = None
    userId: Id = None
    previousId: Id = None
    groupId: Id = None
    event: str | None = None
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    writeKey: str | None = None


class Batch(msgspec.Struct, omit_defaults=True):
    batch: list[Event]
    sentAt: datetime | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    writeKey: str | None = None


event_decoder = msgspec.json.Decoder(Event)
batch_decoder = msgspec.json.Decoder(Batch)
any_decoder = msgspec.json.Decoder()
encoder = msgspec.json.Encoder()


# Whole numbers the event stream, the profile and the catalog can hold (what orjson
# writes: int64 and uint64); bigger ones would be kept only in part, or not at all.
SMALLEST_INT = -(2**63)
LARGEST_INT = 2**64 - 1
INT_RANGE_REASON = ("whole number outside the 64-bit range (-2^63 to 2^64-1): "
                    "send it as a string to keep every digit")


class InputError(Exception):
    """Bad input, answered with 4xx and a JSON body naming the field and the reason
    (edge/http/errors.py)."""

    def __init__(self, field: str, reason: str, status: int = 400) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.status = status


def field_from_validation_error(message: str) -> tuple[str, str]:
    """Split msgspec's "Expected `str`, got `int` - at `$.batch[0].userId`" into parts."""
    reason, sep, where = message.rpartition(" - at `")
    if not sep:
        return "body", message
    path = where.rstrip("`")
    path = path[2:] if path.startswith("$.") else path.lstrip("$") or "body"
    return path, reason


# Objects and lists around an event's values in the deepest body (a batch:
# {"batch": [{"properties": ...}]}), on top of limits.max_depth for the values.
ENVELOPE_DEPTH = 4
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_ALL_BUT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def check_nesting(body: bytes, max_depth: int) -> None:
    """Refuses a body nested far deeper than max_depth values allow, before any decoder
    recurses into it: tens of thousands of levels fit under the size limit.

    A guard, not the limit itself: up to twice max_depth, the checks after decoding
    name the value that is too deep (properties.a.b...), which says more than "body".
    """
    most = 2 * max_depth + ENVELOPE_DEPTH
    if body.count(b"{") + body.count(b"[") <= most:
        return  # too few brackets to be too deep: nearly every body
    depth = deepest = 0
    for byte in _JSON_STRING.sub(b"", body).translate(None, _ALL_BUT_BRACKETS):
        if byte == 0x7B or byte == 0x5B:  # { [
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    if deepest > most:
        raise InputError("body", f"nested deeper than {most} levels")
