"""The request context the rules see: page, device, location, time zone, channel."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from edge.ingest.auth import Caller

_MOBILE = re.compile(r"Mobi|Android|iPhone|iPod", re.I)
_TABLET = re.compile(r"iPad|Tablet", re.I)
_BOT = re.compile(r"bot|crawl|spider|slurp|headless", re.I)
_OS = (("Android", "android"), ("iPhone", "ios"), ("iPad", "ios"), ("Mac OS", "macos"),
       ("Windows", "windows"), ("Linux", "linux"))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


_DEVICE_CACHE: dict[str, dict[str, str]] = {}
_DEVICE_CACHE_SIZE = 4096


def device_from_user_agent(user_agent: str) -> dict[str, str]:
    """Device type and OS from a User-Agent; remembered, since a few agents make most traffic."""
    found = _DEVICE_CACHE.get(user_agent)
    if found is None:
        if len(_DEVICE_CACHE) >= _DEVICE_CACHE_SIZE:
            _DEVICE_CACHE.clear()
        found = _DEVICE_CACHE[user_agent] = _parse_user_agent(user_agent)
    return found


def _parse_user_agent(user_agent: str) -> dict[str, str]:
    if _BOT.search(user_agent):
        kind = "bot"
    elif _TABLET.search(user_agent):
        kind = "tablet"
    elif _MOBILE.search(user_agent):
        kind = "mobile"
    else:
        kind = "desktop"
    os_name = next((name for marker, name in _OS if marker in user_agent), "other")
    return {"type": kind, "os": os_name}


def build_context(event: dict[str, Any], caller: Caller, user_agent: str | None,
                  country_header: str | None, profile_traits: dict[str, Any]) -> dict[str, Any]:
    sent = _dict(event.get("context"))
    properties = _dict(event.get("properties"))

    page = dict(_dict(sent.get("page")))
    if event["type"] == "page":
        for key in ("url", "path", "referrer", "title", "search"):
            if key in properties and key not in page:
                page[key] = properties[key]
    if "url" in page and "path" not in page and isinstance(page["url"], str):
        page["path"] = urlsplit(page["url"]).path or "/"

    device = dict(_dict(sent.get("device")))
    agent = sent.get("userAgent") if isinstance(sent.get("userAgent"), str) else user_agent
    if agent:
        guessed = device_from_user_agent(agent)
        device.setdefault("type", guessed["type"])
        device.setdefault("os", guessed["os"])
    os_info = _dict(sent.get("os"))
    if "name" in os_info and "os" not in device:
        device["os"] = str(os_info["name"]).lower()

    location = dict(_dict(sent.get("location")))
    if country_header and "country" not in location:
        location["country"] = country_header

    timezone = sent.get("timezone") or profile_traits.get("timezone") or caller.site.timezone
    locale = sent.get("locale")
    if "app" in sent or device.get("type") in ("ios", "android"):
        channel = "app"
    elif caller.is_public:
        channel = "web"
    else:
        channel = "server"
    return {
        "page": page,
        "device": device,
        "location": location,
        "timezone": timezone if isinstance(timezone, str) else None,
        "locale": locale if isinstance(locale, str) else None,
        "channel": channel,
        "site": caller.site_id,
        "utm": _dict(sent.get("campaign")),
    }
