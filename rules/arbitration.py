"""Arbitration: from the rules whose condition holds to what one person gets now.

Candidates are taken in order (priority, then score, then id). Each is checked
for its mutual-exclusion group, consent, schedule, frequency caps, room (a free
slot, the message limit, a reachable channel) and finally its experiment. A
candidate that fails any check gives way to the next; the reason is kept in
the trace as a typed outcome (rules.outcomes), which /v1/explain puts in words.
The same inputs always give the same answer.

The checks that hold at the moment of sending (consent, address, quiet hours,
caps) are SendChecks, which arbitration uses and which anything that sends
later calls on its own.

select() runs per event, over a dozen candidates or so: what each rule's checks
need that does not depend on the person (its placements on fixed channels, its
caps and their counts) is worked out once at load (_Prepared), and what does
not change within one answer (stored deliveries under a cap, a closed channel)
once per answer (_Room).

Pure: the caller passes the person's delivery history, consent, stored
experiment variants and reachable channels, and stores what comes back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .definitions import (
    CHANNELS,
    Action,
    CapDef,
    ExperimentDef,
    MessageAction,
    NotifyAction,
    PolicyDef,
    PushAction,
    RuleDef,
    SetTraitAction,
    SlotAction,
    TagAction,
)
from .experiments import CONTROL, variant_for
from .outcomes import FIRED, SLOTS_TAKEN, Kind, Outcome, cap_reached
from .schedule import in_range, schedule_block

# Channels that quiet hours silence: they reach a person who is not looking at a screen.
INTERRUPTING = frozenset({"push", "email", "sms", "whatsapp"})
GLOBAL = "global"


@dataclass(frozen=True, slots=True)
class RulePlan:
    """What arbitration needs to know about one rule, worked out once at load."""

    rule: RuleDef
    experiment: ExperimentDef | None
    displays: bool  # has a slot, message, push or notify action
    id: str
    caps: tuple[tuple[str, int, int], ...]  # the rule's own caps as (key, window, max)
    slots: frozenset[str]  # slots it fills, when slots are all it shows (else empty)

    @classmethod
    def of(cls, rule: RuleDef, experiment: ExperimentDef | None) -> RulePlan:
        displays = any(isinstance(a, (SlotAction, MessageAction, PushAction, NotifyAction))
                       for a in rule.actions)
        slot_names = [a.slot for a in rule.actions if isinstance(a, SlotAction)]
        only_slots = slot_names and not any(
            isinstance(a, (MessageAction, PushAction, NotifyAction)) for a in rule.actions)
        return cls(rule, experiment, displays, rule.id,
                   tuple((f"rule:{rule.id}", cap.per_ms, cap.max) for cap in rule.caps),
                   frozenset(slot_names) if only_slots else frozenset())


@dataclass(slots=True)
class Person:
    """One person's state, as read from the profile with this event."""

    profile_id: str
    now_ms: int
    weekday: str  # "mon".."sun" on the person's clock
    minute: int  # minute of the day on the person's clock
    consent: Mapping[str, bool]  # purpose or channel -> may we
    deliveries: Mapping[str, Sequence[int]]  # cap key -> delivery times (ms)
    variants: Mapping[str, str]  # experiment id -> stored variant
    reachable: frozenset[str]  # channels with an address (in_app and web always)
    preferred_channel: str | None = None
    last_channel: str | None = None
    date: str = ""  # "YYYY-MM-DD" on the person's clock; empty: the UTC date of now_ms


@dataclass(slots=True)
class Placement:
    """One action of a fired rule, with the channel it goes out on (None: no channel)."""

    action: Action
    channel: str | None


@dataclass(slots=True)
class Fired:
    """A winner; neither this nor its lists are changed once made."""

    plan: RulePlan
    placements: list[Placement]
    variant: str | None
    # caps to check and record atomically when this rule is delivered: (key, window ms, max)
    caps: Sequence[tuple[str, int, int]]
    # delivery times it adds under each cap key: (key, count), see deliveries_per_key
    added: Sequence[tuple[str, int]] = ()


