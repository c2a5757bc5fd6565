"""Invariants of journeys under random interleavings of events, clock advances and crashes.

The worker's commit is modelled as the store makes it (edge/store/effects.lua and
edge/worker/runner.py): a change applies only once per stimulus, its sends are kept
with their idempotency keys, and timers are written after the commit, so a crash
can lose them (then the next stimulus re-arms every live run's timer) or lose the
whole commit (then the stimulus comes again). Whatever the interleaving: no send
after an exit or a goal, no step sent twice, no live run without a timer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings, strategies as st

from rules.arbitration import Person, SendChecks
from rules.definitions import PolicyDef
from rules.journey_schema import read_journeys
from rules.journeys import GOAL, EXITED, Change, Facts, JourneyBook, PersonJourneys, SendEffect

JOURNEYS = """
id: cart
entry: { on: Product Added }
reentry: always
goal: { on: Order Completed, within: 3d }
exit: [{ when: '"unsubscribed" in profile.tags' }]
steps:
  - { id: wait, wait: 1h }
  - { id: has-cart, if: 'cart.value > 0', else: end }
  - { id: first, send: { channel: email, body: "one" } }
  - { id: pause, wait: 1d }
  - { id: second, send: { channel: email, body: "two" } }
---
id: welcome
entry: { on: Signed Up }
exit: [{ on: Unsubscribed }]
steps:
  - { id: hello, send: { channel: email, body: "hello" } }
  - id: order
    wait_for: { on: Order Completed }
    timeout: 2d
    on_timeout: nudge
  - { id: thanks, send: { channel: email, body: "thanks" } }
  - { id: done, exit: true }
  - { id: nudge, wait_until: { time: "09:00" } }
  - { id: nudge-send, send: { channel: email, body: "nudge" } }
"""
BOOK = JourneyBook(read_journeys([("j.yaml", JOURNEYS)])[0])
CHECKS = SendChecks(PolicyDef(quiet=(22 * 60, 7 * 60)))
EVENTS = ["Product Added", "Order Completed", "Signed Up", "Unsubscribed", "Page Viewed"]
MINUTE, HOUR = 60_000, 3_600_000


@dataclass
class Model:
    """The stored state of one person, as the commit leaves it."""

    now: int = 1_767_225_600_000
    state: PersonJourneys = field(default_factory=PersonJourneys)
    applied: set[str] = field(default_factory=set)
    timers: dict[str, int] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    cart: float = 0.0
    sends: list[SendEffect] = field(default_factory=list)
    sent_in: dict[str, int] = field(default_factory=dict)  # send key -> the commit it came in
    ended: dict[str, tuple[str, int]] = field(default_factory=dict)  # run id -> (ending, commit)
    commits: int = 0
    events: int = 0

    def facts(self) -> Facts:
        minute = (self.now // MINUTE) % 1440
        person = Person("p", self.now, "mon", minute, {"marketing": True, "email": True}, {}, {},
                        frozenset({"email"}))
        profile = {"id": "p", "traits": {}, "tags": list(self.tags), "segments": [],
                   "cart": {"value": self.cart}}
        return Facts(profile, person, "UTC", CHECKS)

    def commit(self, stimulus: str, change: Change, timers_lost: bool) -> None:
        if stimulus in self.applied or not change:
            self.rearm()
            return
        self.applied.add(stimulus)
        self.commits += 1
        for name, run in change.runs.items():
            assert run.id not in self.ended, "an ended run changed again"
            if run.ended:
                self.state.runs.pop(name, None)
                self.ended[run.id] = (run.ended, self.commits)
            else:
                self.state.runs[name] = run
        self.state.entries.update(change.entries)
        for effect in change.effects:
            if isinstance(effect, SendEffect):
                self.sends.append(effect)
                self.sent_in[effect.key] = self.commits
        if not timers_lost:
            self.rearm()

    def rearm(self) -> None:
        self.timers = {name: run.wake_at for name, run in self.state.runs.items()}


def event(name: str) -> dict:
    return {"type": "track", "event": name, "properties": {}}


actions = st.lists(st.one_of(
    st.tuples(st.just("event"), st.sampled_from(EVENTS), st.booleans(), st.booleans()),
    st.tuples(st.just("advance"), st.integers(1, 30 * HOUR), st.booleans(), st.booleans()),
), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(actions)
def test_no_send_after_an_end_no_step_twice_no_run_without_a_timer(steps):
    model = Model()
    for kind, value, crash_before, lose_timers in steps:
        if kind == "event":
            model.events += 1
            stimulus = f"e:{model.events}"
            if value == "Unsubscribed":
                model.tags = [*model.tags, "unsubscribed"]
            elif value == "Product Added":
                model.cart = 20.0
            elif value == "Order Completed":
                model.cart = 0.0

            def compute(v=value):
                return BOOK.on_event(model.state, event(v), model.facts(), model.now)
            if crash_before:  # the worker died before its commit: the event comes again
                compute()
            model.commit(stimulus, compute(), lose_timers)
            model.commit(stimulus, compute(), False)  # and a redelivery after the commit
        else:
            target = model.now + value
            while True:  # due timers in due order, as the claim hands them out
                due = sorted((at, name) for name, at in model.timers.items() if at <= target)
                if not due:
                    break
                at, name = due[0]
                model.now = max(model.now, at)
                run = model.state.runs.get(name)
                if run is None:
                    model.timers.pop(name)
                    continue
                stimulus = f"t:{name}:{run.seq}:{run.attempt}"
                if crash_before:
                    BOOK.on_timer(model.state, name, model.facts(), model.now)
                change = BOOK.on_timer(model.state, name, model.facts(), model.now)
                model.commit(stimulus, change, False)
                if not change:
                    model.timers.pop(name, None)  # an early or stale timer is released
            model.now = target
    keys = [send.key for send in model.sends]
    assert len(keys) == len(set(keys)), "an idempotency key was committed twice"
    per_step = [(send.run, send.step) for send in model.sends]
    assert len(per_step) == len(set(per_step)), "a step of a run was sent twice"
    # a send comes in a commit before the one that ended its run by an exit or a goal
    # (a step that exits or reaches the goal ends the run in the same commit, after it)
    for send in model.sends:
        ending = model.ended.get(send.run)
        if ending is not None and ending[0] in (EXITED, GOAL):
            assert model.sent_in[send.key] <= ending[1]
            if model.sent_in[send.key] == ending[1]:
                assert send.step in ("thanks",), f"{send.step} sent in the commit that ended its run"
    # the exit condition held from the unsubscribe on: nothing was sent to her after it
    if "unsubscribed" in model.tags:
        assert all(run.journey != "cart" for run in model.state.runs.values())
    # no live run without a wake-up, and after re-arming, each one has its timer
    model.rearm()
    for name, run in model.state.runs.items():
        assert run.ended is None and run.wake_at is not None
        assert model.timers[name] == run.wake_at
