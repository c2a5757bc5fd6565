"""Status events: what became of a message, as a track event of the person it went to
(`Message Sent`, `Message Delivered`, `Message Bounced`, `Message Failed`, and
`Message Complained` when the person reported it as spam), joined to
the journey step or rule that sent it. The delivery service emits them as it sends;
the provider callback routes emit the later ones. Their message id is made from the
message's and the status, so an echo emitted twice is recorded once."""

from __future__ import annotations

from typing import Any

from edge.ingest.auth import Caller
from edge.ingest.normalize import Incoming, normalize
from edge.ingest.wire import Event
from edge.runtime.config import Settings
from edge.store.streams import OutboundMessage

SENT, DELIVERED, BOUNCED, FAILED = ("Message Sent", "Message Delivered", "Message Bounced",
                                    "Message Failed")
COMPLAINED = "Message Complained"


def status_event(settings: Settings, site_id: str, message: OutboundMessage, name: str,
                 now_ms: int, attempt: int = 0, provider_id: str = "", reason: str = "",
                 dead: bool = False) -> tuple[Incoming, Caller] | None:
    """The status event, ready for the edge's pipeline; None when the site is unknown."""
    properties: dict[str, Any] = {"message_id": message.message_id, "channel": message.channel}
    if attempt:
        properties["attempt"] = attempt
    for key, value in (("provider_id", provider_id), ("reason", reason),
                       ("journey", message.journey), ("version", message.version),
                       ("step", message.step), ("run", message.run), ("rule", message.rule)):
        if value:
            properties[key] = value
    if dead:
        properties["dead_letter"] = True
    return person_event(settings, site_id, message.profile_id, name,
                        f"{message.message_id}:{name}", properties, now_ms)


def person_event(settings: Settings, site_id: str, profile_id: str, name: str,
                 message_id: str, properties: dict[str, Any], now_ms: int
                 ) -> tuple[Incoming, Caller] | None:
    """A track event of the person `profile_id` names, as the site's own backend would
    send it; None when the site is unknown."""
    site = settings.sites.get(site_id)
    if site is None:
        return None
    kind, _, person = profile_id.partition(":")
    identity = {"userId": person} if kind == "user" else {"anonymousId": person}
    event = Event(type="track", event=name, messageId=message_id, properties=properties,
                  **identity)
    caller = Caller("secret", site_id, site, frozenset({"ingest"}))
    return normalize(event, caller, settings.limits, now_ms), caller