@dataclass(slots=True)
class Selection:
    segments: list[str]
    fired: list[Fired] = field(default_factory=list)
    # (experiment, variant, rule) for every exposure and every control-group non-exposure
    exposures: list[tuple[str, str, str]] = field(default_factory=list)
    variants: dict[str, str] = field(default_factory=dict)  # experiment id -> this person's
    new_variants: dict[str, str] = field(default_factory=dict)  # ... the ones to store
    # rule id -> its outcome: fired, or why it gave way; only candidates appear
    trace: dict[str, Outcome] = field(default_factory=dict)

    def expose(self, experiment: str, variant: str, rule_id: str) -> None:
        """Record one exposure (or control non-exposure) per experiment per answer."""
        if all(recorded[0] != experiment for recorded in self.exposures):
            self.exposures.append((experiment, variant, rule_id))

    def traits_and_tags(self) -> tuple[dict[str, object], list[str]]:
        """Traits set and tags added by the fired rules; the first rule to set a trait wins."""
        traits: dict[str, object] = {}
        tags: list[str] = []
        for fired in self.fired:
            for placement in fired.placements:
                action = placement.action
                if isinstance(action, SetTraitAction):
                    for key, value in action.values.items():
                        traits.setdefault(key, value)
                elif isinstance(action, TagAction):
                    tags.extend(tag for tag in action.tags if tag not in tags)
        return traits, tags


class Arbiter:
    """Built once per ruleset; select() runs per event."""

    def __init__(self, plans: Sequence[RulePlan], policy: PolicyDef) -> None:
        self.plans = plans
        self.policy = policy
        self.checks = SendChecks(policy)
        self._prepared = [_Prepared(plan, self.checks.channel_caps) for plan in plans]

    def select(self, segments: list[str], candidates: list[tuple[int, float]],
               person: Person) -> Selection:
        """The winners among `candidates`, taken in the order given: arbitration order
        (priority, then score, highest first, then id), as decide() lists them."""
        if not candidates:
            return Selection(segments)
        # Each field given: the default factories cost more than the lists themselves.
        selection = Selection(segments, [], [], {}, {}, {})
        room = _Room(self, person, selection)
        prepared, trace, fired_rules = self._prepared, selection.trace, selection.fired
        for position, _score in candidates:
            found = prepared[position]
            plan = found.plan
            reason, fired = self._consider(found, room)
            trace[plan.id] = FIRED if reason is None else reason
            if fired is not None:
                room.take(fired)
                fired_rules.append(fired)
                if fired.variant is not None and plan.experiment is not None:
                    selection.expose(plan.experiment.id, fired.variant, plan.id)
        return selection

    def _consider(self, prepared: _Prepared, room: _Room) -> tuple[Outcome | None, Fired | None]:
        """Every check, in order, for any rule: why it gives way, or what it fires."""
        plan = prepared.plan
        rule = plan.rule
        person = room.person
        if plan.slots and plan.slots <= room.slots.keys():
            # The common loser: a rule for slots that better rules already filled.
            return SLOTS_TAKEN, None
        variant = None
        if plan.experiment is not None:
            variant = room.variant(plan.experiment)
            if variant != CONTROL and rule.variant is not None and variant != rule.variant:
                return Outcome(Kind.VARIANT, experiment=plan.experiment.id, variant=variant), None
        if rule.group is not None and rule.group in room.groups:
            return Outcome(Kind.GROUP, group=rule.group, winner=room.groups[rule.group]), None
        if not person.consent.get(rule.purpose, False):
            return Outcome(Kind.CONSENT, purpose=rule.purpose), None
        if rule.schedule is not None:
            blocked = schedule_block(rule.schedule, person.now_ms, person.weekday, person.minute,
                                     person.date)
            if blocked is not None:
                return Outcome(Kind.SCHEDULE, schedule=blocked), None
        if prepared.own_counts:
            capped = room.capped(prepared.own_counts)
            if capped is not None:
                return capped, None
        placements: list[Placement] = []
        reasons: list[Outcome] = []
        slots: list[str] = []  # slots this rule fills, in this answer
        messages = 0
        for how, action, fixed in prepared.actions:
            if how is _ALWAYS:  # a tag or a trait: always applies
                placements.append(fixed)  # type: ignore[arg-type]
                continue
            if how is _SLOT:
                slot = action.slot  # type: ignore[attr-defined]
                if slot in room.slots or slot in slots:
                    reasons.append(Outcome(Kind.SLOT_TAKEN, slot=slot))
                    continue
                why = room.channel_check("web", messages)
                if why is not None:
                    reasons.append(why)
                    continue
                placements.append(fixed)  # type: ignore[arg-type]
                slots.append(slot)
                continue
            if how is _FIXED:
                channel = fixed.channel  # type: ignore[union-attr]
                why = room.channel_check(channel, messages)  # type: ignore[arg-type]
                placement = fixed
            else:  # notify: the channel is chosen per person
                channel, why = self._choose(action, person, room, messages)  # type: ignore[arg-type]
                placement = None
            if why is not None:
                reasons.append(why)
                continue
            placements.append(placement or Placement(action, channel))
            if channel == "in_app":
                messages += 1
        if len(placements) == prepared.placed_all and prepared.full_caps is not None:
            # Every action found its fixed channel: the caps were worked out at load.
            caps, counts, added = prepared.full_caps, prepared.full_counts, prepared.full_added
        else:
            shown = [p for p in placements if p.channel is not None]
            if plan.displays and not shown:
                return Outcome(Kind.NOTHING_SHOWN, reasons=tuple(reasons)), None
            caps = list(plan.caps)
            for placement in shown:
                caps += self.checks.channel_caps[placement.channel]  # type: ignore[index]
            counts = _counted(caps)
            added = tuple(deliveries_per_key(caps).items())
        if counts:
            capped = room.capped(counts)
            if capped is not None:
                return capped, None
        if variant == CONTROL:
            room.selection.expose(plan.experiment.id, CONTROL, rule.id)  # type: ignore[union-attr]
            return Outcome(Kind.HOLDOUT, experiment=plan.experiment.id), None  # type: ignore[union-attr]
        return None, Fired(plan, placements, variant, caps, added)

    def _choose(self, action: NotifyAction, person: Person, room: _Room,
                messages: int) -> tuple[str | None, Outcome | None]:
        """The channel for this person: their preference, else where they last engaged, else
        the configured order; skipping channels without consent, address or room."""
        reasons = []
        for channel in channel_preference(action.channels, person, self.policy.channel_order):
            why = room.channel_check(channel, messages)
            if why is None:
                return channel, None
            reasons.append(why)
        return None, Outcome(Kind.NO_CHANNEL, reasons=tuple(reasons))


