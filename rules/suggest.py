"""Did-you-mean hints for names that are nearly right."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# How alike (difflib's ratio) a name must be to a known one to count as a slip for it:
# one transposed or missing letter in a four-letter word ("pgae", "slott") is 0.75.
CLOSENESS = 0.75


def near_miss(word: str, known: Iterable[str]) -> str | None:
    """The known name `word` is most likely a slip for (a letter or two off, or in
    another case); None when `word` is itself known or nothing known is close."""
    by_lower: dict[str, str] = {}
    for name in known:
        if name == word:
            return None
        by_lower.setdefault(name.lower(), name)
    if word.lower() in by_lower:
        return by_lower[word.lower()]
    found = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=CLOSENESS)
    return by_lower[found[0]] if found else None


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """" (did you mean 'x'?)" for a near miss, else ""."""
    match = near_miss(word, known)
    return f" (did you mean {match!r}?)" if match is not None else ""
