"""A person as numbers: the feature vector a lookalike model reads.

Everything comes from the profile as the rules read it (`profile_from`: the stored
profile and its delivery state), so a lookalike sees what the edge knows and nothing
the edge does not keep. Counts and amounts are taken as log(1 + x), so a few heavy
buyers do not stretch the scale for everyone else; flags are 0 or 1.

| feature | from |
|---|---|
| `days_since_last_event`, `days_since_first_event` | last and first seen (recency, tenure; capped at 400 days, as for someone never seen) |
| `visits` | the profile's visit count (frequency; not its event count, which counts the seed's orders themselves and so tells a buyer by buying) |
| `aggregates.<id>` | each count, sum and distinct aggregate the rules maintain: order counts and spend over their windows, views, ... (`last` aggregates hold text and are left out) |
| `cart_items`, `cart_value` | what is in the cart now |
| `recent_products`, `categories_viewed` | how many products and categories were viewed lately |
| `category:<name>` | the person's share of each of the most common categories among the recently viewed ones |
| `reachable:<channel>` | an address for email, sms (a phone), push (a subscription or token) |
| `consent:<name>` | consent to marketing and to each of those channels, the site's defaults filling in |
| `last_engaged:<channel>` | the channel the person last opened or clicked a message on |
| `engagements` | opens, clicks and other engagement counted by hour of the day |

The categories are the one part that depends on the people: the most common among
those a model is trained on (`category_vocabulary`), so a vector is made in two
steps: `describe` (the fixed part, once per person) and `matrix` (with the
vocabulary, once it is known).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.ingest import consent
from edge.pipeline.delivery import reachable_channels

DAY_MS = 86_400_000
MAX_DAYS = 400.0  # the longest window an aggregate may have: "never" reads as this
CHANNELS = ("email", "sms", "push")
ENGAGED_CHANNELS = ("email", "sms", "push", "in_app", "whatsapp")
CONSENTS = ("marketing", *CHANNELS)
NUMERIC_KINDS = ("count", "sum", "distinct")
DEFAULT_TOP_CATEGORIES = 20


@dataclass(frozen=True, slots=True)
class Described:
    """One person: the fixed part of their vector, and what `matrix` adds to it."""

    profile_id: str
    fixed: np.ndarray  # float32, FeatureSpace.fixed_names() long
    categories: tuple[str, ...]  # recently viewed, newest first
    segments: frozenset[str]
    matchable: bool  # an email or a phone: what an ad platform matches on


@dataclass(frozen=True, slots=True)
class FeatureSpace:
    """Which aggregates become features, and the consent a person has unless they said."""

    aggregate_ids: tuple[str, ...]
    consent_defaults: Mapping[str, bool]

    @classmethod
    def of(cls, aggregate_ids: Sequence[str], kinds: Sequence[str],
           consent_defaults: Mapping[str, bool]) -> "FeatureSpace":
        numeric = tuple(a for a, kind in zip(aggregate_ids, kinds) if kind in NUMERIC_KINDS)
        return cls(numeric, dict(consent_defaults))

    def fixed_names(self) -> list[str]:
        return ["days_since_last_event", "days_since_first_event", "visits",
                *(f"aggregates.{a}" for a in self.aggregate_ids),
                "cart_items", "cart_value", "recent_products", "categories_viewed",
                *(f"reachable:{c}" for c in CHANNELS),
                *(f"consent:{c}" for c in CONSENTS),
                *(f"last_engaged:{c}" for c in ENGAGED_CHANNELS), "engagements"]

    def names(self, vocabulary: Sequence[str]) -> list[str]:
        return [*self.fixed_names(), *(f"category:{c}" for c in vocabulary)]

    def describe(self, profile: Mapping[str, Any], now_ms: int) -> Described:
        """`profile`: as `edge.pipeline.delivery.profile_from` gives it."""
        # the store's profiles are well formed; a part that is not counts as empty, so
        # one odd profile never stops a lookalike of millions
        traits = _mapping(profile.get("traits"))
        aggregates = _mapping(profile.get("aggregates"))
        cart = _mapping(profile.get("cart"))
        items = [item for item in _sequence(cart.get("items")) if isinstance(item, Mapping)]
        categories = tuple(c for c in _sequence(profile.get("recent_categories"))
                           if isinstance(c, str) and c)
        reachable = reachable_channels(traits)
        answers = {name: answer for name, answer in _mapping(profile.get("consent")).items()
                   if isinstance(answer, Mapping)}
        allowed = consent.resolve(answers, self.consent_defaults)
        last = profile.get("last_channel")
        values = [
            _days_since(profile.get("last_seen"), now_ms),
            _days_since(profile.get("first_seen"), now_ms),
            _log(profile.get("visits")),
            *(_log(aggregates.get(a)) for a in self.aggregate_ids),
            _log(sum(_number(item.get("quantity")) for item in items)),
            _log(cart.get("value")),
            _log(len(_sequence(profile.get("recent_products")))),
            _log(len(categories)),
            *(float(channel in reachable) for channel in CHANNELS),
            *(float(bool(allowed.get(name))) for name in CONSENTS),
            *(float(last == channel) for channel in ENGAGED_CHANNELS),
            _log(sum(_number(n) for n in _sequence(profile.get("engagement_hours")))),
        ]
        return Described(
            profile_id=str(profile["id"]),
            fixed=np.asarray(values, dtype=np.float32),
            categories=categories,
            segments=frozenset(s for s in _sequence(profile.get("segments"))
                               if isinstance(s, str)),
            matchable=bool(reachable & {"email", "sms"}))


def category_vocabulary(people: Iterable[Described], top: int = DEFAULT_TOP_CATEGORIES
                        ) -> tuple[str, ...]:
    """The `top` categories the most of these people viewed lately; ties by name."""
    counts = Counter(category for person in people for category in set(person.categories))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(category for category, _ in ranked[:top])


def matrix(people: Sequence[Described], vocabulary: Sequence[str]) -> np.ndarray:
    """One row per person: the fixed part, then each vocabulary category's share."""
    position = {category: i for i, category in enumerate(vocabulary)}
    width = len(people[0].fixed) if people else 0
    rows = np.zeros((len(people), width + len(vocabulary)), dtype=np.float32)
    for row, person in enumerate(people):
        rows[row, :width] = person.fixed
        if person.categories:
            share = 1.0 / len(person.categories)
            for category in person.categories:
                if category in position:
                    rows[row, width + position[category]] = share
    return rows


def _days_since(moment: Any, now_ms: int) -> float:
    if isinstance(moment, bool) or not isinstance(moment, (int, float)):
        return MAX_DAYS
    days = (now_ms - _number(moment)) / DAY_MS
    return min(max(days, 0.0), MAX_DAYS) if math.isfinite(days) else MAX_DAYS


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: Any) -> Sequence[Any]:
    return value if isinstance(value, (list, tuple)) else ()


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    try:
        number = float(value)
    except OverflowError:  # an integer past any float
        return 0.0
    return number if math.isfinite(number) else 0.0


def _log(value: Any) -> float:
    """sign(x) * log(1 + |x|): counts and amounts on a scale where ten times is a step."""
    number = _number(value)
    return math.copysign(math.log1p(abs(number)), number)