def channel_preference(channels: Sequence[str], person: Person,
                       order: Sequence[str]) -> list[str]:
    """The action's channels, most suitable first."""
    ranked = sorted(channels, key=lambda c: order.index(c) if c in order else len(order))
    for favourite in (person.last_channel, person.preferred_channel):
        if favourite in ranked:
            ranked.remove(favourite)  # type: ignore[arg-type]
            ranked.insert(0, favourite)  # type: ignore[arg-type]
    return ranked


class SendChecks:
    """The send-time checks of one policy, callable on their own: consent, address, quiet
    hours and frequency caps.

    Arbitration makes them for what it places now; whatever sends later (a journey step,
    a retried delivery) makes them again at the moment of sending, because consent,
    addresses, the person's clock and their delivery history move in between.
    """

    def __init__(self, policy: PolicyDef) -> None:
        self.policy = policy
        caps: dict[str, tuple[CapDef, ...]] = dict(policy.caps)
        # channel -> the caps one delivery on it counts towards, as (key, window, max)
        self.channel_caps: dict[str, tuple[tuple[str, int, int], ...]] = {}
        for channel in CHANNELS:
            found = [(f"channel:{channel}", c.per_ms, c.max) for c in caps.get(channel, ())]
            if channel != "web":
                found += [(GLOBAL, c.per_ms, c.max) for c in caps.get(GLOBAL, ())]
            self.channel_caps[channel] = tuple(found)
        self.channel_counts = {channel: _counted(found)
                               for channel, found in self.channel_caps.items()}

    def why_not(self, person: Person, channel: str, purpose: str | None = None,
                caps: Sequence[tuple[str, int, int]] = ()) -> Outcome | None:
        """Why one delivery on `channel` may not reach `person` now; None when it may.

        `purpose`: what the message is for ("marketing"), when its sender has one;
        `caps`: the sender's own caps as (key, window ms, max), such as a rule's
        ("rule:<id>") or a journey's. Checked in arbitration's order: the purpose,
        the sender's caps, then the channel (consent, address, quiet hours, its caps
        and the global ones), so both name the same reason.
        """
        if channel not in self.channel_caps:
            raise ValueError(f"unknown channel {channel!r}: one of {', '.join(CHANNELS)}")
        if purpose is not None and not person.consent.get(purpose, False):
            return Outcome(Kind.CONSENT, purpose=purpose)
        if caps:
            exceeded = cap_exceeded(person, _counted(caps))
            if exceeded is not None:
                return exceeded
        return self.closed(person, channel) or cap_exceeded(person, self.channel_counts[channel])

    def closed(self, person: Person, channel: str) -> Outcome | None:
        """Why `channel` cannot reach `person` at all now: consent, address, quiet hours."""
        if not person.consent.get(channel, False):
            return Outcome(Kind.CONSENT, channel=channel)
        if channel not in person.reachable:
            return Outcome(Kind.NO_ADDRESS, channel=channel)
        quiet = self.policy.quiet
        if channel in INTERRUPTING and quiet is not None and in_range(person.minute, quiet):
            return Outcome(Kind.QUIET_HOURS, channel=channel)
        return None


