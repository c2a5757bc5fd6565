"""Arbitration's outcomes: why each candidate fired or gave way, as a kind with its data.

Every candidate of an answer ends with exactly one outcome (Selection.trace). Code
reads the kind and the fields (the cap, channel, group, experiment or slot it
concerns); text is made only for people, by `text()` (what /v1/explain shows), and
`removed_by` groups the kinds a client may want to count without reading sentences.
"""

from __future__ import annotations

import enum
from functools import lru_cache

import msgspec

from .durations import format_duration


class Kind(enum.Enum):
    FIRED = "fired"
    # a rule's outcomes
    SLOTS_TAKEN = "slots_taken"  # every slot it fills is taken by better rules
    VARIANT = "variant"  # the person is in another variant of its experiment
    GROUP = "group"  # its mutual-exclusion group already has a winner
    CONSENT = "consent"  # no consent for its purpose (or, for an action, the channel)
    SCHEDULE = "schedule"  # its schedule does not allow it now
    CAP = "cap"  # a frequency cap would be exceeded
    NOTHING_SHOWN = "nothing_shown"  # every action that shows something lost (`reasons`)
    HOLDOUT = "holdout"  # the person is in its experiment's control group
    # why one action could not go out (inside NOTHING_SHOWN and NO_CHANNEL)
    SLOT_TAKEN = "slot_taken"
    NO_ADDRESS = "no_address"
    QUIET_HOURS = "quiet_hours"
    MESSAGE_LIMIT = "message_limit"
    NO_CHANNEL = "no_channel"  # every channel a notify action may use lost (`reasons`)


class Outcome(msgspec.Struct, frozen=True, omit_defaults=True):
    """One outcome; only the fields of its kind are set."""

    kind: Kind
    experiment: str | None = None  # VARIANT, HOLDOUT
    variant: str | None = None  # VARIANT: the person's
    group: str | None = None  # GROUP
    winner: str | None = None  # GROUP: the rule that won it
    purpose: str | None = None  # CONSENT for a rule
    channel: str | None = None  # CONSENT for an action, NO_ADDRESS, QUIET_HOURS
    slot: str | None = None  # SLOT_TAKEN
    cap: str | None = None  # CAP: the cap key ("rule:<id>", "channel:<name>", "global")
    per_ms: int = 0  # CAP: its window
    most: int = 0  # CAP: its maximum; MESSAGE_LIMIT: the policy's
    schedule: str | None = None  # SCHEDULE: what the schedule says (rules.schedule)
    reasons: tuple[Outcome, ...] = ()  # NOTHING_SHOWN, NO_CHANNEL: each action's or channel's

    @property
    def removed_by(self) -> str | None:
        """The family of a rule's outcome, for explain: None when it fired."""
        return _REMOVED_BY[self.kind]

    def text(self) -> str:
        """The outcome in words, as /v1/explain shows it."""
        kind = self.kind
        if kind is Kind.FIRED:
            return "fired"
        if kind is Kind.SLOTS_TAKEN:
            return "nothing could be shown: every slot it fills is taken"
        if kind is Kind.VARIANT:
            return f"experiment {self.experiment!r} gave this person variant {self.variant!r}"
        if kind is Kind.GROUP:
            return f"group {self.group!r} already has a winner ({self.winner})"
        if kind is Kind.CONSENT:
            return f"no consent for {self.purpose or self.channel}"
        if kind is Kind.SCHEDULE:
            return f"schedule: {self.schedule}"
        if kind is Kind.CAP:
            return f"cap {self.cap}: {self.most} per {_duration(self.per_ms)} reached"
        if kind is Kind.NOTHING_SHOWN:
            return "nothing could be shown: " + "; ".join(r.text() for r in self.reasons)
        if kind is Kind.HOLDOUT:
            return f"holdout: control group of experiment {self.experiment!r}"
        if kind is Kind.SLOT_TAKEN:
            return f"slot {self.slot!r} is taken"
        if kind is Kind.NO_ADDRESS:
            return f"no address for {self.channel}"
        if kind is Kind.QUIET_HOURS:
            return f"quiet hours for {self.channel}"
        if kind is Kind.MESSAGE_LIMIT:
            return f"message limit ({self.most}) reached"
        return "no channel: " + ", ".join(r.text() for r in self.reasons)


_REMOVED_BY: dict[Kind, str | None] = {
    Kind.FIRED: None, Kind.SLOTS_TAKEN: "no room", Kind.NOTHING_SHOWN: "no room",
    Kind.VARIANT: "experiment", Kind.HOLDOUT: "holdout", Kind.GROUP: "group",
    Kind.CONSENT: "consent", Kind.SCHEDULE: "schedule", Kind.CAP: "cap",
}
_REMOVED_BY.update({kind: "other" for kind in Kind if kind not in _REMOVED_BY})

FIRED = Outcome(Kind.FIRED)
SLOTS_TAKEN = Outcome(Kind.SLOTS_TAKEN)


def cap_reached(key: str, per_ms: int, most: int) -> Outcome:
    return Outcome(Kind.CAP, cap=key, per_ms=per_ms, most=most)


@lru_cache(maxsize=256)  # a handful of windows, formatted for every capped candidate
def _duration(ms: int) -> str:
    return format_duration(ms)
