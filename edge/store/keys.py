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
