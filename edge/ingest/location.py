"""Where an event places the person, and the location rules read.

Two kinds of event place a person:

- any event whose `context.location` carries Segment's `latitude` and `longitude`
  (numbers within ±90 and ±180; anything else there is ignored, like other context
  fields the edge cannot use, and the event is accepted all the same): the point, with
  the shop whose fence holds it (the nearest where fences overlap, none outside all);
- a track event `Hotspot Login` whose `properties.hotspot` names one of a shop's
  `hotspots` (a Wi-Fi network name or a hotspot device id, as the hotspot's portal
  posts it with a secret key): that shop, at the shop's own point.

The edge stores the newest such location with the profile, in the event's own write
(edge/store/event.lua: `loc`, kept only if no later one is stored), as
`{latitude, longitude, at, shop, source}` with `source` "device" or "hotspot". What
rules and templates read as `location` adds what depends on the moment and on the
site's settings: the shop's `shop_name` and whether it is open now (`shop_open`, on
the shop's clock). `near(shop)` in the rules language reads `shop` and `at`.
"""

from __future__ import annotations

from typing import Any

from edge.runtime.config import ShopSettings, Site
from rules.geo import Shop, is_point, shop_at, shop_with_hotspot
from rules.opening_hours import parse_opening_hours

HOTSPOT_LOGIN = "Hotspot Login"
FROM_DEVICE, FROM_HOTSPOT = "device", "hotspot"

# Per site's settings object, its shops built once: settings are frozen and live as long
# as the process holds them; a reload brings new objects (and the entry is replaced).
_BUILT: dict[int, tuple[Site, tuple[Shop, ...]]] = {}
_MAX_BUILT = 256


def shops_of(site: Site) -> tuple[Shop, ...]:
    """The site's shops as fences, in the order the settings list them."""
    if not site.shops:
        return ()
    found = _BUILT.get(id(site))
    if found is not None and found[0] is site:
        return found[1]
    built = tuple(_shop(shop_id, shop, site.timezone) for shop_id, shop in site.shops.items())
    if len(_BUILT) >= _MAX_BUILT:
        _BUILT.clear()
    _BUILT[id(site)] = (site, built)
    return built


def _shop(shop_id: str, shop: ShopSettings, site_zone: str) -> Shop:
    hours, _ = parse_opening_hours(shop.hours)  # the settings check refused bad ones
    return Shop(id=shop_id, name=shop.name or shop_id, latitude=shop.latitude,
                longitude=shop.longitude, radius_m=shop.radius, hours=hours,
                zone=shop.timezone or site_zone, hotspots=frozenset(shop.hotspots))


def location_of(event: dict[str, Any], shops: tuple[Shop, ...], ts_ms: int
                ) -> dict[str, Any] | None:
    """The location this event places the person at, to store; None when it says none."""
    properties = event.get("properties")
    if event.get("type") == "track" and event.get("event") == HOTSPOT_LOGIN \
            and isinstance(properties, dict) and isinstance(properties.get("hotspot"), str):
        shop = shop_with_hotspot(shops, properties["hotspot"])
        if shop is not None:
            return {"latitude": shop.latitude, "longitude": shop.longitude, "at": ts_ms,
                    "shop": shop.id, "source": FROM_HOTSPOT}
    context = event.get("context")
    sent = context.get("location") if isinstance(context, dict) else None
    if not isinstance(sent, dict):
        return None
    latitude, longitude = sent.get("latitude"), sent.get("longitude")
    if not is_point(latitude, longitude):
        return None
    shop = shop_at(shops, latitude, longitude)
    return {"latitude": latitude, "longitude": longitude, "at": ts_ms,
            "shop": shop.id if shop is not None else None, "source": FROM_DEVICE}


def locate(profile: dict[str, Any], shops: tuple[Shop, ...], now_ms: int) -> None:
    """Puts what rules read as `location` in the profile: the stored location with its
    shop's name and whether the shop is open at `now_ms`."""
    stored = profile.get("location")
    if not isinstance(stored, dict):
        return
    shop = next((s for s in shops if s.id == stored.get("shop")), None)
    profile["location"] = {**stored, "shop_name": shop.name if shop is not None else None,
                           "shop_open": shop is not None and shop.is_open(now_ms)}
