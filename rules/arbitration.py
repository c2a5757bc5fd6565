"""Arbitration: from the rules whose condition holds to what one person gets now.

Candidates are taken in order (priority, then score, then id). Each is checked
for its mutual-exclusion group, consent, schedule, frequency caps, room (a free
slot, the message limit, a reachable channel) and finally its experiment. A
candidate that fails any check gives way to the next; the reason is kept in
the trace that /v1/explain shows. The same inputs always give the same answer.

select() runs per event, over a dozen candidates or so, so each rule gets a step
at load: the checks it needs in their order, constant reasons written once,
its winning placements and caps made up front (most are generated as Python
source, compiled once per ruleset: see _StepWriter). What the answer has used so far
(_Room) keeps whether each channel can take one more delivery until a winner
changes that, so most losers are turned away by a lookup or two.

Pure: the caller passes the person's delivery history, consent, stored
experiment variants and reachable channels, and stores what comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from .definitions import (
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
from .durations import format_duration
from .experiments import CONTROL, variant_for
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
    # Set for the most common rule: web slots, tags and traits only, for personalization,
    # with no cap, experiment, group or schedule. Its placements never change.
    simple: tuple[Placement, ...] | None
    kept_without_slots: int  # how many of `simple` remain when every slot is taken

    @classmethod
    def of(cls, rule: RuleDef, experiment: ExperimentDef | None) -> RulePlan:
        displays = any(isinstance(a, (SlotAction, MessageAction, PushAction, NotifyAction))
                       for a in rule.actions)
        slot_names = [a.slot for a in rule.actions if isinstance(a, SlotAction)]
        only_slots = slot_names and not any(
            isinstance(a, (MessageAction, PushAction, NotifyAction)) for a in rule.actions)
        simple = None
        plain = (not rule.caps and experiment is None and rule.group is None
                 and rule.schedule is None and rule.purpose == "personalization")
        if plain and all(isinstance(a, (SlotAction, SetTraitAction, TagAction))
                         for a in rule.actions):
            first_per_slot: dict[str, Action] = {}
            for action in rule.actions:
                if isinstance(action, SlotAction):
                    first_per_slot.setdefault(action.slot, action)
            simple = tuple(
                Placement(a, "web" if isinstance(a, SlotAction) else None) for a in rule.actions
                if not isinstance(a, SlotAction) or first_per_slot[a.slot] is a)
        return cls(rule, experiment, displays, rule.id,
                   tuple((f"rule:{rule.id}", cap.per_ms, cap.max) for cap in rule.caps),
                   frozenset(slot_names) if only_slots else frozenset(), simple,
                   sum(1 for p in simple or () if p.channel is None))


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
    """A winner. The common ones are made at load and shared between answers, so neither
    this nor its lists are ever changed."""

    plan: RulePlan
    placements: list[Placement]
    variant: str | None
    # caps to check and record atomically when this rule is delivered: (key, window ms, max)
    caps: Sequence[tuple[str, int, int]]
    # Writes the placements' content into an answer (see rules.render.content_writer); set
    # on the winners made at load, None where rules.render goes through the placements.
    write: Callable[..., None] | None = None


@dataclass(slots=True)
class Selection:
    segments: list[str]
    fired: list[Fired] = field(default_factory=list)
    # (experiment, variant, rule) for every exposure and every control-group non-exposure
    exposures: list[tuple[str, str, str]] = field(default_factory=list)
    variants: dict[str, str] = field(default_factory=dict)  # experiment id -> this person's
    new_variants: dict[str, str] = field(default_factory=dict)  # ... the ones to store
    # rule id -> "fired" or the reason it gave way; only candidates appear
    trace: dict[str, str] = field(default_factory=dict)

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


# Makes the content writer of a winner made at load: (rule id, placements) -> writer or None.
WriterFor = Callable[[str, Sequence[Placement]], Callable[..., None] | None]


def _no_writer(rule_id: str, placements: Sequence[Placement]) -> None:
    return None


# Step: one rule's whole arbitration for one answer, made at load (see Arbiter._step). It
# records the outcome in the answer's trace, and a winner in its fired rules and room.
Step = Callable[["_Room"], None]

FIRED = "fired"
EVERY_SLOT_TAKEN = "nothing could be shown: every slot it fills is taken"
NOTHING_SHOWN = "nothing could be shown: "


class Arbiter:
    """Built once per ruleset; select() runs per event."""

    def __init__(self, plans: Sequence[RulePlan], policy: PolicyDef,
                 writer_for: WriterFor = _no_writer) -> None:
        self.plans = plans
        self.policy = policy
        self._writer_for = writer_for
        caps: dict[str, tuple[CapDef, ...]] = dict(policy.caps)
        # channel -> the caps one delivery on it counts towards, as (key, window, max)
        self.channel_caps: dict[str, tuple[tuple[str, int, int], ...]] = {}
        for channel in ("web", "in_app", "push", "email", "sms", "whatsapp"):
            found = [(f"channel:{channel}", c.per_ms, c.max) for c in caps.get(channel, ())]
            if channel != "web":
                found += [(GLOBAL, c.per_ms, c.max) for c in caps.get(GLOBAL, ())]
            self.channel_caps[channel] = tuple(found)
        self._channel_counts = {channel: _counted(found)
                                for channel, found in self.channel_caps.items()}
        # channel -> the cap keys it counts: a winner delivering under one of them changes
        # what the channel allows, a winner under others (its own rule key) does not.
        self._channel_keys = {channel: frozenset(key for key, _, _ in found)
                              for channel, found in self.channel_caps.items()}
        self.web_uncapped = not self.channel_caps["web"]
        self._steps, self.step_source = self._compile_steps(plans)

    def select(self, segments: list[str], candidates: list[tuple[int, float]],
               person: Person) -> Selection:
        """The winners among `candidates`, taken in the order given: arbitration order
        (priority, then score, highest first, then id), as decide() lists them."""
        if not candidates:
            return Selection(segments)
        # Each field given: the default factories cost more than the lists themselves.
        selection = Selection(segments, [], [], {}, {}, {})
        room = _Room(self, person, selection)
        steps = self._steps
        for position, _score in candidates:
            steps[position](room)
        return selection

    def _compile_steps(self, plans: Sequence[RulePlan]) -> tuple[list[Step], str]:
        """Each rule's step, by position, and the source of the generated ones (kept for
        debugging). Every step decides exactly as _consider does for its rule."""
        prepared = [_Prepared(plan, self.channel_caps) for plan in plans]
        writer = _StepWriter(self._channel_keys, self._writer_for)
        names = {position: writer.add(position, found, self._general_step(found))
                 for position, found in enumerate(prepared) if found.fixed}
        source, compiled = writer.compile()
        steps = []
        for position, found in enumerate(prepared):
            step = (compiled[names[position]] if position in names
                    else self._general_step(found))
            if found.plan.simple is not None:
                step = _simple_step(found.plan, step, self._writer_for)
            steps.append(step)
        return steps, source

    def _general_step(self, prepared: _Prepared) -> Step:
        """Any rule, through _consider: for what the other steps leave to it."""
        plan = prepared.plan
        rule_id, experiment = plan.id, plan.experiment

        def step(room: _Room) -> None:
            reason, fired = self._consider(prepared, room)
            room.trace[rule_id] = reason or FIRED
            if fired is not None:
                room.take(fired)
                room.fired.append(fired)
                if fired.variant is not None and experiment is not None:
                    room.selection.expose(experiment.id, fired.variant, rule_id)

        return step

    def _consider(self, prepared: _Prepared, room: _Room) -> tuple[str | None, Fired | None]:
        """Every check, in order, for any rule: why it gives way, or what it fires."""
        plan = prepared.plan
        rule = plan.rule
        person = room.person
        if plan.slots and plan.slots <= room.slots.keys():
            # The common loser: a rule for slots that better rules already filled.
            return EVERY_SLOT_TAKEN, None
        variant = None
        if plan.experiment is not None:
            variant = room.variant(plan.experiment)
            if variant != CONTROL and rule.variant is not None and variant != rule.variant:
                return f"experiment {plan.experiment.id!r} gave this person variant {variant!r}", None
        if rule.group is not None and rule.group in room.groups:
            return f"group {rule.group!r} already has a winner ({room.groups[rule.group]})", None
        if not person.consent.get(rule.purpose, False):
            return f"no consent for {rule.purpose}", None
        if rule.schedule is not None:
            blocked = schedule_block(rule.schedule, person.now_ms, person.weekday, person.minute,
                                     person.date)
            if blocked is not None:
                return f"schedule: {blocked}", None
        if prepared.own_counts:
            capped = room.capped(prepared.own_counts)
            if capped is not None:
                return capped, None
        placements: list[Placement] = []
        reasons: list[str] = []
        slots: set[str] = set()
        messages = 0
        for action, fixed in prepared.actions:
            if fixed is None:  # notify: the channel is chosen per person
                channel, why = self._choose(action, person, room, messages)  # type: ignore[arg-type]
            elif fixed.channel is None:
                placements.append(fixed)  # a tag or a trait: always applies
                continue
            elif fixed.channel == "web" and (action.slot in room.slots or action.slot in slots):  # type: ignore[attr-defined]
                channel, why = None, f"slot {action.slot!r} is taken"  # type: ignore[attr-defined]
            else:
                channel = fixed.channel
                why = room.channel_check(channel, messages)
            if why is not None:
                reasons.append(why)
                continue
            placements.append(fixed if fixed is not None and fixed.channel == channel
                              else Placement(action, channel))
            if action.__class__ is SlotAction:
                slots.add(action.slot)  # type: ignore[attr-defined]
            elif channel == "in_app":
                messages += 1
        if len(placements) == prepared.placed_all and prepared.full_caps is not None:
            # Every action found its fixed channel: the caps were worked out at load.
            caps, counts = prepared.full_caps, prepared.full_counts
        else:
            shown = [p for p in placements if p.channel is not None]
            if plan.displays and not shown:
                return NOTHING_SHOWN + "; ".join(reasons), None
            caps = list(plan.caps)
            for placement in shown:
                caps += self.channel_caps[placement.channel]  # type: ignore[index]
            counts = _counted(caps)
        if counts:
            capped = room.capped(counts)
            if capped is not None:
                return capped, None
        if variant == CONTROL:
            room.selection.expose(plan.experiment.id, CONTROL, rule.id)  # type: ignore[union-attr]
            return f"holdout: control group of experiment {plan.experiment.id!r}", None  # type: ignore[union-attr]
        return None, Fired(plan, placements, variant, caps)

    def _choose(self, action: NotifyAction, person: Person, room: _Room,
                messages: int) -> tuple[str | None, str | None]:
        """The channel for this person: their preference, else where they last engaged, else
        the configured order; skipping channels without consent, address or room."""
        reasons = []
        for channel in channel_preference(action.channels, person, self.policy.channel_order):
            why = room.channel_check(channel, messages)
            if why is None:
                return channel, None
            reasons.append(why)
        return None, "no channel: " + ", ".join(reasons)


def channel_preference(channels: Sequence[str], person: Person,
                       order: Sequence[str]) -> list[str]:
    """The action's channels, most suitable first."""
    ranked = sorted(channels, key=lambda c: order.index(c) if c in order else len(order))
    for favourite in (person.last_channel, person.preferred_channel):
        if favourite in ranked:
            ranked.remove(favourite)  # type: ignore[arg-type]
            ranked.insert(0, favourite)  # type: ignore[arg-type]
    return ranked


