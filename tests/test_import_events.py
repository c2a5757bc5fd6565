"""`kairos import events`: history from CSV and JSON Lines through the edge's own checks and
pipeline, against a real Redis; read back over HTTP; with a real worker, nothing sent."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from hypothesis import given, settings as hypothesis_settings
from hypothesis import strategies as st

from edge.ingest.event_file import EventFile, EventFileError, cell_value
from edge.ingest.wire import LARGEST_INT, SMALLEST_INT
from edge.pipeline.importer import Report, import_events, importer_caller, pipeline_on
from edge.runtime.clock import FakeClock
from edge.runtime.config import load_settings
from edge.store import streams
from edge.store.embedded import free_port
from tests.automation_support import ROOT, SharedClock, ThreadWorker, outbox, wait_until
from tests.support import RULES_YAML, LiveEdge, write_config
from tests.test_automation import automation_config, quiet

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z, where the test clocks start
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat()


def run_import(config: Path, redis_url: str, clock: Any, path: Path, **options: Any) -> Report:
    settings = load_settings(config)

    async def run() -> Report:
        async with pipeline_on(settings, redis_url, clock) as pipeline:
            source = EventFile(path, options.pop("given_format", None))
            try:
                return await import_events(source, pipeline, importer_caller(settings, "shop"),
                                           settings.limits, **options)
            finally:
                source.close()

    return asyncio.run(run())


def jsonl(path: Path, *rows: Any) -> Path:
    path.write_text("".join((row if isinstance(row, str) else orjson.dumps(row).decode()) + "\n"
                            for row in rows))
    return path


def rejections(report: Report) -> list[str]:
    return [rejection.text() for rejection in report.rejections]


def order(user: str, at: int, revenue: float, order_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Order Completed", "userId": user, "timestamp": iso(at),
            "properties": {"order_id": order_id, "revenue": revenue}, **fields}


# -- JSON Lines ------------------------------------------------------------------------------

def test_jsonl_history_lands_as_if_posted_and_bad_rows_are_named(tmp_path, redis_url):
    config = write_config(tmp_path / "config")
    clock = FakeClock(NOW)
    path = jsonl(
        tmp_path / "history.jsonl",
        {"type": "identify", "userId": "ann", "anonymousId": "a-ann", "timestamp": iso(NOW - 400 * DAY),
         "traits": {"email": "ann@example.com", "first_name": "Ann", "points": 1200}},
        order("ann", NOW - 400 * DAY, 100.0, "o1"),                      # 2: outside every window
        {"type": "explode", "userId": "ann"},                             # 3
        order("ann", NOW - 10 * DAY, 50.0, "o2"),                         # 4
        {"type": "track", "event": "Product Viewed"},                     # 5: nobody
        order("ann", NOW - 2 * DAY, 25.0, "o3", sentAt=iso(NOW - 2 * DAY + 1000)),  # 6
        {"type": "track", "event": "E", "userId": "ann", "timestamp": "yesterday"},  # 7
        {"type": "track", "event": "E", "userId": "ann", "properties": 5},           # 8
        '{"type": "track", "event": "E", "userId": ',                                # 9
        "",                                                                          # blank
        {"type": "track", "event": "Product Viewed", "anonymousId": "a-ann",         # 11
         "timestamp": iso(NOW - 2 * HOUR), "properties": {"category": "shoes"}},
        {"type": "track", "event": "Product Viewed", "anonymousId": "a-ann",         # 12
         "timestamp": iso(NOW - 10 * MINUTE), "properties": {"category": "bags"}},
        {"type": "track", "event": "E", "userId": "ann", "timestamp": "2025-06-01T10:00:00"},  # 13
        "[1, 2]",                                                                    # 14
    )
    report = run_import(config, redis_url, clock, path)
    assert (report.read, report.imported, report.rejected, report.error) == (13, 6, 7, "")
    assert [(r.line, r.field) for r in report.rejections] == [
        (3, "type"), (5, "userId"), (7, "timestamp"), (8, "properties"), (9, "row"),
        (13, "timestamp"), (14, "row")]

    with LiveEdge(config, redis_url, clock=clock) as edge:
        profile = edge.profile("user:ann").json()
    assert profile["traits"]["points"] == 1200 and profile["traits"]["first_name"] == "Ann"
    assert "anon:a-ann" in profile["identities"]  # the identify joined the visitor
    aggregates = profile["aggregates"]
    # bucketed by the events' own times: the order of 400 days ago counts nowhere, and
    # the one with a sentAt was not moved to the moment of the import
    assert aggregates["spend_30d"] == 75.0
    assert aggregates["views_1h"] == 1 and aggregates["views_7d"] == 2
    assert aggregates["last_cat"] == "bags"
    assert "spender" not in profile["segments"]
    assert profile["first_seen"] == NOW - 400 * DAY
    assert profile["last_seen"] == NOW - 10 * MINUTE
    assert profile["journeys"]["runs"] == []


def test_every_rejected_jsonl_row_is_named(tmp_path, redis_url):
    config = write_config(tmp_path / "config")
    path = jsonl(
        tmp_path / "bad.jsonl",
        {"type": "explode", "userId": "ann"},
        {"type": "track", "event": "Product Viewed"},
        {"type": "track", "event": "E", "userId": "ann", "timestamp": "yesterday"},
        {"type": "track", "event": "E", "userId": "ann", "properties": 5},
        '{"type": "track", "event": "E", "userId": ',
        {"type": "track", "event": "E", "userId": "ann", "timestamp": "2025-06-01T10:00:00"},
        "[1, 2]",
        {"type": "track", "userId": "ann"},
        '{"type": "track", "event": "E", "userId": "ann", "properties": {"n": 100000000000000000000}}',
    )
    report = run_import(config, redis_url, FakeClock(NOW), path)
    assert (report.read, report.imported, report.rejected) == (9, 0, 9)
    found = rejections(report)
    assert found[:4] == [
        "line 1: type: must be one of track, page, screen, identify, alias, group",
        "line 2: userId: either userId or anonymousId is required",
        "line 3: timestamp: Invalid RFC3339 encoded datetime",
        "line 4: properties: Expected `object | null`, got `int`",
    ]
    assert found[4].startswith("line 5: row: not valid JSON: ")
    assert found[5:] == [
        "line 6: timestamp: no time zone: write it with Z or an offset, as in "
        "2025-03-01T09:30:00+01:00",
        "line 7: row: Expected `object`, got `array`",
        "line 8: event: required for track: the event's name",
        "line 9: properties.n: whole number outside the 64-bit range (-2^63 to 2^64-1): "
        "send it as a string to keep every digit",
    ]
    assert redis.Redis.from_url(redis_url).xlen("kairos:events") == 0


def test_the_format_can_be_named_for_any_file_name(tmp_path, redis_url):
    config = write_config(tmp_path / "config")
    path = jsonl(tmp_path / "export.txt", {"type": "identify", "userId": "cy", "traits": {"points": 7}})
    with pytest.raises(EventFileError, match=re.escape("--format csv|jsonl")):
        EventFile(path)
    report = run_import(config, redis_url, FakeClock(NOW), path, given_format="jsonl")
    assert (report.read, report.imported, report.rejected) == (1, 1, 0)


# -- CSV -------------------------------------------------------------------------------------

CSV_COLUMNS = ("type,event,userId,anonymousId,timestamp,messageId,properties.order_id,"
               "properties.revenue,properties.name,traits.points,traits.zip,traits.email,"
               "context.device.id,context.traits")


def test_csv_history_lands_with_nested_columns_numbers_and_named_rejections(tmp_path, redis_url):
    config = write_config(tmp_path / "config")
    clock = FakeClock(NOW)
    text = "\n".join([
        CSV_COLUMNS,
        f"identify,,bob,,{iso(NOW - 100 * DAY)},m1,,,,350,01234,bob@example.com,dev-1,",  # 2
        f"track,Order Completed,bob,,{iso(NOW - 5 * DAY)},m2,o1,80.5,\"Shoe, red\",,,,,",  # 3
        "explode,,bob,,,m3,,,,,,,,",                                                    # 4
        f"track,Order Completed,,,{iso(NOW - DAY)},m4,o2,20,,,,,,",                      # 5
        "track,Order Completed,bob,,last week,m5,o3,20,,,,,,",                          # 6
        f"track,Order Completed,bob,,{iso(NOW - DAY)},m6,o4,20,,,,,,5",                  # 7
        f"track,Order Completed,bob,,{iso(NOW - DAY)},m7,o5,20,,,,,,,extra",             # 8
        f"track,Order Completed,bob,,{iso(NOW - 40 * DAY)},m8,o6,1000,,,,,,",            # 9
        "",
        f"track,Order Completed,bob,,{iso(NOW - 3 * DAY)},m9,o7,19.5,,,,,,",             # 11
    ]) + "\n"
    path = tmp_path / "till.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    report = run_import(config, redis_url, clock, path, batch_size=2)
    assert (report.read, report.imported, report.rejected, report.error) == (9, 4, 5, "")
    assert rejections(report) == [
        "line 4: type: must be one of track, page, screen, identify, alias, group",
        "line 5: userId: either userId or anonymousId is required",
        "line 6: timestamp: Invalid RFC3339 encoded datetime",
        "line 7: context.traits: expected an object of traits",
        "line 8: row: 15 cells, but the header names 14 columns",
    ]
    with LiveEdge(config, redis_url, clock=clock) as edge:
        profile = edge.profile("user:bob").json()
    # a number where the cell reads as one; a code with a leading zero stays text
    assert profile["traits"]["points"] == 350 and profile["traits"]["zip"] == "01234"
    assert "device:dev-1" in profile["identities"]  # context.device.id built a nested object
    assert profile["aggregates"]["spend_30d"] == 100.0  # 80.5 + 19.5; 40 days ago is outside
    assert profile["events"] == 4 and "spender" in profile["segments"]


def test_csv_header_problems_stop_before_anything_is_read(tmp_path):
    for header, message in [
        ("type,colour", "colour: unknown column"),
        ("type,properties", "a nested field needs a name below it"),
        ("type,userId,userId", "userId: the column appears twice"),
        ("type,properties.size,properties.size.eu", "properties.size is a column too"),
        ("type,extra.x", "dotted names go under properties., traits., context."),
        ("type,properties..x", "a dotted name with an empty part"),
        ("", "empty file"),
    ]:
        path = tmp_path / "bad.csv"
        path.write_text(header + ("\n" if header else ""))
        with pytest.raises(EventFileError, match=re.escape(message)):
            EventFile(path)


# -- re-import -------------------------------------------------------------------------------

def test_importing_the_same_file_twice_counts_each_event_once(tmp_path, redis_url):
    config = write_config(tmp_path / "config")
    clock = FakeClock(NOW)
    path = jsonl(
        tmp_path / "orders.jsonl",
        order("dee", NOW - 3 * DAY, 30.0, "o1", messageId="till-1"),
        order("dee", NOW - 2 * DAY, 40.0, "o2"),  # no messageId: one made from the row
        order("dee", NOW - DAY, 50.0, "o3"),
        {"type": "identify", "userId": "dee", "traits": {"points": 10}},
    )
    first = run_import(config, redis_url, clock, path)
    assert (first.imported, first.duplicates) == (4, 0)
    clock.advance(HOUR)
    second = run_import(config, redis_url, clock, path)
    assert (second.read, second.imported, second.duplicates, second.rejected) == (4, 0, 4, 0)
    with LiveEdge(config, redis_url, clock=clock) as edge:
        profile = edge.profile("user:dee").json()
    assert profile["events"] == 4 and profile["aggregates"]["spend_30d"] == 120.0
    assert redis.Redis.from_url(redis_url).xlen("kairos:events") == 4 + 1  # and one segment change


# -- no sends --------------------------------------------------------------------------------

VIP_JOURNEY = """
id: vip
entry: { segment: spender }
steps:
  - id: hello
    send: { channel: email, title: "Thanks for your orders", body: "You are one of our best." }
