"""`kairos simulate`: recorded events through one journey on a simulated clock, with the
worker's own code on a scratch Redis; the live Redis only read."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from edge.runtime.clock import FakeClock
from edge.runtime.config import load_settings
from edge.worker.simulate import (Recorded, SimulationError, events_from_file, events_from_stream,
                                  format_report, parse_moment, simulate)
from tests.automation_support import ROOT
from tests.support import SETTINGS_YAML, LiveEdge, write_config
from tests.test_automation import ABANDONED_CART, AUTOMATION

HOUR = 3_600_000
DAY = 24 * HOUR
PRAGUE = "Europe/Prague"
# Left out of every simulation of abandoned-cart: it would send to the same people.
WELCOME_BACK = """
id: welcome-back
entry: { on: Product Added }
steps:
  - { id: hello, send: { channel: email, body: "Welcome back" } }
"""
DIGEST = """
id: digest
entry: { on: Signed Up }
steps:
  - { id: welcome, send: { channel: email, body: "welcome" } }
  - { id: tip, send: { channel: email, body: "a tip" } }
"""
POLICY = """
policy:
  quiet_hours: "21:00-08:00"
  caps:
    email: { max: 1, per: 1d }
"""


def automation_config(target: Path, journeys: dict[str, str]) -> Path:
    # people of these tests agreed to marketing by email and SMS
    settings = SETTINGS_YAML.replace(
        "timezone: Europe/Prague",
        "timezone: Europe/Prague\n    consent_defaults: { marketing: true, email: true, sms: true }")
    config = write_config(target, settings_yaml=settings + AUTOMATION)
    (config / "journeys").mkdir(exist_ok=True)
    shutil.copytree(ROOT / "config" / "namedays", config / "namedays", dirs_exist_ok=True)
    for name, text in journeys.items():
        (config / "journeys" / f"{name}.yaml").write_text(text)
    return config


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def added(user: str, at: str | int) -> dict:
    return {"type": "track", "userId": user, "event": "Product Added", "timestamp": at,
            "properties": {"product_id": "p1", "name": "Red shoe", "price": 20.0, "quantity": 1}}


def identify(user: str, at: str | int, **traits: object) -> dict:
    return {"type": "identify", "userId": user, "traits": traits, "timestamp": at}


def ordered(user: str, at: str) -> dict:
    return {"type": "track", "userId": user, "event": "Order Completed", "timestamp": at,
            "properties": {"order_id": f"o-{user}", "revenue": 20.0,
                           "products": [{"product_id": "p1", "price": 20.0, "quantity": 1}]}}


# Monday 5 January 2026, Prague on CET (UTC+1). Eva leaves her cart; Jan orders within
# the hour; Pia has no email address; Ola empties her cart; one event is a month late.
SHOPPERS = [
    identify("eva", "2026-01-05T10:00:00Z", first_name="Eva", email="eva@example.com"),
    added("eva", "2026-01-05T10:05:00Z"),
    identify("jan", utc("2026-01-05T10:00:00"), first_name="Jan", email="jan@example.com"),
    added("jan", utc("2026-01-05T10:10:00")),  # epoch ms, as some exports write it
    ordered("jan", "2026-01-05T10:40:00Z"),
    identify("pia", "2026-01-05T10:00:00Z", first_name="Pia"),
    added("pia", "2026-01-05T10:20:00Z"),
    identify("ola", "2026-01-05T10:00:00Z", first_name="Ola", email="ola@example.com"),
    added("ola", "2026-01-05T10:30:00Z"),
    {"type": "track", "userId": "ola", "event": "Product Removed", "timestamp": "2026-01-05T10:50:00Z",
     "properties": {"product_id": "p1", "quantity": 1}},
    added("late", "2026-02-01T10:00:00Z"),
]


def write_events(path: Path, events: list[dict]) -> Path:
    # not in time order: the replay sorts them
    path.write_text("\n".join(json.dumps(event) for event in reversed(events)) + "\n\n")
    return path


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return automation_config(tmp_path / "config", {"abandoned-cart": ABANDONED_CART,
                                                   "welcome-back": WELCOME_BACK})


def window(start: str, end: str) -> tuple[int, int]:
    return parse_moment(start, PRAGUE, "--from"), parse_moment(end, PRAGUE, "--to", end_of_day=True)


def check_shoppers(report) -> None:
    assert report.journey == "abandoned-cart"
    assert (report.events, report.outside, report.rejected) == (10, 1, [])
    assert (report.entered, report.people) == (4, 4)
    assert report.steps == {
        "entry": {"entered": 4},
        "wait-an-hour": {"goal": 1},          # Jan ordered while the run waited
        "still-there": {"branched": 3},       # Eva and Pia yes, Ola no
        "remind": {"sent": 1, "dropped": 1},  # Pia has no address
        "end": {"completed": 3},              # the goal window passed for the others
    }
    [send] = report.sends
    assert (send.profile_id, send.step, send.channel, send.title, send.body) == (
        "user:eva", "remind", "email", "Your cart", "Hi Eva, Red shoe is waiting")
    assert send.at == utc("2026-01-05T11:05:00")
    assert (send.local, send.zone) == ("2026-01-05T12:05+01:00", PRAGUE)
    assert [(g.profile_id, g.step) for g in report.goals] == [("user:jan", "wait-an-hour")]
    assert not any(s.profile_id == "user:jan" for s in report.sends)
    assert [(d.profile_id, d.reason) for d in report.dropped] == [("user:pia", "no address for email")]
    assert report.exits == [] and report.deferred == []
    assert (report.completed, report.running) == (3, 0)
    assert (report.conversions.entered, report.conversions.goal,
            report.conversions.after_send) == (4, 1, 0)
    assert report.conversions.rate == 0.25


def test_a_recorded_file_through_an_abandoned_cart_journey(shop, tmp_path):
    events = events_from_file(write_events(tmp_path / "events.jsonl", SHOPPERS))
    report = simulate(load_settings(shop), "abandoned-cart", *window("2026-01-05", "2026-01-20"),
                      events)
    check_shoppers(report)  # and nothing of welcome-back, which was not loaded
    text = format_report(report)
    assert "2026-01-05 12:05 CET  user:eva  remind by email  Your cart: Hi Eva, Red shoe is waiting" in text
    assert "Conversions: 1 of 4 run(s) reached the goal (25.0%)" in text


def test_a_window_that_ends_early_leaves_runs_waiting(shop, tmp_path):
    events = events_from_file(write_events(tmp_path / "events.jsonl", SHOPPERS))
    start = utc("2026-01-05T00:00:00")
    report = simulate(load_settings(shop), "abandoned-cart", start, utc("2026-01-05T11:25:00"), events)
    # Ola's hour is not up; Eva (sent to) and Pia (dropped) wait out their goal windows
    assert [s.profile_id for s in report.sends] == ["user:eva"]
    assert report.steps["wait-an-hour"] == {"goal": 1, "waiting": 1}
    assert report.steps["end"] == {"waiting": 2}
    assert (report.running, report.completed) == (3, 0)


def test_simulating_from_the_live_stream_leaves_the_live_redis_as_it_was(
        shop, redis_url, redis_client):
    # the live edge on today's clock: the stream's entry ids and the events agree on the time
    now = time.time_ns() // 1_000_000
    clock = FakeClock(now)
    with LiveEdge(shop, redis_url, clock=clock) as edge:
        edge.post("/v1/identify", {"userId": "eva", "traits": {"first_name": "Eva", "email": "eva@example.com"}})
        edge.post("/v1/identify", {"userId": "jan", "traits": {"first_name": "Jan", "email": "jan@example.com"}})
        assert edge.track("Product Added", userId="eva", properties={
            "product_id": "p1", "name": "Red shoe", "price": 20.0, "quantity": 1}).status_code == 200
        assert edge.track("Product Added", userId="jan", properties={
            "product_id": "p1", "name": "Red shoe", "price": 20.0, "quantity": 1}).status_code == 200
        clock.advance(30 * 60_000)
        assert edge.track("Order Completed", userId="jan", properties={
            "order_id": "o1", "revenue": 20.0}).status_code == 200
    before = {key: (redis_client.type(key), redis_client.dump(key)) for key in redis_client.keys("*")}
    settings = load_settings(shop)
    events = events_from_stream(redis_url, settings.stream.key, now - HOUR, now + 10 * DAY)
    assert [(e.profile_id, e.event.type) for e in events] == [
        ("user:eva", "identify"), ("user:jan", "identify"), ("user:eva", "track"),
        ("user:jan", "track"), ("user:jan", "track")]
    report = simulate(settings, "abandoned-cart", now - HOUR, now + 10 * DAY, events)
    after = {key: (redis_client.type(key), redis_client.dump(key)) for key in redis_client.keys("*")}
    assert after == before
    assert not redis_client.exists("kairos:outbox")
    assert (report.entered, report.events, report.duplicates) == (2, 5, 0)
    assert [(s.profile_id, s.step, s.at) for s in report.sends] == [("user:eva", "remind", now + HOUR)]
    assert [g.profile_id for g in report.goals] == ["user:jan"]
    assert report.steps["remind"] == {"sent": 1}


def test_a_send_held_back_by_quiet_hours_is_reported_with_its_local_times(tmp_path):
    config = automation_config(tmp_path / "config", {"digest": DIGEST})
    (config / "rules" / "policy.yaml").write_text(POLICY)
    night = [  # 22:30 in Prague, 16:30 in New York
        identify("owl", "2026-01-05T21:29:00Z", email="owl@example.com"),
        {"type": "track", "userId": "owl", "event": "Signed Up", "timestamp": "2026-01-05T21:30:00Z"},
        identify("ny", "2026-01-05T21:29:00Z", email="ny@example.com", timezone="America/New_York"),
        {"type": "track", "userId": "ny", "event": "Signed Up", "timestamp": "2026-01-05T21:30:00Z"},
    ]
    events = events_from_file(write_events(tmp_path / "night.jsonl", night))
    report = simulate(load_settings(config), "digest", *window("2026-01-05", "2026-01-08"), events)
    owl = [d for d in report.deferred if d.profile_id == "user:owl" and d.step == "welcome"]
    [held] = owl
    assert (held.channel, held.local, held.until_local, held.zone) == (
        "email", "2026-01-05T22:30+01:00", "2026-01-06T08:00+01:00", PRAGUE)
    assert "quiet hours" in held.reason
    assert report.steps["welcome"] == {"sent": 2, "deferred": 1}
    assert report.steps["tip"] == {"sent": 2, "deferred": 2}  # the cap of one a day
    assert [(s.profile_id, s.step, s.local) for s in report.sends] == [
        ("user:ny", "welcome", "2026-01-05T16:30-05:00"),
        ("user:owl", "welcome", "2026-01-06T08:00+01:00"),
        ("user:ny", "tip", "2026-01-06T16:30-05:00"),
        ("user:owl", "tip", "2026-01-07T08:00+01:00"),
    ]
    assert "2026-01-05 22:30 CET  user:owl  at welcome (email): quiet hours" in format_report(report)


def test_unknown_journeys_and_bad_windows_are_refused(shop):
    settings = load_settings(shop)
    with pytest.raises(SimulationError, match="unknown journey 'abandoned-kart'.*did you mean 'abandoned-cart'"):
        simulate(settings, "abandoned-kart", *window("2026-01-05", "2026-01-06"), [])
    with pytest.raises(SimulationError, match="--to must be later"):
        simulate(settings, "abandoned-cart", utc("2026-01-06T00:00:00"), utc("2026-01-05T00:00:00"), [])
    with pytest.raises(SimulationError, match="--from: '5 January' is not a date"):
        parse_moment("5 January", PRAGUE, "--from")
    assert parse_moment("2026-01-05T09:30", PRAGUE, "--from") == utc("2026-01-05T08:30:00")
    assert parse_moment("2026-01-05T09:30:00Z", PRAGUE, "--from") == utc("2026-01-05T09:30:00")


def test_events_refused_by_ingest_are_reported_and_bad_lines_stop_the_run(shop, tmp_path):
    settings = load_settings(shop)
    no_one = Recorded(utc("2026-01-05T10:00:00"), events_from_file(
        write_events(tmp_path / "one.jsonl", [{"type": "track", "event": "Product Added",
                                               "timestamp": "2026-01-05T10:00:00Z"}]))[0].event,
                      "one.jsonl:1")
    report = simulate(settings, "abandoned-cart", *window("2026-01-05", "2026-01-05"), [no_one])
    assert report.rejected == ["one.jsonl:1: userId: either userId or anonymousId is required"]
    assert report.entered == 0
    (tmp_path / "bad.jsonl").write_text('{"type": "track", "userId": "a", "event": "X"}\n')
    with pytest.raises(SimulationError, match="bad.jsonl:1: the event has no timestamp"):
        events_from_file(tmp_path / "bad.jsonl")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", "simulate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_the_cli_simulates_a_file_as_json_and_as_text(shop, tmp_path):
    events = write_events(tmp_path / "events.jsonl", SHOPPERS)
    common = ["--from", "2026-01-05", "--to", "2026-01-20", "--events", str(events),
              "--config", str(shop)]
    done = run_cli("abandoned-cart", *common, "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["entered"] == 4
    assert found["steps"]["remind"] == {"sent": 1, "dropped": 1}
    assert [(s["profile_id"], s["local"]) for s in found["sends"]] == [("user:eva", "2026-01-05T12:05+01:00")]
    assert [g["profile_id"] for g in found["goals"]] == ["user:jan"]
    text = run_cli("abandoned-cart", *common)
    assert text.returncode == 0, text.stderr
    assert "Entered: 4 run(s) by 4 person(s)" in text.stdout
    unknown = run_cli("nope", *common)
    assert unknown.returncode == 1
    assert "unknown journey 'nope'" in unknown.stderr
    bad = run_cli("abandoned-cart", "--from", "yesterday", "--to", "2026-01-20",
                  "--events", str(events), "--config", str(shop))
    assert bad.returncode == 1
    assert "--from: 'yesterday' is not a date" in bad.stderr


def test_the_cli_reads_the_live_stream_of_a_redis(shop, redis_url, redis_client):
    now = time.time_ns() // 1_000_000
    with LiveEdge(shop, redis_url, clock=FakeClock(now)) as edge:
        edge.post("/v1/identify", {"userId": "eva", "traits": {"first_name": "Eva", "email": "eva@example.com"}})
        edge.track("Product Added", userId="eva", properties={"product_id": "p1", "name": "Red shoe",
                                                              "price": 20.0, "quantity": 1})
    keys = sorted(redis_client.keys("*"))
    day = datetime.fromtimestamp(now / 1000, timezone.utc).date()
    done = run_cli("abandoned-cart", "--from", (day.replace(day=1)).isoformat(),
                   "--to", f"{now + 2 * DAY}", "--redis", redis_url, "--config", str(shop), "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert (found["entered"], [s["profile_id"] for s in found["sends"]]) == (1, ["user:eva"])
    assert sorted(redis_client.keys("*")) == keys
