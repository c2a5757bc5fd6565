"""What decide() finds, before arbitration: segments and the rules whose condition holds."""

from __future__ import annotations

import msgspec


class Decision(msgspec.Struct):
    # ids of the segments the person is in after this event, sorted
    segments: list[str]
    # (position in Ruleset.rules, score) of every rule whose condition holds, in the order
    # arbitration takes them: by priority, then score (highest first), then id
    candidates: list[tuple[int, float]]