def _simple_step(plan: RulePlan, otherwise: Step, writer_for: WriterFor) -> Step:
    """A plain slot, tag and trait rule (RulePlan.simple). Where the person may see
    personalization on the web and web has no cap, only taken slots can stop it;
    elsewhere it goes the way of any rule (`otherwise`)."""
    rule_id, simple, kept = plan.id, plan.simple or (), plan.kept_without_slots
    whole = Fired(plan, list(simple), None, (), writer_for(rule_id, simple))  # nothing taken
    slots = [p.action.slot for p in simple if p.channel is not None]  # type: ignore[union-attr]
    if len(slots) <= 1:
        # The most common rules of all: one slot (with tags or traits, or not), or none.
        slot = slots[0] if slots else None

        def one_slot(room: _Room) -> None:
            if not room.simple_ok:
                otherwise(room)
            elif slot is None:
                room.trace[rule_id] = FIRED
                room.fired.append(whole)
            elif slot in room.slots:
                room.trace[rule_id] = EVERY_SLOT_TAKEN
            else:
                room.slots[slot] = rule_id
                room.trace[rule_id] = FIRED
                room.fired.append(whole)

        return one_slot
    displays = plan.displays

    def step(room: _Room) -> None:
        if not room.simple_ok:
            otherwise(room)
            return
        taken = room.slots
        placements = [p for p in simple if p.channel is None or p.action.slot not in taken]  # type: ignore[union-attr]
        if displays and len(placements) == kept:
            room.trace[rule_id] = EVERY_SLOT_TAKEN
            return
        for placement in placements:
            if placement.channel is not None:
                taken[placement.action.slot] = rule_id  # type: ignore[union-attr]
        room.trace[rule_id] = FIRED
        room.fired.append(whole if len(placements) == len(simple)
                          else Fired(plan, placements, None, ()))

    return step