def cap_exceeded(person: Person,
                 counts: Sequence[tuple[tuple[str, int, int], int]]) -> Outcome | None:
    """Why these deliveries would break a cap, counting what the person's history holds;
    `counts` as made by `_counted`."""
    for (key, per_ms, most), pending in counts:
        if delivered_within(person, key, per_ms) + pending > most:
            return cap_reached(key, per_ms, most)
    return None


def delivered_within(person: Person, key: str, per_ms: int) -> int:
    """Deliveries under this cap key in the person's history younger than the window."""
    times = person.deliveries.get(key)
    if not times:
        return 0  # most keys, for most people
    since = person.now_ms - per_ms
    return len([t for t in times if t > since])


class _Room:
    """What this answer has used so far: slots, messages, groups and cap counts."""

    __slots__ = ("arbiter", "person", "selection", "slots", "groups", "messages", "added",
                 "_stored", "_closed")

    def __init__(self, arbiter: Arbiter, person: Person, selection: Selection) -> None:
        self.arbiter = arbiter
        self.person = person
        self.selection = selection
        self.slots: dict[str, str] = {}
        self.groups: dict[str, str] = {}
        self.messages = 0
        self.added: dict[str, int] = {}  # cap key -> deliveries in this answer
        # What does not change within one answer, worked out on first use:
        self._stored: dict[tuple[str, int, int], int] = {}  # cap -> deliveries stored within
        self._closed: dict[str, Outcome | None] = {}  # channel -> why it cannot be used, or None

    def variant(self, experiment: ExperimentDef) -> str:
        """This person's variant, assigned (and noted for storing) on first use."""
        selection = self.selection
        variant = selection.variants.get(experiment.id)
        if variant is None:
            stored = self.person.variants.get(experiment.id)
            variant = variant_for(experiment, self.person.profile_id, stored)
            selection.variants[experiment.id] = variant
            if variant != stored:
                selection.new_variants[experiment.id] = variant
        return variant

    def capped(self, counts: Sequence[tuple[tuple[str, int, int], int]]) -> Outcome | None:
        """Why these deliveries would break a cap; `counts` as made by `_counted`."""
        stored, added, person = self._stored, self.added, self.person
        for cap, pending in counts:
            key, per_ms, most = cap
            before = stored.get(cap)
            if before is None:
                before = stored[cap] = delivered_within(person, key, per_ms)
            if before + added.get(key, 0) + pending > most:
                return cap_reached(key, per_ms, most)
        return None

    def channel_check(self, channel: str, pending_messages: int) -> Outcome | None:
        """Why this channel cannot take one more delivery of a rule that already placed
        `pending_messages` in-app messages; None when it can."""
        closed = self._closed.get(channel, _UNKNOWN)
        if closed is _UNKNOWN:
            closed = self._closed[channel] = self.arbiter.checks.closed(self.person, channel)
        if closed is not None:
            return closed  # type: ignore[return-value]
        most = self.arbiter.policy.max_messages
        if channel == "in_app" and self.messages + pending_messages >= most:
            return Outcome(Kind.MESSAGE_LIMIT, most=most)
        counts = self.arbiter.checks.channel_counts[channel]
        if counts:
            return self.capped(counts)
        return None

    def take(self, fired: Fired) -> None:
        rule = fired.plan.rule
        if rule.group is not None:
            self.groups[rule.group] = rule.id
        for placement in fired.placements:
            action = placement.action
            if action.__class__ is SlotAction:
                self.slots[action.slot] = rule.id  # type: ignore[attr-defined]
            elif placement.channel == "in_app":
                self.messages += 1
        added = self.added
        for key, count in fired.added:
            added[key] = added.get(key, 0) + count