"""
SIGN_UP_RULE = RULES_YAML + """
  - id: signup-note
    on: Signed Up
    actions:
      - notify: { channels: [email], title: "Signed up", body: "Welcome aboard" }
"""


def test_imported_history_sends_nothing_and_starts_no_journey(tmp_path, redis_url, redis_client):
    welcome = (ROOT / "config" / "scenarios" / "01-welcome-series" / "journey.yaml").read_text()
    config = automation_config(tmp_path / "config", {"welcome-series": welcome, "vip": VIP_JOURNEY})
    (config / "rules" / "test.yaml").write_text(SIGN_UP_RULE)
    clock = SharedClock(tmp_path / "clock", NOW)
    year_ago = NOW - 365 * DAY
    path = jsonl(
        tmp_path / "crm.jsonl",
        {"type": "identify", "userId": "eva", "timestamp": iso(year_ago),
         "traits": {"email": "eva@example.com", "first_name": "Eva"}},
        {"type": "track", "event": "Signed Up", "userId": "eva", "timestamp": iso(year_ago)},
        order("eva", NOW - 2 * DAY, 150.0, "o1"),  # makes her a spender: the vip journey's entry
        {"type": "track", "event": "Signed Up", "userId": "eva", "timestamp": iso(NOW - HOUR)},
    )
    with LiveEdge(config, redis_url, clock=clock) as edge, ThreadWorker(config, redis_url, clock):
        report = run_import(config, redis_url, clock, path)
        assert (report.imported, report.rejected) == (4, 0)
        wait_until(lambda: quiet(redis_client, clock), what="the imported events")
        clock.advance(3 * DAY)  # past the welcome series' first waits
        wait_until(lambda: quiet(redis_client, clock), what="three days later")
        assert outbox(redis_client) == []
        eva = edge.profile("user:eva").json()
        assert "spender" in eva["segments"] and eva["journeys"]["runs"] == []

        records = [streams.decode(fields) for _, fields in redis_client.xrange(streams.EVENTS)]
        events = [r for r in records if isinstance(r, streams.Event)]
        changes = [r for r in records if isinstance(r, streams.SegmentChange)]
        assert len(events) == 4 and all(event.imported for event in events)  # kept on the stream
        assert [c.entered for c in changes] == [["spender"]] and changes[0].imported

        # The same, posted: the journeys and the rule do send. A client cannot mark its
        # own events as history.
        assert edge.post("/v1/identify", {"userId": "jan", "traits": {
            "email": "jan@example.com", "first_name": "Jan"}}).status_code == 200
        assert edge.post("/v1/track", {"userId": "jan", "event": "Signed Up",
                                       "imported": True}).status_code == 200
        wait_until(lambda: quiet(redis_client, clock), what="jan's sign-up")
        assert edge.post("/v1/batch", {"batch": [order("jan", NOW, 150.0, "o2")]}).status_code == 200
        wait_until(lambda: quiet(redis_client, clock), what="jan's order")
    sent = outbox(redis_client)
    assert sorted((m.profile_id, m.rule, m.journey or "", m.step or "") for m in sent) == [
        ("user:jan", "", "vip", "hello"),
        ("user:jan", "", "welcome-series", "welcome"),
        ("user:jan", "signup-note", "", ""),
    ]
    live = [r for _, f in redis_client.xrange(streams.EVENTS)
            if isinstance(r := streams.decode(f), streams.Event) and r.profile_id == "user:jan"]
    assert live and not any(event.imported for event in live)


# -- the command -----------------------------------------------------------------------------

def kairos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_the_command_end_to_end(tmp_path, redis_url, redis_client):
    config = write_config(tmp_path / "config")
    now = int(datetime.now(timezone.utc).timestamp() * 1000)
    path = jsonl(
        tmp_path / "loyalty.jsonl",
        {"type": "identify", "userId": "fay", "traits": {"points": 4200}},
        order("fay", now - DAY, 60.0, "o1"),
        {"type": "track", "event": "Points Earned"},
    )
    rejects = tmp_path / "rejects.jsonl"
    args = ["--config", str(config), "--redis", redis_url]
    done = kairos("import", "events", str(path), *args, "--rejects", str(rejects))
    assert done.returncode == 0, done.stderr
    assert f"read 3 row(s) from {path}: imported 2, rejected 1" in done.stdout
    assert "line 3: userId: either userId or anonymousId is required" in done.stdout
    assert [orjson.loads(line) for line in rejects.read_bytes().splitlines()] == [
        {"line": 3, "field": "userId", "reason": "either userId or anonymousId is required",
         "row": '{"type":"track","event":"Points Earned"}'}]
    traits = redis_client.hgetall("{p:user:fay}:t")
    assert orjson.loads(traits[b"points"]) == 4200

    again = kairos("import", "events", str(path), *args, "--strict", "--quiet")
    assert again.returncode == 1  # a row was rejected
    assert "imported 0, 2 already imported, rejected 1" in again.stdout

    missing = kairos("import", "events", str(tmp_path / "missing.jsonl"), *args)
    assert missing.returncode == 1 and "missing.jsonl" in missing.stderr
    assert "Traceback" not in missing.stderr
    header = tmp_path / "bad.csv"
    header.write_text("type,colour\ntrack,red\n")
    refused = kairos("import", "events", str(header), *args)
    assert refused.returncode == 1 and "colour: unknown column" in refused.stderr
    nowhere = kairos("import", "events", str(path), "--config", str(config),
                     "--redis", f"redis://127.0.0.1:{free_port()}/0")
    assert nowhere.returncode == 1 and "Redis" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr
    site = kairos("import", "events", str(path), *args, "--site", "elsewhere")
    assert site.returncode == 1 and "no site 'elsewhere'" in site.stderr
    # the catalog import beside it still works
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"id": "x", "price": 3, "currency": "EUR"}\n')
    catalog = kairos("import", "catalog", str(feed), *args)
    assert catalog.returncode == 0 and "imported 1 product(s)" in catalog.stdout


# -- the CSV reader's rules --------------------------------------------------------------------

KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=6)
NUMBER_TEXT = r"-?(0|[1-9][0-9]*)(\.[0-9]+)?"
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               min_size=1, max_size=12).filter(lambda t: not re.fullmatch(NUMBER_TEXT, t))
DECIMALS = st.decimals(min_value=-10**6, max_value=10**6, places=3, allow_nan=False,
                       allow_infinity=False).map(lambda d: format(d, "f"))
LEAVES = st.one_of(st.integers(SMALLEST_INT, LARGEST_INT), TEXT,
                   DECIMALS.map(lambda text: ("decimal", text)))
TREES = st.recursive(LEAVES, lambda children: st.dictionaries(KEYS, children, min_size=1,
                                                              max_size=3), max_leaves=8)


def flatten(tree: Any, path: str, cells: dict[str, str]) -> Any:
    """Adds the cells of a tree of values under `path`; returns what the reader must make of them."""
    if isinstance(tree, dict):
        return {key: flatten(child, f"{path}.{key}", cells) for key, child in tree.items()}
    if isinstance(tree, tuple):  # a decimal, written as such
        cells[path] = tree[1]
        return float(tree[1])
    cells[path] = str(tree)
    return tree


@hypothesis_settings(max_examples=200, deadline=None)
@given(trees=st.fixed_dictionaries({}, optional={
    "properties": st.dictionaries(KEYS, TREES, min_size=1, max_size=3),
    "traits": st.dictionaries(KEYS, TREES, min_size=1, max_size=3),
    "context": st.dictionaries(KEYS, TREES, min_size=1, max_size=3)}),
    user=st.text(alphabet="0123456789", min_size=1, max_size=4))
def test_dotted_csv_columns_round_trip_into_nested_objects(tmp_path_factory, trees, user):
    cells: dict[str, str] = {"type": "track", "event": "E", "userId": user}
    expected: dict[str, Any] = {"type": "track", "event": "E", "userId": user}
    for top, tree in trees.items():
        expected[top] = flatten(tree, top, cells)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(list(cells))
    writer.writerow(list(cells.values()))
    writer.writerow(["track", "", user] + [""] * (len(cells) - 3))  # empty cells are absent
    path = tmp_path_factory.mktemp("csv") / "rows.csv"
    path.write_text(buffer.getvalue(), newline="")
    source = EventFile(path)
    try:
        rows = list(source.rows())
    finally:
        source.close()
    assert [row.error for row in rows] == [None, None]
    assert orjson.loads(rows[0].body) == expected  # ids stay text, however they read
    assert orjson.loads(rows[1].body) == {"type": "track", "userId": user}


@given(number=st.integers(SMALLEST_INT, LARGEST_INT), beyond=st.integers(LARGEST_INT + 1, 10**30))
def test_whole_numbers_are_numbers_within_64_bits_and_text_beyond(number, beyond):
    assert cell_value(str(number)) == number and isinstance(cell_value(str(number)), int)
    assert cell_value(str(beyond)) == str(beyond)
    assert cell_value(str(-beyond)) == str(-beyond)
    for text in ("007", "+1", "1e3", "1,5", " 12", "true", ".5", "1.", "-"):
        assert cell_value(text) == text