class _StepWriter:
    """Python source for the steps of rules whose actions all have a fixed channel
    (_Prepared.fixed), compiled once per ruleset.

    Each is _consider written out for one rule: only the checks that rule has, in the
    same order, with its constant reasons as literals; channels asked of the answer's
    cache (_Room.open); the winner's placements and caps made at load, and its room
    taken key by key. A rule that can show some of its actions but not all is rare:
    its step hands over to _consider (`otherwise`). User text (ids, slots, reasons)
    reaches the source only as repr()'d literals; objects only by generated names.
    """

    def __init__(self, channel_keys: Mapping[str, frozenset[str]],
                 writer_for: WriterFor) -> None:
        self.channel_keys = channel_keys
        self.writer_for = writer_for
        self.lines: list[str] = []
        self.namespace: dict[str, object] = {
            "_Fired": Fired, "_schedule_block": schedule_block, "_EVERY_SLOT_TAKEN":
            EVERY_SLOT_TAKEN}

    def const(self, name: str, value: object) -> str:
        self.namespace[name] = value
        return name

    def add(self, position: int, prepared: _Prepared, otherwise: Step) -> str:
        """Writes the step of the rule at `position`; returns the function's name."""
        name = f"step_{position}"
        own = f"_{position}_"  # prefix of this step's objects in the namespace
        plan = prepared.plan
        rule = plan.rule
        rid = repr(plan.id)
        out = [f"def {name}(room):", "    trace = room.trace"]
        # (channel, slot or None) of each action that shows something, in action order
        shows = [(fixed.channel, getattr(action, "slot", None))
                 for action, fixed in prepared.actions if fixed.channel is not None]  # type: ignore[union-attr]
        if plan.slots or any(slot is not None for _, slot in shows):
            out.append("    taken = room.slots")
        out.append("    channels = room.open")

        def lose(reason: str, indent: str = "    ") -> None:
            out.extend([f"{indent}    trace[{rid}] = {reason}", f"{indent}    return"])

        if len(plan.slots) == 1:
            out.append(f"    if {next(iter(plan.slots))!r} in taken:")
            lose("_EVERY_SLOT_TAKEN")
        elif plan.slots:
            out.append(f"    if {self.const(own + 'slots', plan.slots)} <= taken.keys():")
            lose("_EVERY_SLOT_TAKEN")
        experiment = plan.experiment
        if experiment is not None:
            out.append(f"    variant = room.variant({self.const(own + 'experiment', experiment)})")
            if rule.variant is not None:
                out.append(f"    if variant != {CONTROL!r} and variant != {rule.variant!r}:")
                gave = f"experiment {experiment.id!r} gave this person variant "
                lose(f"{gave!r} + repr(variant)")
        if rule.group is not None:
            out.append(f"    winner = room.groups.get({rule.group!r})")
            out.append("    if winner is not None:")
            lose(f"{f'group {rule.group!r} already has a winner ('!r} + winner + ')'")
        out.append(f"    if not room.consent.get({rule.purpose!r}, False):")
        lose(repr(f"no consent for {rule.purpose}"))
        if rule.schedule is not None:
            schedule = self.const(own + "schedule", rule.schedule)
            out += ["    person = room.person",
                    f"    blocked = _schedule_block({schedule}, person.now_ms, person.weekday,"
                    " person.minute, person.date)",
                    "    if blocked is not None:"]
            lose("'schedule: ' + blocked")
        if prepared.own_counts:
            out += [f"    capped = room.capped({self.const(own + 'own', prepared.own_counts)})",
                    "    if capped is not None:"]
            lose("capped")
        whys = [f"why{index}" for index in range(len(shows))]
        in_app_before: list[str] = []  # earlier in-app actions: the message limit counts them
        # A rule's only slot was found free above, and nothing has taken it since.
        checked = next(iter(plan.slots)) if len(plan.slots) == 1 else None
        for why, (channel, slot) in zip(whys, shows, strict=True):
            indent = "    "
            if slot is not None and slot != checked:
                out += [f"    if {slot!r} in taken:", f"        {why} = {f'slot {slot!r} is taken'!r}",
                        "    else:"]
                indent = "        "
            if channel == "in_app" and in_app_before:
                pending = " + ".join(f"(not {earlier})" for earlier in in_app_before)
                out += [f"{indent}pending = {pending}", f"{indent}if pending:",
                        f"{indent}    {why} = room.channel_check('in_app', pending) or ''",
                        f"{indent}else:"]
                indent += "    "
            out += [f"{indent}{why} = channels.get({channel!r})", f"{indent}if {why} is None:",
                    f"{indent}    {why} = room.open_now({channel!r})"]
            if channel == "in_app":
                in_app_before.append(why)
        if shows:
            out.append(f"    if {' or '.join(whys)}:")
            if len(whys) > 1:
                out.append(f"        if {' and '.join(whys)}:")
                joined = " + '; ' + ".join(whys)
                lose(f"{NOTHING_SHOWN!r} + {joined}", "        ")
                out.append(f"        return {self.const(own + 'otherwise', otherwise)}(room)")
            else:
                lose(f"{NOTHING_SHOWN!r} + {whys[0]}")
        if prepared.full_counts:
            out += [f"    capped = room.capped({self.const(own + 'full', prepared.full_counts)})",
                    "    if capped is not None:"]
            lose("capped")
        if experiment is not None:
            out.append(f"    if variant == {CONTROL!r}:")
            out.append(f"        room.selection.expose({experiment.id!r}, {CONTROL!r}, {rid})")
            lose(repr(f"holdout: control group of experiment {experiment.id!r}"))
        out += self._take(prepared, own, rid)
        self.lines += out + [""]
        return name

    def _take(self, prepared: _Prepared, own: str, rid: str) -> list[str]:
        """A winner's lines: its room, its caps' counts, the channels that changes, and
        the Fired (made at load, unless the experiment's variant goes in it)."""
        plan = prepared.plan
        placements = [fixed for _, fixed in prepared.actions]
        out = []
        if plan.rule.group is not None:
            out.append(f"    room.groups[{plan.rule.group!r}] = {rid}")
        messages = 0
        for placement in placements:
            if placement.channel == "web":  # type: ignore[union-attr]
                out.append(f"    taken[{placement.action.slot!r}] = {rid}")  # type: ignore[union-attr]
            elif placement.channel == "in_app":  # type: ignore[union-attr]
                messages += 1
        if messages:
            out.append(f"    room.messages += {messages}")
        if prepared.full_per_key:
            out.append("    added = room.added")
        for key, count in prepared.full_per_key:
            out.append(f"    added[{key!r}] = added.get({key!r}, 0) + {count}")
        # A win changes what a channel allows by its messages (in_app) and its cap keys.
        for channel, keys in self.channel_keys.items():
            if (channel == "in_app" and messages) or any(
                    key in keys for key, _ in prepared.full_per_key):
                out.append(f"    channels[{channel!r}] = None")
        out.append(f"    trace[{rid}] = {FIRED!r}")
        caps = self.const(own + "caps", prepared.full_caps)
        write = self.writer_for(plan.id, placements)  # type: ignore[arg-type]
        if plan.experiment is None:
            whole = Fired(plan, placements, None, prepared.full_caps, write)  # type: ignore[arg-type]
            out.append(f"    room.fired.append({self.const(own + 'fired', whole)})")
        else:
            out += [f"    room.fired.append(_Fired({self.const(own + 'plan', plan)}, "
                    f"{self.const(own + 'placements', placements)}, variant, {caps}, "
                    f"{self.const(own + 'write', write)}))",
                    f"    room.selection.expose({plan.experiment.id!r}, variant, {rid})"]
        return out

    def compile(self) -> tuple[str, dict[str, Step]]:
        """The source, and its steps by name."""
        source = "\n".join(self.lines)
        namespace = dict(self.namespace)
        exec(compile(source, "<arbitration steps>", "exec"), namespace)  # noqa: S102 - generated, see above
        return source, namespace  # type: ignore[return-value]


