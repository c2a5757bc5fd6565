"""The journey state machine on its own (rules/journeys.py) and how journey files are
checked: late steps, versions, splits, local-time waits, re-entry, concurrency."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from rules.arbitration import Person, SendChecks
from rules.definitions import PolicyDef
from rules.journey_schema import read_journeys
from rules.journeys import (SKIPPED_LATE, Facts, JourneyBook, PersonJourneys, SendEffect,
                            migrated, wait_until)

HOUR = 3_600_000
DAY = 24 * HOUR
T0 = int(datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc).timestamp() * 1000)  # a Monday


def journey(text: str):
    found, problems = read_journeys([("j.yaml", text)])
    assert problems == [] and len(found) == 1, problems
    return found[0]


def facts(now: int, profile_id: str = "anon:1", zone: str = "UTC", **profile) -> Facts:
    local = datetime.fromtimestamp(now / 1000, timezone.utc)
    person = Person(profile_id, now, "mon", local.hour * 60 + local.minute,
                    {"marketing": True, "email": True}, {}, {}, frozenset({"email"}))
    return Facts({"id": profile_id, "traits": {}, "tags": [], "segments": [], **profile},
                 person, zone, SendChecks(PolicyDef()))


def run_through(book: JourneyBook, event: dict, times: list[int], profile_id: str = "anon:1"):
    state = PersonJourneys()
    change = book.on_event(state, event, facts(T0, profile_id), T0)
    state.runs.update(change.runs)
    state.entries.update(change.entries)
    effects, records = list(change.effects), list(change.records)
    for now in times:
        for name in list(state.runs):
            change = book.on_timer(state, name, facts(now, profile_id), now)
            for key, run in change.runs.items():
                if run.ended:
                    state.runs.pop(key, None)
                else:
                    state.runs[key] = run
            effects += change.effects
            records += change.records
    return state, effects, records


LATE = """
id: late
entry: { on: Signed Up }
steps:
  - { id: wait, wait: 1h }
  - { id: hello, send: { channel: email, body: hi }, late: 30m }
"""


def test_a_step_reached_too_late_is_skipped_and_the_skip_recorded():
    book = JourneyBook([journey(LATE)])
    _, effects, records = run_through(book, {"type": "track", "event": "Signed Up"}, [T0 + HOUR + 31 * 60_000])
    assert effects == []
    assert [(r.step, r.outcome, r.reason) for r in records if r.outcome == SKIPPED_LATE] == [
        ("hello", "skipped_late", "1860s late")]
    _, effects, _ = run_through(book, {"type": "track", "event": "Signed Up"}, [T0 + HOUR + 29 * 60_000])
    assert [e.body for e in effects if isinstance(e, SendEffect)] == ["hi"]


def test_a_new_version_migrates_runs_only_when_it_says_so():
    old = journey("id: j\nentry: {on: A}\nsteps:\n  - {id: w, wait: 1h}\n  - {id: s, send: {channel: email, body: old}}\n")
    same = journey("id: j\nentry: {on: A}\nmigrate: same_steps\nsteps:\n  - {id: w, wait: 2h}\n  - {id: s, send: {channel: email, body: new}}\n")
    mapped = journey("id: j\nentry: {on: A}\nmigrate: {w: w2}\nsteps:\n  - {id: w2, wait: 1h}\n  - {id: s2, send: {channel: email, body: new}}\n")
    silent = journey("id: j\nentry: {on: A}\nsteps:\n  - {id: w, wait: 3h}\n")
    state = PersonJourneys()
    run = next(iter(JourneyBook([old]).on_event(state, {"type": "track", "event": "A"}, facts(T0), T0).runs.values()))
    assert migrated(run, same).step == "w" and migrated(run, same).version == same.version
    assert migrated(run, mapped).step == "w2"
    assert migrated(run, silent) is None  # finishes the version it entered
    # the book keeps the old version for it, and the run's send is the old one's
    book = JourneyBook([silent], older=[old])
    state.runs["j\x1f-"] = run
    change = book.on_timer(state, "j\x1f-", facts(T0 + HOUR), T0 + HOUR)
    assert [e.body for e in change.effects] == ["old"]


SPLIT = """
id: split
entry: { on: A }
steps:
  - { id: arms, split: { a: 45, b: 45 }, holdout: 10, paths: { b: send-b } }
  - { id: send-a, send: { channel: email, body: a } }
  - { id: stop, exit: true }
  - { id: send-b, send: { channel: email, body: b } }
