"""Engagement with messages: delivered, opened, clicked, dismissed.

The snippet reports "Message Shown", "Message Clicked" and "Message Dismissed"
for in-app messages; the delivering channels report "Push Opened", "Email
Clicked" and so on. Each one counts towards the person's histogram of active
hours (on their own clock), from which the scheduler takes the best hour to
send; an open or a click also makes that channel the one they last engaged on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rules.definitions import NOTIFY_CHANNELS

KINDS = {"shown": "delivered", "delivered": "delivered", "opened": "opened",
         "clicked": "clicked", "dismissed": "dismissed"}
# First word of the event name -> the channel it speaks for.
CHANNEL_WORDS = {"message": "in_app", "push": "push", "email": "email", "sms": "sms",
                 "whatsapp": "whatsapp"}
HOURS = 24


@dataclass(frozen=True, slots=True)
class Engagement:
    kind: str  # delivered | opened | clicked | dismissed
    channel: str

    @property
    def engaged(self) -> bool:
        """Opens and clicks show where the person pays attention."""
        return self.kind in ("opened", "clicked")


def engagement_of(event_name: str, properties: dict[str, Any]) -> Engagement | None:
    words = event_name.lower().split()
    if len(words) != 2 or words[0] not in CHANNEL_WORDS or words[1] not in KINDS:
        return None
    channel = properties.get("channel")
    if channel not in NOTIFY_CHANNELS:
        channel = CHANNEL_WORDS[words[0]]
    return Engagement(KINDS[words[1]], channel)


def best_hour(histogram: list[int]) -> int | None:
    """The local hour with the most engagement (the earliest on a tie); None without any."""
    if not histogram or max(histogram) <= 0:
        return None
    return max(range(len(histogram)), key=lambda hour: (histogram[hour], -hour))
