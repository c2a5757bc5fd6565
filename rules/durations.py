"""Duration literals such as 30s, 15m, 2h, 7d, shared by expressions and windows."""

from __future__ import annotations

import re

UNIT_MS: dict[str, int] = {
    "ms": 1,
    "s": 1_000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 7 * 86_400_000,
}

# Digits bounded so that a hostile document cannot make us build a huge integer.
_DURATION = re.compile(r"([0-9]{1,12})([a-z]+)")


def parse_duration(text: str) -> int | None:
    """Milliseconds for a duration such as '7d', or None when it is not one."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or match.group(2) not in UNIT_MS:
        return None
    return int(match.group(1)) * UNIT_MS[match.group(2)]


def format_duration(ms: int) -> str:
    """The shortest exact spelling of a millisecond count, e.g. 900000 -> '15m'."""
    for unit in ("w", "d", "h", "m", "s"):
        if ms and ms % UNIT_MS[unit] == 0:
            return f"{ms // UNIT_MS[unit]}{unit}"
    return f"{ms}ms"
