"""Redis key names. Every key of one profile shares the hash tag {p:<id>}.

A profile's id is the identifier it was first created for ("anon:<id>",
"user:<id>", "email:<sha256>", ...). The key {p:<identifier>} holds either that
profile's hash or, once the identifier is joined to another profile, a pointer
("->" field) to it: the identifier's own key is its alias record.
"""

from __future__ import annotations

from typing import Sequence

# Every aggregate id the edge has ever maintained (for erasure).
AGGREGATE_REGISTRY = "kairos:aggregate-ids"

# Keys of one profile after the hash itself, in the order the scripts expect.
SUFFIXES = (":seen", ":rp", ":rc", ":ids", ":t", ":cart")
# The person's journey runs and entries (edge/store/journeys.py); not read by the event script.
JOURNEYS = ":j"


def _escape(identifier: str) -> str:
    # Braces would change which part of the key Redis Cluster hashes.
    if "{" in identifier or "}" in identifier or "%" in identifier:
        return identifier.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    return identifier


def profile_key(profile_id: str) -> str:
    return "{p:" + _escape(profile_id) + "}"


def profile_keys(profile_id: str, aggregate_ids: Sequence[str]) -> list[str]:
    """Profile hash, seen ids, recent products, recent categories, identifiers, traits, cart, aggregates."""
    base = profile_key(profile_id)
    return [base, *(base + s for s in SUFFIXES), *(base + ":g:" + a for a in aggregate_ids)]


class EventKeys:
    """Packs the event script's keys as RESP: the profile's seven, the stream, the aggregates.

    Every key but the stream is the profile's tag plus a fixed suffix, so the
    RESP bytes for all of them are one template per tag length, filled with one
    `%` operation instead of formatting each key.
    """

    def __init__(self, aggregate_ids: Sequence[str], stream_key: str) -> None:
        self.suffixes = [b"", *(s.encode() for s in SUFFIXES), None,
                         *((":g:" + a).encode() for a in aggregate_ids)]
        self.stream = stream_key.encode()
        self.count = len(self.suffixes)
        self._templates: dict[int, bytes] = {}

    def pack(self, profile_id: str) -> bytes:
        tag = profile_key(profile_id).encode()
        template = self._templates.get(len(tag))
        if template is None:
            template = self._template(len(tag))
        return template % ((tag,) * (self.count - 1))

    def _template(self, tag_length: int) -> bytes:
        parts = []
        for suffix in self.suffixes:
            if suffix is None:
                parts.append(b"$%d\r\n%b\r\n" % (len(self.stream), self.stream.replace(b"%", b"%%")))
            else:
                parts.append(b"$%d\r\n%%b%b\r\n" % (tag_length + len(suffix), suffix.replace(b"%", b"%%")))
        if len(self._templates) > 64:
            self._templates.clear()
        template = self._templates[tag_length] = b"".join(parts)
        return template


# Scratch keys of a try carry this after the profile's tag; no profile key does.
TRY_SUFFIX = b":try"


class TryKeys(EventKeys):
    """The event script's keys for a try: the usual ones, then scratch copies of the
    profile's seven and of its aggregates, under the same tag (so in the same slot)."""

    def __init__(self, aggregate_ids: Sequence[str], stream_key: str) -> None:
        super().__init__(aggregate_ids, stream_key)
        own = [s for s in self.suffixes if s is not None]
        self.suffixes += [TRY_SUFFIX + s for s in own]
        self.count = len(self.suffixes)