class _Room:
    """What this answer has used so far: slots, messages, groups and cap counts; and what
    the steps read of it, kept at hand."""

    __slots__ = ("arbiter", "person", "consent", "selection", "trace", "fired", "slots",
                 "groups", "messages", "added", "open", "simple_ok", "_stored", "_closed")

    def __init__(self, arbiter: Arbiter, person: Person, selection: Selection) -> None:
        self.arbiter = arbiter
        self.person = person
        self.consent = consent = person.consent
        self.selection = selection
        self.trace = selection.trace
        self.fired = selection.fired
        self.slots: dict[str, str] = {}
        self.groups: dict[str, str] = {}
        self.messages = 0
        self.added: dict[str, int] = {}  # cap key -> deliveries in this answer
        # channel -> why it cannot take one more delivery now ("": it can; None or missing:
        # ask channel_check). Only a winner changes that (messages, cap counts), so winners
        # forget the channels they change; most losers are turned away by one lookup here.
        self.open: dict[str, str | None] = {}
        # Plain slot rules need only free slots (see _simple_step).
        self.simple_ok = bool(arbiter.web_uncapped and consent.get("personalization")
                              and consent.get("web") and "web" in person.reachable)
        # What does not change within one answer, worked out on first use:
        self._stored: dict[tuple[str, int, int], int] = {}  # cap -> deliveries stored within
        self._closed: dict[str, str | None] = {}  # channel -> why it cannot be used, or None

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

    def capped(self, counts: Sequence[tuple[tuple[str, int, int], int]]) -> str | None:
        """Why these deliveries would break a cap; `counts` as made by `_counted`."""
        stored, added = self._stored, self.added
        for cap, pending in counts:
            key, per_ms, most = cap
            before = stored.get(cap)
            if before is None:
                before = stored[cap] = self._stored_within(key, per_ms)
            if before + added.get(key, 0) + pending > most:
                return f"cap {key}: {most} per {_duration(per_ms)} reached"
        return None

    def _stored_within(self, key: str, per_ms: int) -> int:
        """Deliveries under this key in the person's history younger than the window."""
        times = self.person.deliveries.get(key)
        if not times:
            return 0  # most keys, for most people
        since = self.person.now_ms - per_ms
        return len([t for t in times if t > since])

    def _closed_reason(self, channel: str) -> str | None:
        person = self.person
        if not person.consent.get(channel, False):
            return f"no consent for {channel}"
        if channel not in person.reachable:
            return f"no address for {channel}"
        quiet = self.arbiter.policy.quiet
        if channel in INTERRUPTING and quiet is not None and in_range(person.minute, quiet):
            return f"quiet hours for {channel}"
        return None

    def channel_check(self, channel: str, pending_messages: int) -> str | None:
        """Why this channel cannot take one more delivery of a rule that already placed
        `pending_messages` in-app messages; None when it can."""
        closed = self._closed.get(channel, _UNKNOWN)
        if closed is _UNKNOWN:
            closed = self._closed[channel] = self._closed_reason(channel)
        if closed is not None:
            return closed  # type: ignore[return-value]
        most = self.arbiter.policy.max_messages
        if channel == "in_app" and self.messages + pending_messages >= most:
            return f"message limit ({most}) reached"
        counts = self.arbiter._channel_counts[channel]
        if counts:
            return self.capped(counts)
        return None

    def open_now(self, channel: str) -> str:
        """channel_check for a rule's first message, kept in `open` until a winner."""
        why = self.open[channel] = self.channel_check(channel, 0) or ""
        return why

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
        for key, count in deliveries_per_key(fired.caps).items():
            added[key] = added.get(key, 0) + count
        self.open.clear()


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


