"""Consent per purpose and per channel, with when and where it was given.

A person's consent arrives as identify traits (`consent: {marketing: true,
email: false, source: "preference centre"}`) or as a `Consent Updated` track
event with the same properties. Each name keeps its newest answer with its time
and source; names never answered fall back to the site's defaults, so a site
can require opt-in (the default for marketing and for every channel that
reaches a person outside the page) or run opt-out where the law allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from rules.definitions import CHANNELS, PURPOSES
from edge.ingest.wire import InputError

CONSENT_EVENT = "Consent Updated"
CONSENT_TRAIT = "consent"
NAMES = (*PURPOSES, *CHANNELS)
MAX_SOURCE = 200

# Opt-in for marketing, for advertising (the person's identifiers matched by ad platforms,
# edge/connectors/audiences.py) and for channels outside the page; the page itself may
# be personalized.
DEFAULTS: dict[str, bool] = {
    "personalization": True, "marketing": False, "advertising": False,
    "web": True, "in_app": True, "push": False, "email": False, "sms": False, "whatsapp": False,
}


@dataclass(frozen=True, slots=True)
class ConsentChange:
    name: str
    granted: bool
    source: str


def parse(value: Any, field: str, default_source: str) -> list[ConsentChange]:
    """{name: bool, ..., "source": text} -> changes; a 4xx InputError names a bad entry."""
    if not isinstance(value, dict):
        raise InputError(field, "expected an object such as {\"marketing\": true, \"email\": false}")
    source = value.get("source", default_source)
    if not isinstance(source, str) or not source or len(source) > MAX_SOURCE:
        raise InputError(f"{field}.source", f"expected text of at most {MAX_SOURCE} characters")
    changes = []
    for name, granted in value.items():
        if name == "source":
            continue
        if name not in NAMES:
            raise InputError(f"{field}.{name}", f"unknown consent; expected one of: {', '.join(NAMES)}")
        if not isinstance(granted, bool):
            raise InputError(f"{field}.{name}", "expected true or false")
        changes.append(ConsentChange(name, granted, source))
    if not changes:
        raise InputError(field, "names no purpose or channel")
    return changes


def resolve(stored: Mapping[str, Any], defaults: Mapping[str, bool]) -> dict[str, bool]:
    """name -> may we, from the stored answers ({name: {"granted": bool, ...}}) and defaults."""
    resolved = {name: defaults.get(name, DEFAULTS[name]) for name in NAMES}
    for name, answer in stored.items():
        if name in resolved and isinstance(answer, dict):
            resolved[name] = bool(answer.get("granted"))
    return resolved