"""


def test_a_split_is_deterministic_per_person_and_keeps_a_holdout_out():
    book = JourneyBook([journey(SPLIT)])
    arms: dict[str, int] = {}
    for n in range(2000):
        who = f"anon:{n}"
        runs = [book.on_event(PersonJourneys(), {"type": "track", "event": "A"}, facts(T0, who), T0)
                for _ in range(2)]
        first, again = ([e.body for e in c.effects] for c in runs)
        assert first == again  # the same person, the same arm
        arm = first[0] if first else "holdout"
        arms[arm] = arms.get(arm, 0) + 1
    assert set(arms) == {"a", "b", "holdout"}
    assert 140 <= arms["holdout"] <= 260 and 800 <= arms["a"] <= 1000


@pytest.mark.parametrize("step, zone, now, expected", [
    ('{time: "09:00"}', "Europe/Prague", "2026-03-02T07:00:00", "2026-03-02T08:00:00"),
    ('{time: "09:00"}', "Europe/Prague", "2026-03-02T08:30:00", "2026-03-03T08:00:00"),
    ('{time: "09:00", days: [sat]}', "Europe/Prague", "2026-03-02T07:00:00", "2026-03-07T08:00:00"),
    ('{time: "09:00"}', "America/New_York", "2026-03-08T10:00:00", "2026-03-08T13:00:00"),  # DST day
    ("best_send_hour", "UTC", "2026-03-02T07:00:00", "2026-03-02T18:00:00"),
    ('{date: traits.renewal, offset: -7d, time: "10:00"}', "UTC", "2026-03-02T07:00:00", "2026-04-03T10:00:00"),
])
def test_waits_until_a_local_time_weekday_best_hour_or_profile_date(step, zone, now, expected):
    found = journey(f"id: j\nentry: {{on: A}}\nsteps:\n  - {{id: w, wait_until: {step}}}\n")

    def ms(text: str) -> int:
        return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)
    person = facts(ms(now), zone=zone, best_send_hour=18, traits={"renewal": "2026-04-10"})
    assert wait_until(found.steps[0], ms(now), person) == ms(expected)


@pytest.mark.parametrize("moment, offset, expected", [
    ("2026-03-05T18:00:00+01:00", "-1d", "2026-03-04T17:00:00"),
    ("2026-03-05T17:00:00Z", "-1h", "2026-03-05T16:00:00"),
    (1772730000000, "2h", "2026-03-05T19:00:00"),         # epoch ms: 17:00 UTC
    ("2026-03-05T18:00:00", "-1h", "2026-03-02T07:00:00"),  # no offset: no moment, at once
    ("soon", "-1h", "2026-03-02T07:00:00"),
    (None, "-1h", "2026-03-02T07:00:00"),
    ("2026-03-01T18:00:00+01:00", "1h", "2026-03-02T07:00:00"),  # passed: at once
])
def test_waits_until_a_moment_of_the_entry_event(moment, offset, expected):
    found = journey("id: j\nentry: {on: A}\nsteps:\n"
                    f"  - {{id: w, wait_until: {{at: event.properties.starts_at, offset: {offset}}}}}\n")

    def ms(text: str) -> int:
        return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)
    now = ms("2026-03-02T07:00:00")
    event = {"properties": {"starts_at": moment}}
    assert wait_until(found.steps[0], now, facts(now), event) == ms(expected)


def test_a_run_per_key_hears_only_the_events_of_its_key():
    text = ("id: j\nentry: {on: Registered}\nrun_key: event.properties.event_id\nmax_runs: 3\n"
            "reentry: always\nexit:\n  - on: Cancelled\nsteps:\n  - {id: w, wait: 30d}\n")
    book = JourneyBook([journey(text)])
    state = PersonJourneys()
    for event_id in ("e-1", "e-2"):
        change = book.on_event(state, {"type": "track", "event": "Registered",
                                       "properties": {"event_id": event_id}}, facts(T0), T0)
        state.runs.update(change.runs)
        state.entries.update(change.entries)
    cancel = book.on_event(state, {"type": "track", "event": "Cancelled",
                                   "properties": {"event_id": "e-2"}}, facts(T0), T0)
    assert [run.key for run in cancel.runs.values() if run.ended] == ["e-2"]
    everything = book.on_event(state, {"type": "track", "event": "Cancelled"}, facts(T0), T0)
    assert sorted(run.key for run in everything.runs.values() if run.ended) == ["e-1", "e-2"]


def test_reentry_after_a_while_and_at_most_n_runs_at_once():
    text = ("id: j\nentry: {on: A}\nrun_key: event.properties.cart\nreentry: 1d\nmax_runs: 2\n"
            "steps:\n  - {id: w, wait: 30d}\n")
    book = JourneyBook([journey(text)])
    state = PersonJourneys()
    for cart, now, started in [("c1", T0, True), ("c1", T0 + 1, False),   # that cart's run is live
                               ("c2", T0 + DAY, True), ("c3", T0 + 2 * DAY, False),  # two at once
                               ]:
        change = book.on_event(state, {"type": "track", "event": "A", "properties": {"cart": cart}},
                               facts(now), now)
        assert bool(change.runs) is started, (cart, now)
        state.runs.update(change.runs)
        state.entries.update(change.entries)
    never = JourneyBook([journey("id: k\nentry: {on: A}\nsteps:\n  - {id: s, send: {channel: email, body: x}}\n")])
    state = PersonJourneys()
    first = never.on_event(state, {"type": "track", "event": "A"}, facts(T0), T0)
    state.entries.update(first.entries)
    assert first.effects and not never.on_event(state, {"type": "track", "event": "A"}, facts(T0 + DAY), T0 + DAY).runs


@pytest.mark.parametrize("text, expected", [
    ("id: j\nentry: {on: A}\nsteps:\n  - {id: w, wait: soon}\n", "j.yaml:4:19: wait must be a duration"),
    ("id: j\nentry: {on: A}\nsteps:\n  - {id: w, goto: nowhere}\n", "j.yaml:4:5: step 'w' goes to unknown step 'nowhere'"),
    ("id: j\nentry: {on: A, when: 'cart.value >'}\nsteps:\n  - {id: w, wait: 1h}\n", "j.yaml:2:35: when:"),
    ("id: j\nentry: {date: birthdy}\nsteps:\n  - {id: w, wait: 1h}\n", "j.yaml:2:15: date must be one of: birthday, signup, name_day, trait (did you mean 'birthday'?)"),
    ("id: j\nentry: {on: A}\nsteps:\n  - {id: w, wait_for: {on: B}}\n", "j.yaml:4:23: wait_for needs a timeout"),
    ("id: j\nentry: {on: A}\nsteps:\n  - {id: s, split: {a: 50, b: 40}}\n", "j.yaml:4:20: a split's weights and its holdout must add up to 100"),
    ("id: j\nentry: {on: A}\nsteps:\n  - {id: s, send: {channel: fax}}\n", "j.yaml:4:29: unknown channel 'fax'"),
])
def test_journey_files_are_checked_at_their_line_and_column(text, expected):
    found, problems = read_journeys([("j.yaml", text)])
    assert found == []
    assert any(str(problem).startswith(expected) for problem in problems), [str(p) for p in problems]