@dataclass(slots=True)
class _Prepared:
    """A rule's arbitration worked out at load, for when every action finds its usual channel."""

    plan: RulePlan
    # (action, its placement when the channel is fixed: None for notify, which chooses)
    actions: tuple[tuple[Action, Placement | None], ...]
    own_counts: tuple[tuple[tuple[str, int, int], int], ...]
    placed_all: int  # placements when every action is placed
    full_caps: tuple[tuple[str, int, int], ...] | None  # the caps of that case (None: notify)
    full_counts: tuple[tuple[tuple[str, int, int], int], ...]  # still to check in that case
    full_per_key: tuple[tuple[str, int], ...]
    # No notify and no slot twice: each action's channel is known, and the slots it
    # fills are the room's (see _StepWriter).
    fixed: bool

    def __init__(self, plan: RulePlan,
                 channel_caps: Mapping[str, tuple[tuple[str, int, int], ...]]) -> None:
        self.plan = plan
        fixed = {SlotAction: "web", MessageAction: "in_app", PushAction: "push",
                 SetTraitAction: None, TagAction: None}
        self.actions = tuple(
            (a, Placement(a, fixed[a.__class__]) if a.__class__ in fixed else None)
            for a in plan.rule.actions)
        self.own_counts = _counted(plan.caps)
        self.placed_all = len(self.actions)
        self.full_caps = None
        self.full_counts = self.full_per_key = ()
        self.fixed = False
        if all(placement is not None for _, placement in self.actions):
            caps = list(plan.caps)
            for _, placement in self.actions:
                if placement.channel is not None:  # type: ignore[union-attr]
                    caps += channel_caps[placement.channel]  # type: ignore[union-attr]
            self.full_caps = tuple(caps)
            counted = _counted(caps)
            # The rule's own caps and each channel's were checked one delivery at a time on
            # the way; together they need checking again only where two deliveries meet.
            self.full_counts = counted if any(n > 1 for _, n in counted) else ()
            self.full_per_key = tuple(deliveries_per_key(caps).items())
            slots = [a.slot for a in plan.rule.actions if isinstance(a, SlotAction)]
            self.fixed = len(set(slots)) == len(slots)


def deliveries_per_key(caps: Sequence[tuple[str, int, int]]) -> dict[str, int]:
    """How many delivery times a fired rule adds under each cap key (see _Room.capped)."""
    found: dict[str, int] = {}
    for (key, _, _), count in _tally(caps).items():
        if count > found.get(key, 0):
            found[key] = count
    return found


@lru_cache(maxsize=256)  # a handful of windows, formatted for every capped candidate
def _duration(ms: int) -> str:
    return format_duration(ms)
