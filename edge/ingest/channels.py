"""Events that give a person a new way to be reached: their channel addresses.

"Push Subscribed" (sent by the snippet's service worker) carries a Web Push
subscription; it is kept as the trait `push_subscription`, the person's push
address for the channels that deliver later, and the browser's permission
prompt that preceded it counts as consent to push. "Push Unsubscribed" (sent by
the delivery service when the push service answers that the subscription is gone)
removes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from edge.ingest.consent import ConsentChange
from edge.ingest.wire import InputError

PUSH_SUBSCRIBED = "Push Subscribed"
PUSH_UNSUBSCRIBED = "Push Unsubscribed"
PUSH_TRAIT = "push_subscription"


@dataclass(slots=True, frozen=True)
class NewAddress:
    """A channel address an event gives: the trait that holds it, and the consent it implies."""
    trait: str
    address: dict[str, Any]
    consent: ConsentChange


def new_address(event_name: str, properties: dict[str, Any], path: str) -> NewAddress | None:
    if event_name != PUSH_SUBSCRIBED:
        return None
    # The browser asked the person before it subscribed: that permission is consent to push.
    return NewAddress(PUSH_TRAIT,
                      push_subscription(properties.get("subscription"),
                                        f"{path}properties.subscription"),
                      ConsentChange("push", True, "push subscription"))


def removed_address(event_name: str) -> str | None:
    """The trait an event says no longer reaches the person."""
    return PUSH_TRAIT if event_name == PUSH_UNSUBSCRIBED else None


def push_subscription(value: Any, field: str) -> dict[str, Any]:
    """A PushSubscription's JSON: an https endpoint and the p256dh and auth keys."""
    if not isinstance(value, dict):
        raise InputError(field, "expected a push subscription object")
    endpoint = value.get("endpoint")
    if not isinstance(endpoint, str) or urlsplit(endpoint).scheme != "https" or not urlsplit(endpoint).netloc:
        raise InputError(f"{field}.endpoint", "expected an https URL")
    keys = value.get("keys")
    if not isinstance(keys, dict) or not all(isinstance(keys.get(k), str) and keys.get(k)
                                             for k in ("p256dh", "auth")):
        raise InputError(f"{field}.keys", "expected p256dh and auth")
    expiration = value.get("expirationTime")
    return {"endpoint": endpoint, "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]},
            "expirationTime": expiration if isinstance(expiration, (int, float)) else None}
