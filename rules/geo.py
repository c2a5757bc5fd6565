"""Places on the Earth: the distance between two points, and which shop's fence holds one.

One implementation serves the rules language's `distance()` (rules/runtime.py) and the
edge's geofences (edge/ingest/location.py), so "inside the fence" means the same to
both. Distances are great-circle distances on a sphere of the Earth's mean radius,
6,371,008.8 m (IUGG), by the haversine formula:

    a = sin²(Δφ/2) + cos φ1 · cos φ2 · sin²(Δλ/2),   d = 2 · R · asin(√min(1, a))

with φ the latitudes and λ the longitudes in radians. The sphere is off the
ellipsoid by at most about 0.5%, far less than a phone's fix indoors; haversine
keeps metres exact for the short distances fences are about (the law of cosines
loses them to rounding), and `min(1, a)` keeps rounding from taking asin past 1
near antipodes.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rules/runtime.py imports this module; opening hours reach back to it
    from .opening_hours import OpeningHours

EARTH_RADIUS_M = 6_371_008.8


def is_coordinate(value: object, limit: float) -> bool:
    """A number (not a boolean) within ±limit: a latitude (90) or a longitude (180)."""
    kind = value.__class__
    return (kind is int or kind is float) and -limit <= value <= limit  # type: ignore[operator]


def is_point(latitude: object, longitude: object) -> bool:
    return is_coordinate(latitude, 90) and is_coordinate(longitude, 180)


def distance_m(lat1: object, lon1: object, lat2: object, lon2: object) -> float | None:
    """Metres between two points; None unless all four are numbers within range
    (latitudes within ±90, longitudes within ±180; NaN is within no range)."""
    if not (is_point(lat1, lon1) and is_point(lat2, lon2)):
        return None
    phi1, phi2 = math.radians(lat1), math.radians(lat2)  # type: ignore[arg-type]
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians(lon2 - lon1) / 2  # type: ignore[operator]
    a = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))


@dataclass(frozen=True)
class Shop:
    """A shop as a geofence: a circle around its point, its opening hours in its zone,
    and the hotspots (Wi-Fi network names, hotspot device ids) whose logins place a
    person inside it."""

    id: str
    name: str
    latitude: float
    longitude: float
    radius_m: float
    hours: OpeningHours
    zone: str
    hotspots: frozenset[str] = field(default_factory=frozenset)

    def contains(self, latitude: float, longitude: float) -> bool:
        """The point lies in the fence: at most `radius_m` from the shop (the edge counts)."""
        found = distance_m(self.latitude, self.longitude, latitude, longitude)
        return found is not None and found <= self.radius_m

    def is_open(self, now_ms: int) -> bool:
        return self.hours.is_open(now_ms, self.zone)


def shop_at(shops: Iterable[Shop], latitude: float, longitude: float) -> Shop | None:
    """The shop whose fence holds the point; where fences overlap, the nearest shop
    (by its centre), and on equal distances the first listed."""
    best: Shop | None = None
    best_distance = math.inf
    for shop in shops:
        found = distance_m(shop.latitude, shop.longitude, latitude, longitude)
        if found is not None and found <= shop.radius_m and found < best_distance:
            best, best_distance = shop, found
    return best


def shop_with_hotspot(shops: Iterable[Shop], hotspot: str) -> Shop | None:
    """The (first) shop one of whose hotspots is `hotspot`."""
    return next((shop for shop in shops if hotspot in shop.hotspots), None)