_UNKNOWN = object()


def _counted(caps: Sequence[tuple[str, int, int]]) -> tuple[tuple[tuple[str, int, int], int], ...]:
    """Each cap with how many deliveries count towards it.

    Each delivery lists every cap it counts towards, so a cap listed twice
    means two deliveries (two messages of one rule); two different caps on
    one key (1 a day and 1 an hour) are both checked against one delivery.
    """
    if not caps:
        return ()
    if len(caps) == 1:
        return ((caps[0], 1),)
    return tuple(_tally(caps).items())


def _tally(caps: Sequence[tuple[str, int, int]]) -> dict[tuple[str, int, int], int]:
    """How often each cap is listed (a Counter, for the few items a rule has, is slower)."""
    tally: dict[tuple[str, int, int], int] = {}
    for cap in caps:
        tally[cap] = tally.get(cap, 0) + 1
    return tally


# How _consider places an action: decided at load from the action's class.
_ALWAYS = "always"  # tag, set_trait: no channel, always applies
_SLOT = "slot"  # web content in a slot
_FIXED = "fixed"  # message (in_app) or push: one fixed channel
_CHOOSE = "choose"  # notify: the channel is chosen per person


@dataclass(slots=True)
class _Prepared:
    """A rule's arbitration worked out at load, for when every action finds its usual channel."""

    plan: RulePlan
    # (how it is placed, the action, its placement when the channel is fixed, else None)
    actions: tuple[tuple[str, Action, Placement | None], ...]
    own_counts: tuple[tuple[tuple[str, int, int], int], ...]
    placed_all: int  # placements when every action is placed
    full_caps: tuple[tuple[str, int, int], ...] | None  # the caps of that case (None: notify)
    full_counts: tuple[tuple[tuple[str, int, int], int], ...]  # still to check in that case
    full_added: tuple[tuple[str, int], ...]  # deliveries per cap key in that case

    def __init__(self, plan: RulePlan,
                 channel_caps: Mapping[str, tuple[tuple[str, int, int], ...]]) -> None:
        self.plan = plan
        fixed = {SlotAction: (_SLOT, "web"), MessageAction: (_FIXED, "in_app"),
                 PushAction: (_FIXED, "push"), SetTraitAction: (_ALWAYS, None),
                 TagAction: (_ALWAYS, None)}
        actions = []
        for action in plan.rule.actions:
            how, channel = fixed.get(action.__class__, (_CHOOSE, None))
            actions.append((how, action, None if how is _CHOOSE else Placement(action, channel)))
        self.actions = tuple(actions)
        self.own_counts = _counted(plan.caps)
        self.placed_all = len(self.actions)
        self.full_caps = None
        self.full_counts = ()
        self.full_added = ()
        if all(how is not _CHOOSE for how, _, _ in self.actions):
            caps = list(plan.caps)
            for _, _, placement in self.actions:
                if placement.channel is not None:  # type: ignore[union-attr]
                    caps += channel_caps[placement.channel]  # type: ignore[union-attr]
            self.full_caps = tuple(caps)
            counted = _counted(caps)
            # The rule's own caps and each channel's were checked one delivery at a time on
            # the way; together they need checking again only where two deliveries meet.
            self.full_counts = counted if any(n > 1 for _, n in counted) else ()
            self.full_added = tuple(deliveries_per_key(caps).items())


def deliveries_per_key(caps: Sequence[tuple[str, int, int]]) -> dict[str, int]:
    """How many delivery times a fired rule adds under each cap key (see _Room.capped)."""
    found: dict[str, int] = {}
    for (key, _, _), count in _tally(caps).items():
        if count > found.get(key, 0):
            found[key] = count
    return found
