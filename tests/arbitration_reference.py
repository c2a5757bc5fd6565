"""Arbitration read straight from its definition, to check rules.arbitration against.

rules.arbitration works out at load what does not depend on the person (each
rule's placements on fixed channels, its caps and their counts) and keeps per
answer what does not change within it (deliveries stored under a cap, closed
channels). This module is the same decision written plainly, candidate by
candidate and check by check, with none of that; tests/test_arbitration_reference.py
asserts both always agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rules.arbitration import (
    GLOBAL,
    INTERRUPTING,
    Fired,
    Person,
    Placement,
    RulePlan,
    Selection,
    channel_preference,
    deliveries_per_key,
)
from rules.definitions import (
    Action,
    CapDef,
    ExperimentDef,
    MessageAction,
    NotifyAction,
    PolicyDef,
    PushAction,
    SetTraitAction,
    SlotAction,
    TagAction,
)
from rules.experiments import CONTROL, variant_for
from rules.outcomes import Kind, Outcome
from rules.schedule import in_range, schedule_block


class ReferenceArbiter:
    """The rules of arbitration written plainly, without the shortcuts."""

    def __init__(self, plans: Sequence[RulePlan], policy: PolicyDef) -> None:
        self.plans = plans
        self.policy = policy
        caps: dict[str, tuple[CapDef, ...]] = dict(policy.caps)
        # channel -> the caps one delivery on it counts towards, as (key, window, max)
        self.channel_caps: dict[str, tuple[tuple[str, int, int], ...]] = {}
        for channel in ("web", "in_app", "push", "email", "sms", "whatsapp"):
            found = [(f"channel:{channel}", c.per_ms, c.max) for c in caps.get(channel, ())]
            if channel != "web":
                found += [(GLOBAL, c.per_ms, c.max) for c in caps.get(GLOBAL, ())]
            self.channel_caps[channel] = tuple(found)
        self.scored = any(plan.rule.score is not None for plan in plans)

    def order(self, candidates: list[tuple[int, float]]) -> list[tuple[int, float]]:
        plans = self.plans
        return sorted(candidates, key=lambda c: (-plans[c[0]].rule.priority, -c[1], plans[c[0]].id))

    def select(self, segments: list[str], candidates: list[tuple[int, float]],
               person: Person) -> Selection:
        selection = Selection(segments)
        if not candidates:
            return selection
        room = _Room(self, person)
        plans, trace, fired_rules = self.plans, selection.trace, selection.fired
        for position, _score in self.order(candidates):
            plan = plans[position]
            reason, fired = self._consider(plan, person, room, selection)
            trace[plan.id] = reason or Outcome(Kind.FIRED)
            if fired is not None:
                room.take(fired)
                fired_rules.append(fired)
                if fired.variant is not None and plan.experiment is not None:
                    selection.expose(plan.experiment.id, fired.variant, plan.id)
        return selection

    def _consider(self, plan: RulePlan, person: Person, room: _Room,
                  selection: Selection) -> tuple[Outcome | None, Fired | None]:
        rule = plan.rule
        if plan.slots and plan.slots <= room.slots.keys():
            # The common loser: a rule for slots that better rules already filled.
            return Outcome(Kind.SLOTS_TAKEN), None
        variant = None
        if plan.experiment is not None:
            variant = self._variant(plan.experiment, person, selection)
            if variant != CONTROL and rule.variant is not None and variant != rule.variant:
                return Outcome(Kind.VARIANT, experiment=plan.experiment.id, variant=variant), None
        if rule.group is not None and rule.group in room.groups:
            return Outcome(Kind.GROUP, group=rule.group, winner=room.groups[rule.group]), None
        if not person.consent.get(rule.purpose, False):
            return Outcome(Kind.CONSENT, purpose=rule.purpose), None
        blocked = schedule_block(rule.schedule, person.now_ms, person.weekday, person.minute,
                                 person.date)
        if blocked is not None:
            return Outcome(Kind.SCHEDULE, schedule=blocked), None
        caps = list(plan.caps)
        if caps:
            capped = room.capped(caps)
            if capped is not None:
                return capped, None
        placements: list[Placement] = []
        reasons: list[Outcome] = []
        slots: set[str] = set()
        messages = 0
        for action in rule.actions:
            channel, why = self._place(action, person, room, slots, messages)
            if why is not None:
                reasons.append(why)
                continue
            placements.append(Placement(action, channel))
            if isinstance(action, SlotAction):
                slots.add(action.slot)
            elif channel == "in_app":
                messages += 1
        shown = [p for p in placements if p.channel is not None]
        if plan.displays and not shown:
            return Outcome(Kind.NOTHING_SHOWN, reasons=tuple(reasons)), None
        for placement in shown:
            caps += self.channel_caps[placement.channel]  # type: ignore[index]
        if caps:
            capped = room.capped(caps)
            if capped is not None:
                return capped, None
        if variant == CONTROL:
            selection.expose(plan.experiment.id, CONTROL, rule.id)  # type: ignore[union-attr]
            return Outcome(Kind.HOLDOUT, experiment=plan.experiment.id), None  # type: ignore[union-attr]
        return None, Fired(plan, placements, variant, caps)

    def _variant(self, experiment: ExperimentDef, person: Person, selection: Selection) -> str:
        variant = selection.variants.get(experiment.id)
        if variant is None:
            stored = person.variants.get(experiment.id)
            variant = variant_for(experiment, person.profile_id, stored)
            selection.variants[experiment.id] = variant
            if variant != stored:
                selection.new_variants[experiment.id] = variant
        return variant

    def _place(self, action: Action, person: Person, room: _Room, slots: set[str],
               messages: int) -> tuple[str | None, Outcome | None]:
        """(channel, None) when the action fits, (None, reason) when it does not."""
        if isinstance(action, (SetTraitAction, TagAction)):
            return None, None
        if isinstance(action, SlotAction):
            if action.slot in room.slots or action.slot in slots:
                return None, Outcome(Kind.SLOT_TAKEN, slot=action.slot)
            return room.channel_check("web", person, messages)
        if isinstance(action, MessageAction):
            return room.channel_check("in_app", person, messages)
        if isinstance(action, PushAction):
            return room.channel_check("push", person, messages)
        return self._choose(action, person, room, messages)  # type: ignore[arg-type]

    def _choose(self, action: NotifyAction, person: Person, room: _Room,
                messages: int) -> tuple[str | None, Outcome | None]:
        """The channel for this person: their preference, else where they last engaged, else
        the configured order; skipping channels without consent, address or room."""
        reasons = []
        for channel in channel_preference(action.channels, person, self.policy.channel_order):
            chosen, why = room.channel_check(channel, person, messages)
            if why is None:
                return chosen, None
            reasons.append(why)
        return None, Outcome(Kind.NO_CHANNEL, reasons=tuple(reasons))


class _Room:
    """What this answer has used so far: slots, messages, groups and cap counts."""

    def __init__(self, arbiter: ReferenceArbiter, person: Person) -> None:
        self.arbiter = arbiter
        self.person = person
        self.slots: dict[str, str] = {}
        self.groups: dict[str, str] = {}
        self.messages = 0
        self.added: dict[str, int] = {}  # cap key -> deliveries in this answer

    def used(self, key: str, per_ms: int) -> int:
        since = self.person.now_ms - per_ms
        stored = sum(1 for t in self.person.deliveries.get(key, ()) if t > since)
        return stored + self.added.get(key, 0)

    def capped(self, constraints: Sequence[tuple[str, int, int]]) -> Outcome | None:
        """Why these deliveries would break a cap.

        Each delivery lists every cap it counts towards, so a cap listed twice
        means two deliveries (two messages of one rule); two different caps on
        one key (1 a day and 1 an hour) are both checked against one delivery.
        """
        if not constraints:
            return None
        if len(constraints) == 1:
            key, per_ms, most = constraints[0]
            if self.used(key, per_ms) + 1 > most:
                return Outcome(Kind.CAP, cap=key, per_ms=per_ms, most=most)
            return None
        for (key, per_ms, most), pending in Counter(constraints).items():
            if self.used(key, per_ms) + pending > most:
                return Outcome(Kind.CAP, cap=key, per_ms=per_ms, most=most)
        return None

    def channel_check(self, channel: str, person: Person,
                      pending_messages: int) -> tuple[str | None, Outcome | None]:
        if not person.consent.get(channel, False):
            return None, Outcome(Kind.CONSENT, channel=channel)
        if channel not in person.reachable:
            return None, Outcome(Kind.NO_ADDRESS, channel=channel)
        if channel == "in_app" and self.messages + pending_messages >= self.arbiter.policy.max_messages:
            return None, Outcome(Kind.MESSAGE_LIMIT, most=self.arbiter.policy.max_messages)
        quiet = self.arbiter.policy.quiet
        if channel in INTERRUPTING and quiet is not None and in_range(person.minute, quiet):
            return None, Outcome(Kind.QUIET_HOURS, channel=channel)
        capped = self.capped(self.arbiter.channel_caps[channel])
        if capped is not None:
            return None, capped
        return channel, None

    def take(self, fired: Fired) -> None:
        rule = fired.plan.rule
        if rule.group is not None:
            self.groups[rule.group] = rule.id
        for placement in fired.placements:
            if isinstance(placement.action, SlotAction):
                self.slots[placement.action.slot] = rule.id
            elif placement.channel == "in_app":
                self.messages += 1
        for key, count in deliveries_per_key(fired.caps).items():
            self.added[key] = self.added.get(key, 0) + count
