"""Automation benchmark: one `kairos worker` process on its events, timers and memory.

Four figures, side by side in one run, each printed with its target:

1. events/s one worker process consumes with 20 journeys loaded. A realistic mix
   of events for --people visitors goes through the real edge (`kairos serve
   --no-worker`, /v1/batch), so the profiles the worker reads exist and the
   stream holds exactly what the event script appends; then one `kairos worker`
   starts (`automation.start: all`) and we time it from its first delivery
   until the group has acknowledged every entry (XINFO GROUPS: nothing pending,
   last-delivered-id the stream's last id). Target >= 3,000 events/s.
2. timers fired/s: --fire people each add a product and so enter a journey whose
   first step is `wait: 1m`; once every run waits, the worker's clock file moves
   61 s on and we time until no timer is overdue or leased. Each fire reads the
   run and the profile, takes the `if` and commits the email send. Target >=
   5,000 timers/s.
3. bytes per pending timer: --timers run timers (default 1,000,000) scheduled with
   TimerStore.schedule_many in pipelines into an empty Redis, `used_memory`
   after minus before, over the count. Target <= 250 bytes.
4. lag at half saturation: the worker of (1), its stream caught up, is fed for
   --lag-duration seconds at half the rate (1) measured, by a paced producer
   XADDing copies (new messageIds) of the entries the edge wrote, in the event
   script's layout. The group is polled every few milliseconds (XPENDING's
   oldest pending id, XINFO GROUPS' last-delivered-id): an entry counts as
   acknowledged at the first poll that shows it, and its lag is that moment
   minus its id's time. p50/p99; target p99 < 1 s. The worker's own
   `kairos:worker:lag` reports are sampled beside it.

Each part has its own redis-server (the embedded one). Writes
bench/results/<date>-automation.json and prints a table.

    python -m bench.automation [--events 60000] [--people 10000] [--fire 10000]
                               [--timers 1000000] [--lag-duration 20]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import datetime
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis
import redis.asyncio as aioredis

from bench.http import cpu_seconds, stop, wait_up
from edge.runtime.config import AutomationSettings
from edge.store import streams
from edge.store.embedded import EmbeddedRedis, free_port
from edge.store.journeys import STATS_PREFIX, timer_member
from edge.store.timers import TimerStore
from edge.worker.metrics import LAG_KEY, STATS_KEY
from rules.journeys import run_field

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SECRET = "bench-secret"
STREAM = streams.EVENTS
GROUP = "kairos-automation"
BATCH_EVENTS = 500  # events per /v1/batch while pre-filling
POLL_S = 0.005  # how often the group is polled while timing

TARGETS = {"events_per_s": 3_000, "timers_per_s": 5_000, "bytes_per_timer": 250,
           "lag_p99_ms": 1_000}

# Consent to email and SMS by default, so the journeys' sends are checked and sent
# rather than all dropped. The example policy's quiet hours are left out of the
# benchmark's copy of the rules: with them, whether a send goes or is deferred would
# depend on the hour this runs at.
SETTINGS = f"""
sites:
  bench:
    write_keys: [bench-public]
    origins: ["https://shop.example"]
    user_hash_secret: bench
    timezone: Europe/Prague
    consent_defaults: {{ marketing: true, email: true, sms: true }}
secret_keys:
  {SECRET}:
    site: bench
    scopes: [ingest, profiles:read, admin]
rules: rules
automation:
  start: all
"""

# -- the journeys --------------------------------------------------------------------------

# The example journey (config/journeys/abandoned-cart.yaml) as this benchmark was
# written against: kept here so that edits of the example do not move the figures.
ABANDONED_CART = """
id: abandoned-cart
entry: { on: Product Added }
reentry: always
goal: { on: Order Completed, within: 7d }
exit:
  - when: '"unsubscribed" in profile.tags'
steps:
  - { id: wait-an-hour, wait: 1h }
  - { id: still-there, if: 'cart.value > 0', else: end }
  - id: remind
    send: { channel: email, title: "Your cart", body: "Hi {{ traits.first_name }}, {{ event.properties.name }} waits" }
    late: 12h
  - id: wait-order
    wait_for: { on: Order Completed }
    timeout: 2d
    on_timeout: second
  - { id: thanks, exit: true }
  - id: second
    send: { channels: [sms, email], body: "Still there?" }
"""

# 20 journeys of the example's kind: entries on cart adds and removals, sign-ups,
# orders, checkouts, page views and product views, most with a condition; waits,
# waits for an event, ifs, sends, tags. Entries on `page` and `Product Viewed` make
# the worker read the profile of nearly every event to test their conditions.
JOURNEYS: dict[str, str] = {
    "cart-high-value": """
id: cart-high-value
entry: { on: Product Added, when: 'event.properties.price > 150' }
reentry: 1d
goal: { on: Order Completed, within: 3d }
steps:
  - { id: wait, wait: 30m }
  - { id: still-there, if: 'cart.value > 150', else: end }
  - id: nudge
    send: { channels: [push, email], title: "Still deciding?", body: "{{ event.properties.name }} is in your cart" }
""",
    "cart-shoes": """
id: cart-shoes
entry: { on: Product Added, when: 'event.properties.category == "shoes"' }
reentry: 7d
steps:
  - { id: wait, wait: 2h }
  - { id: still-there, if: 'cart.value > 0', else: end }
  - { id: sizes, send: { channel: email, title: "Free size exchanges", body: "Your shoes wait" } }
""",
    "cart-removed": """
id: cart-removed
entry: { on: Product Removed }
reentry: 3d
goal: { on: Product Added, within: 1d }
steps:
  - { id: wait, wait: 1d }
  - { id: offer, send: { channel: email, body: "Changed your mind? 5% off" } }
""",
    "checkout-abandoned": """
id: checkout-abandoned
entry: { on: Checkout Started }
reentry: always
goal: { on: Order Completed, within: 1d }
steps:
  - { id: wait, wait: 45m }
  - { id: remind, send: { channel: email, title: "Complete your order", body: "Hi {{ traits.first_name }}" } }
  - { id: wait-more, wait: 1d }
  - { id: last-call, send: { channels: [sms, email], body: "Your order is one step away" } }
""",
    "welcome": """
id: welcome
entry: { on: Signed Up }
steps:
  - { id: hello, send: { channel: email, body: "Welcome" } }
  - id: first-order
    wait_for: { on: Order Completed }
    timeout: 2d
    on_timeout: nudge
  - { id: thanks, send: { channel: email, body: "Thanks for your order" } }
  - { id: done, exit: true }
  - { id: nudge, send: { channel: email, body: "10% off your first order" } }
""",
    "welcome-pro": """
id: welcome-pro
entry: { on: Signed Up, when: 'traits.plan == "pro"' }
steps:
  - { id: wait, wait: 1h }
  - { id: tour, send: { channel: email, body: "A tour of the pro features" } }
""",
    "onboarding-tips": """
id: onboarding-tips
entry: { on: Signed Up }
exit:
  - when: '"unsubscribed" in profile.tags'
steps:
  - { id: day-1, wait: 1d }
  - { id: tip-1, send: { channel: email, body: "Tip: save items for later" } }
  - { id: day-3, wait: 2d }
  - { id: tip-2, send: { channel: email, body: "Tip: size guides" } }
""",
    "post-purchase": """
id: post-purchase
entry: { on: Order Completed }
reentry: always
steps:
  - { id: thanks, send: { channel: email, body: "Thank you for your order" } }
  - { id: wait, wait: 7d }
  - { id: review, send: { channel: email, body: "How was it?" } }
""",
    "big-order": """
id: big-order
entry: { on: Order Completed, when: 'event.properties.revenue > 250' }
reentry: 30d
steps:
  - { id: vip, tag: [vip] }
  - { id: wait, wait: 1h }
  - { id: perks, send: { channel: email, body: "Your VIP perks" } }
""",
    "second-order": """
id: second-order
entry: { on: Order Completed, when: 'aggregates.orders_90d >= 2' }
reentry: 30d
steps:
  - { id: wait, wait: 1d }
  - { id: loyal, send: { channel: email, body: "Thanks for coming back" } }
""",
    "replenish": """
id: replenish
entry: { on: Order Completed }
reentry: 30d
steps:
  - { id: wait, wait: 30d }
  - { id: vip, if: '"vip" in profile.tags', then: sms, else: mail }
  - { id: sms, send: { channel: sms, body: "Time to restock?" } }
  - { id: done, exit: true }
  - { id: mail, send: { channel: email, body: "Time to restock?" } }
""",
    "sale-browser": """
id: sale-browser
entry: { on: page, when: 'event.properties.path == "/sale" and aggregates.orders_90d == 0' }
reentry: 7d
steps:
  - { id: wait, wait: 2h }
  - { id: sale, send: { channel: email, body: "The sale ends soon" } }
""",
    "checkout-page": """
id: checkout-page
entry: { on: page, when: 'event.properties.path == "/checkout" and cart.value > 0' }
reentry: 1d
goal: { on: Order Completed, within: 1d }
steps:
  - { id: wait, wait: 1h }
  - { id: help, send: { channels: [push, email], body: "Questions about your order?" } }
""",
    "new-arrivals": """
id: new-arrivals
entry: { on: page, when: 'event.properties.path == "/new" and profile.visits >= 3' }
reentry: 14d
steps:
  - { id: wait, wait: 1d }
  - { id: news, send: { channel: email, body: "New this week" } }
""",
    "regular-browser": """
id: regular-browser
entry: { on: page, when: 'profile.visits >= 5 and aggregates.orders_90d == 0' }
reentry: never
steps:
  - { id: wait, wait: 3h }
  - { id: welcome-back, send: { channel: email, body: "Good to see you again" } }
""",
    "browse-watches": """
id: browse-watches
entry: { on: Product Viewed, when: 'event.properties.category == "watches" and event.properties.price > 150' }
reentry: 3d
goal: { on: Product Added, within: 1d }
steps:
  - { id: wait, wait: 4h }
  - { id: watches, send: { channel: email, body: "Still thinking about it?" } }
""",
    "browse-shoes": """
id: browse-shoes
entry: { on: Product Viewed, when: 'aggregates.shoe_views_1h >= 3' }
reentry: 1d
steps:
  - { id: wait, wait: 1h }
  - { id: shoes, send: { channel: email, body: "Shoes you looked at" } }
""",
    "window-shopper": """
id: window-shopper
entry: { on: Product Viewed, when: 'aggregates.product_views_7d >= 10 and aggregates.orders_90d == 0' }
reentry: 7d
steps:
  - { id: wait, wait: 1d }
  - { id: first-order, if: 'aggregates.orders_90d == 0', else: end }
  - { id: offer, send: { channel: email, body: "10% off your first order" } }
""",
    "bargain-hunter": """
id: bargain-hunter
entry: { on: Product Viewed, when: 'event.properties.price < 20 and "window_shopper" in segments' }
reentry: 7d
steps:
  - { id: wait, wait: 6h }
  - { id: deals, send: { channel: email, body: "Deals under 20" } }
""",
}

# The timers part: one journey whose first step waits a minute.
TIMER_JOURNEY = """
id: cart-nudge
entry: { on: Product Added }
steps:
  - { id: wait, wait: 1m }
  - { id: still-there, if: 'cart.value > 0', else: end }
  - id: remind
    send: { channel: email, title: "Your cart", body: "Hi {{ traits.first_name }}, {{ event.properties.name }} waits" }
"""


def journeys() -> dict[str, str]:
    """The 20 journeys: the example's abandoned cart and 19 more (file name -> text)."""
    return {"abandoned-cart": ABANDONED_CART, **JOURNEYS}


def write_config(root: Path, journey_files: dict[str, str]) -> Path:
    """A configuration folder: the bench site, the example rules (without quiet hours)
    and the given journeys."""
    (root / "journeys").mkdir(parents=True)
    (root / "kairos.yaml").write_text(SETTINGS)
    shutil.copytree(ROOT / "config" / "rules", root / "rules")
    policy = root / "rules" / "policy.yaml"
    policy.write_text("".join(line for line in policy.read_text().splitlines(keepends=True)
                              if not line.lstrip().startswith("quiet_hours")))
    shutil.copytree(ROOT / "config" / "namedays", root / "namedays")
    for name, text in journey_files.items():
        (root / "journeys" / f"{name}.yaml").write_text(text)
    return root


# -- the events ----------------------------------------------------------------------------

CATEGORIES = ["shoes", "bags", "hats", "coats", "socks", "watches", "belts", "scarves"]
PATHS = ["/", "/sale", "/new", "/about", "/cart", "/checkout"] + [f"/category/{c}" for c in CATEGORIES]
# bench/traffic.py's mix, with sign-ups: (weight per 100 events, kind)
MIX = [
    (54, "page"), (22, "Product Viewed"), (8, "Product Added"), (2, "Product Removed"),
    (3, "Checkout Started"), (2, "Order Completed"), (2, "identify"), (6, "screen"),
    (1, "Signed Up"),
]
FIRST_NAMES = ["Eva", "Jan", "Petra", "Tomas", "Lucie", "Martin", "Anna", "Jakub"]


def make_events(n: int, people: int, seed: int = 7) -> list[dict[str, Any]]:
    """n events of the mix for `people` visitors, as /v1/batch takes them."""
    rng = random.Random(seed)
    kinds = [kind for weight, kind in MIX for _ in range(weight)]
    out: list[dict[str, Any]] = []
    for i in range(n):
        visitor = rng.randrange(people)
        kind = rng.choice(kinds)
        number = rng.randrange(500)
        base: dict[str, Any] = {
            "anonymousId": f"anon-{visitor}", "messageId": f"bench-{seed}-{i}",
            "context": {"page": {"path": rng.choice(PATHS), "url": "https://shop.example/"},
                        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120",
                        "timezone": "Europe/Prague"}}
        if kind == "page":
            out.append({**base, "type": "page", "name": "Page",
                        "properties": {"path": rng.choice(PATHS)}})
        elif kind == "screen":
            out.append({**base, "type": "screen", "name": "Home",
                        "context": {"app": {"name": "shop"}, "device": {"type": "ios"}}})
        elif kind == "identify":
            out.append({**base, "type": "identify", "userId": f"user-{visitor}",
                        "traits": {"first_name": rng.choice(FIRST_NAMES),
                                   "email": f"user-{visitor}@example.com",
                                   "plan": rng.choice(["free", "pro"])}})
        elif kind == "Signed Up":
            out.append({**base, "type": "track", "event": kind, "userId": f"user-{visitor}",
                        "properties": {"method": "email"}})
        elif kind == "Order Completed":
            revenue = round(rng.uniform(20, 400), 2)
            out.append({**base, "type": "track", "event": kind, "properties": {
                "order_id": f"o-{seed}-{i}", "revenue": revenue,
                "products": [{"product_id": f"sku-{number}", "price": revenue, "quantity": 1}]}})
        else:
            out.append({**base, "type": "track", "event": kind, "properties": {
                "product_id": f"sku-{number}", "name": f"Product {number}",
                "category": CATEGORIES[number % len(CATEGORIES)],
                "price": round(rng.uniform(5, 200), 2), "quantity": 1}})
    return out


def timer_events(people: int) -> list[dict[str, Any]]:
    """For the timers part: each person identifies (name, email) and adds a product."""
    out: list[dict[str, Any]] = []
    for i in range(people):
        user = {"userId": f"user-{i}", "anonymousId": f"anon-{i}"}
        out.append({**user, "type": "identify", "messageId": f"t-id-{i}", "traits": {
            "first_name": FIRST_NAMES[i % len(FIRST_NAMES)], "email": f"user-{i}@example.com"}})
        out.append({**user, "type": "track", "event": "Product Added", "messageId": f"t-add-{i}",
                    "properties": {"product_id": f"sku-{i % 500}", "name": f"Product {i % 500}",
                                   "price": 25.0, "quantity": 1}})
    return out


# -- processes -----------------------------------------------------------------------------


class Edge:
    """`kairos serve --no-worker`, for ingesting events as the edge does."""

    def __init__(self, config: Path, redis_url: str, workers: int = 2) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "serve", "--port", str(self.port), "--workers",
             str(workers), "--config", str(config), "--redis", redis_url, "--no-worker",
             "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)

    def __enter__(self) -> "Edge":
        wait_up(self.port, self.process, "/readyz")
        return self

    def __exit__(self, *exc: Any) -> None:
        stop(self.process)

    def ingest(self, events: list[dict[str, Any]], concurrency: int = 4) -> dict[str, Any]:
        """Every event through /v1/batch, `concurrency` batches in flight."""
        started = time.perf_counter()
        accepted = asyncio.run(self._ingest(events, concurrency))
        seconds = time.perf_counter() - started
        if accepted != len(events):
            raise RuntimeError(f"the edge accepted {accepted} of {len(events)} events")
        return {"events": len(events), "seconds": round(seconds, 2),
                "events_per_s": round(len(events) / seconds)}

    async def _ingest(self, events: list[dict[str, Any]], concurrency: int) -> int:
        batches = [orjson.dumps({"batch": events[i:i + BATCH_EVENTS]})
                   for i in range(0, len(events), BATCH_EVENTS)]
        queue = iter(batches)
        accepted = 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=60,
                                     auth=(SECRET, "")) as client:
            async def send() -> None:
                nonlocal accepted
                for body in queue:
                    answer = await client.post("/v1/batch", content=body,
                                               headers={"Content-Type": "application/json"})
                    if answer.status_code != 200:
                        raise RuntimeError(f"/v1/batch answered {answer.status_code}: "
                                           f"{answer.text[:500]}")
                    accepted += answer.json()["accepted"]
            await asyncio.gather(*(send() for _ in range(concurrency)))
        return accepted


class WorkerProcess:
    """One `kairos worker` process; its clock read from a file when one is given (the
    timers part moves time), else the system clock, as in production."""

    def __init__(self, config: Path, redis_url: str, clock_file: Path | None, log: Path) -> None:
        self.log = log
        self.command = [sys.executable, "-m", "edge.cli", "worker", "--config", str(config),
                        "--redis", redis_url, "--name", "bench-worker", "--log-level", "warning"]
        if clock_file is not None:
            self.command += ["--clock-file", str(clock_file)]
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def __enter__(self) -> "WorkerProcess":
        self.started = time.perf_counter()
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT,
                                            cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.process is not None:
            stop(self.process)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def check(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the worker exited ({self.process.returncode}): "
                               f"{self.log.read_text()[-2000:]}")


def set_clock(path: Path, ms: int) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(str(ms))
    os.replace(temporary, path)  # the worker never reads a half-written number


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


# -- the stream and the group --------------------------------------------------------------


def parse_id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def stream_ids(client: redis.Redis, chunk: int = 10_000) -> list[tuple[int, int]]:
    """Every entry id of the stream, in order."""
    ids: list[tuple[int, int]] = []
    start = "-"
    while True:
        items = client.xrange(STREAM, start, "+", count=chunk)
        ids += [parse_id(entry_id) for entry_id, _ in items]
        if len(items) < chunk:
            return ids
        last = ids[-1]
        start = f"{last[0]}-{last[1] + 1}"


def group_state(client: redis.Redis) -> tuple[int, tuple[int, int], tuple[int, int] | None] | None:
    """(pending, last-delivered id, oldest pending id) of the worker's group; None before
    the group exists."""
    pipe = client.pipeline(transaction=False)
    pipe.xinfo_groups(STREAM)
    pipe.xpending(STREAM, GROUP)
    try:
        groups, summary = pipe.execute()
    except redis.ResponseError:
        return None
    for group in groups:
        name = group["name"]
        if (name.decode() if isinstance(name, bytes) else name) == GROUP:
            pending = int(group["pending"])
            oldest = parse_id(summary["min"]) if pending and summary.get("min") else None
            return pending, parse_id(group["last-delivered-id"]), oldest
    return None


def acknowledged(ids: list[tuple[int, int]], state: tuple) -> int:
    """How many of `ids` (in order) the group has acknowledged: those delivered before
    the oldest pending one (a worker acknowledges whole batches in order)."""
    pending, last, oldest = state
    if oldest is not None:
        return bisect.bisect_left(ids, oldest)
    return bisect.bisect_right(ids, last)


def journey_counts(client: redis.Redis, journey_ids: list[str]) -> dict[str, int]:
    """Runs entered, and step outcomes, over every journey."""
    totals: dict[str, int] = {}
    for journey_id in journey_ids:
        for name, value in client.hgetall(STATS_PREFIX + journey_id).items():
            step, _, outcome = name.decode().partition("\x1f")
            if outcome == "waiting":
                continue
            key = "entered" if step == "entry" else outcome
            totals[key] = totals.get(key, 0) + int(value)
    return totals


def entries_by_journey(client: redis.Redis, journey_ids: list[str]) -> dict[str, int]:
    counts = {}
    for journey_id in journey_ids:
        entered = client.hget(STATS_PREFIX + journey_id, "entry\x1fentered")
        counts[journey_id] = int(entered or 0)
    return counts


def worker_stats(client: redis.Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(STATS_KEY).items()}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


# -- 1. events per second ------------------------------------------------------------------


def measure_events(redis_url: str, redis_pid: int, tmp: Path, events: int, people: int,
                   timeout_s: float = 600) -> tuple[dict[str, Any], WorkerProcess]:
    """Pre-fill the stream through the edge, start one worker and time it to the end of
    the stream. Returns the report and the worker, still running (the caller stops it)."""
    config = write_config(tmp / "config-events", journeys())
    generated = make_events(events, people)
    with Edge(config, redis_url) as edge:
        ingest = edge.ingest(generated)
    client = redis.Redis.from_url(redis_url)
    ids = stream_ids(client)
    worker = WorkerProcess(config, redis_url, None, tmp / "worker-events.log").__enter__()
    try:
        first = first_acked = None
        cpu_before = (0.0, 0.0)
        deadline = time.monotonic() + timeout_s
        while True:
            state = group_state(client)
            now = time.perf_counter()
            if state is not None and state[1] != (0, 0):
                acked = acknowledged(ids, state)
                if first is None:
                    first, first_acked = now, acked
                    cpu_before = cpu_seconds(worker.pid), cpu_seconds(redis_pid)
                if state[0] == 0 and state[1] == ids[-1]:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not finish the stream: {state}")
            worker.check()
            time.sleep(POLL_S)
        worker_cpu = cpu_seconds(worker.pid) - cpu_before[0]
        redis_cpu = cpu_seconds(redis_pid) - cpu_before[1]
        assert first is not None and first_acked is not None
        counted = len(ids) - first_acked
        seconds = now - first
        time.sleep(1.2)  # the worker flushes its counters once a second
        entered = journey_counts(client, list(journeys()))
        report = {
            "journeys": len(journeys()), "people": people, "events": len(generated),
            # the events and the edge's own records (exposures) it appended beside them
            "stream_entries": len(ids),
            "mix_per_100_events": {kind: weight for weight, kind in MIX},
            "ingest": ingest,
            "startup_s": round(first - worker.started, 2),
            "timed_events": counted, "seconds": round(seconds, 3),
            "events_per_s": round(counted / seconds) if seconds > 0 else None,
            "worker_cpu_us_per_event": round(worker_cpu / counted * 1e6, 1) if counted else None,
            "redis_cpu_us_per_event": round(redis_cpu / counted * 1e6, 1) if counted else None,
            "runs_started": entered.get("entered", 0),
            "runs_started_per_100_events": round(100 * entered.get("entered", 0) / len(generated), 2),
            "runs_started_by_journey": entries_by_journey(client, list(journeys())),
            "step_outcomes": {k: v for k, v in sorted(entered.items()) if k != "entered"},
            # events that changed some journey state (a run started, ended or moved on)
            "commits_per_100_events": round(
                100 * worker_stats(client).get("commits", 0) / len(generated), 2),
            "worker_counters": worker_stats(client),
        }
    except BaseException:
        worker.__exit__()
        raise
    finally:
        client.close()
    return report, worker


# -- 4. lag at half saturation -------------------------------------------------------------


def feed_entries(client: redis.Redis, count: int) -> list[dict[bytes, bytes]]:
    """`count` copies of the stream's events, each with a new messageId: entries in the
    layout the event script writes (a person id and the normalized event)."""
    originals: list[dict[bytes, bytes]] = []
    start = "-"
    while len(originals) < count:
        items = client.xrange(STREAM, start, "+", count=10_000)
        originals += [fields for _, fields in items if b"k" not in fields]
        if len(items) < 10_000:
            break
        last = parse_id(items[-1][0])
        start = f"{last[0]}-{last[1] + 1}"
    if not originals:
        raise RuntimeError("the stream holds no events to copy")
    out: list[dict[bytes, bytes]] = []
    for i in range(count):
        fields = originals[i % len(originals)]
        event = orjson.loads(fields[b"e"])
        event["messageId"] = f"{event['messageId']}-feed-{i // len(originals)}"
        out.append({b"p": fields[b"p"], b"e": orjson.dumps(event)})
    return out


def measure_lag(redis_url: str, rate: float, duration_s: float, max_length: int = 1_000_000,
                tick_s: float = 0.005, settle_s: float = 60) -> dict[str, Any]:
    """Feed the running worker at `rate` entries/s for `duration_s` (open loop: entries
    are appended on their schedule whatever the worker does) and measure each entry's
    time from its id to its acknowledgement."""
    client = redis.Redis.from_url(redis_url)
    try:
        total = max(1, int(rate * duration_s))
        entries = feed_entries(client, total)
        ids: list[tuple[int, int]] = []
        lags: list[int] = []
        reported: list[int] = []
        done = 0  # entries of `ids` whose acknowledgement was seen
        sent = 0
        started = time.perf_counter()
        next_report = started + 1.0
        end_by = started + duration_s + settle_s

        def poll() -> None:
            nonlocal done
            state = group_state(client)
            seen = wall_ms()
            if state is None:
                return
            upto = acknowledged(ids, state)
            for entry in ids[done:upto]:
                lags.append(seen - entry[0])
            done = max(done, upto)

        while sent < total or done < total:
            now = time.perf_counter()
            due = min(total, int((now - started) * rate) + 1)
            if sent < due:
                pipe = client.pipeline(transaction=False)
                for fields in entries[sent:due]:
                    pipe.xadd(STREAM, fields, maxlen=max_length, approximate=True)
                ids += [parse_id(entry_id) for entry_id in pipe.execute()]
                sent = due
            poll()
            if now >= next_report:  # the worker's own report, written once a second
                value = client.hget(LAG_KEY, "bench-worker")
                if value:
                    reported.append(int(value.split(b",")[0]))
                next_report += 1.0
            if now > end_by:
                raise RuntimeError(f"the worker did not catch up: {done} of {total} acknowledged")
            time.sleep(tick_s)
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    return {
        "rate_per_s": round(rate), "duration_s": duration_s, "entries": total,
        "elapsed_s": round(elapsed, 2),
        "lag_ms": {"p50": percentile(lags, 0.50), "p90": percentile(lags, 0.90),
                   "p99": percentile(lags, 0.99), "max": max(lags, default=0)},
        "poll_interval_ms": tick_s * 1000,
        "worker_reported_stream_lag_ms": {"samples": len(reported),
                                          "p50": percentile(reported, 0.5),
                                          "max": max(reported, default=0)},
    }


# -- 2. timers fired per second ------------------------------------------------------------


def timer_backlog(client: redis.Redis, now_ms: int) -> tuple[int, int, int]:
    """(pending, overdue, leased) over the timer shards, as TimerStore.counts reads them,
    on one plain connection: polled every few milliseconds, it must cost little."""
    keys = TimerStore(client, shards=AutomationSettings().timer_shards)  # for its key names
    pipe = client.pipeline(transaction=False)
    for shard in range(keys.shards):
        pipe.zcard(keys.due_key(shard))
        pipe.zcount(keys.due_key(shard), "-inf", now_ms)
        pipe.zcard(keys.lease_key(shard))
    replies = pipe.execute()
    return sum(replies[0::3]), sum(replies[1::3]), sum(replies[2::3])


def measure_timers(redis_url: str, redis_pid: int, tmp: Path, people: int,
                   timeout_s: float = 600) -> dict[str, Any]:
    """`people` runs waiting a minute; the clock moves past it; time until all fired."""
    config = write_config(tmp / "config-timers", {"cart-nudge": TIMER_JOURNEY})
    clock_file = tmp / "clock-timers"
    start_ms = wall_ms()
    set_clock(clock_file, start_ms)
    with Edge(config, redis_url) as edge:
        ingest = edge.ingest(timer_events(people))
    client = redis.Redis.from_url(redis_url)
    ids = stream_ids(client)
    try:
        with WorkerProcess(config, redis_url, clock_file, tmp / "worker-timers.log") as worker:
            deadline = time.monotonic() + timeout_s
            while True:  # every run entered, waiting on its timer
                state = group_state(client)
                if state is not None and state[0] == 0 and state[1] == ids[-1]:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the worker did not take in the entries")
                worker.check()
                time.sleep(0.05)
            entered_s = time.perf_counter() - worker.started
            scheduled = timer_backlog(client, start_ms)[0]
            if scheduled != people:
                raise RuntimeError(f"{scheduled} timers scheduled for {people} runs")
            fire_at = start_ms + 61_000
            cpu_before = cpu_seconds(worker.pid), cpu_seconds(redis_pid)
            moved = time.perf_counter()
            set_clock(clock_file, fire_at)
            while True:
                pending, overdue, leased = timer_backlog(client, fire_at)
                if overdue == 0 and leased == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"timers not fired: {overdue} overdue, {leased} leased")
                worker.check()
                time.sleep(POLL_S)
            seconds = time.perf_counter() - moved
            worker_cpu = cpu_seconds(worker.pid) - cpu_before[0]
            redis_cpu = cpu_seconds(redis_pid) - cpu_before[1]
            time.sleep(1.2)  # the worker's counters, flushed once a second
            stats = worker_stats(client)
        outcomes = journey_counts(client, ["cart-nudge"])
        return {
            "runs": people, "ingest": ingest, "entries_taken_in_s": round(entered_s, 2),
            "timers_fired": stats.get("timers", 0), "seconds": round(seconds, 3),
            "timers_per_s": round(people / seconds) if seconds > 0 else None,
            "worker_cpu_us_per_timer": round(worker_cpu / people * 1e6, 1),
            "redis_cpu_us_per_timer": round(redis_cpu / people * 1e6, 1),
            "sends": client.xlen(streams.OUTBOX), "step_outcomes": outcomes,
            "left_pending": pending,
        }
    finally:
        client.close()


# -- 3. bytes per pending timer ------------------------------------------------------------


def timer_items(start: int, count: int, now_ms: int) -> list[tuple[str, str, int]]:
    """(person, member, due) of run timers as the runner schedules them: people anonymous
    and known, the 20 journeys, due over the next week."""
    names = list(journeys())
    rng = random.Random(start)
    out = []
    for i in range(start, start + count):
        person = f"user:user-{i}" if i % 10 < 3 else f"anon:anon-{i}"
        member = timer_member(person, run_field(names[i % len(names)], "-"))
        out.append((person, member, now_ms + rng.randrange(7 * 86_400_000)))
    return out


def measure_timer_memory(redis_url: str, count: int, chunk: int = 10_000) -> dict[str, Any]:
    async def fill() -> tuple[int, int, float]:
        client = aioredis.from_url(redis_url)
        try:
            await client.flushdb()
            before = int((await client.info("memory"))["used_memory"])
            store = TimerStore(client, shards=AutomationSettings().timer_shards)
            now = wall_ms()
            started = time.perf_counter()
            for start in range(0, count, chunk):
                await store.schedule_many(timer_items(start, min(chunk, count - start), now))
            seconds = time.perf_counter() - started
            pending = (await store.counts(now)).pending
            after = int((await client.info("memory"))["used_memory"])
            if pending != count:
                raise RuntimeError(f"{pending} timers pending of {count} scheduled")
            return before, after, seconds
        finally:
            await client.aclose()

    before, after, seconds = asyncio.run(fill())
    sample = timer_items(0, 1, 0)[0][1]
    return {"timers": count, "shards": AutomationSettings().timer_shards,
            "member_example_bytes": len(sample.encode()),
            "used_memory_bytes": after - before,
            "bytes_per_timer": round((after - before) / count, 1),
            "schedule_seconds": round(seconds, 2),
            "scheduled_per_s": round(count / seconds) if seconds > 0 else None}


# -- the run -------------------------------------------------------------------------------


def verdicts(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    figures = [
        ("events/s, one worker, 20 journeys", report["events"]["events_per_s"], ">=",
         TARGETS["events_per_s"]),
        ("timers fired/s", report["timers"]["timers_per_s"], ">=", TARGETS["timers_per_s"]),
        (f"bytes per pending timer ({report['timer_memory']['timers']:,})",
         report["timer_memory"]["bytes_per_timer"], "<=", TARGETS["bytes_per_timer"]),
        (f"lag p99 ms at {report['lag']['rate_per_s']:,} events/s",
         report["lag"]["lag_ms"]["p99"], "<", TARGETS["lag_p99_ms"]),
    ]
    for name, value, op, target in figures:
        met = value is not None and (value >= target if op == ">=" else
                                     value <= target if op == "<=" else value < target)
        rows.append({"figure": name, "value": value, "target": f"{op} {target:,}", "met": met})
    return rows


def table(rows: list[dict[str, Any]], lag: dict[str, Any]) -> str:
    lines = [f"{'figure':<44} {'measured':>10} {'target':>10}  met"]
    for row in rows:
        value = row["value"]
        shown = f"{value:,.0f}" if isinstance(value, (int, float)) and value >= 100 else str(value)
        lines.append(f"{row['figure']:<44} {shown:>10} {row['target']:>10}  "
                     f"{'yes' if row['met'] else 'NO'}")
    lines.append(f"{'lag p50 ms':<44} {lag['lag_ms']['p50']:>10}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=60_000, help="events pre-filled (1)")
    parser.add_argument("--people", type=int, default=10_000, help="visitors they come from")
    parser.add_argument("--fire", type=int, default=10_000, help="run timers fired (2)")
    parser.add_argument("--timers", type=int, default=1_000_000,
                        help="pending timers for the memory figure (3)")
    parser.add_argument("--lag-duration", type=float, default=20.0, help="seconds fed (4)")
    parser.add_argument("--lag-rate", type=float, default=None,
                        help="events/s fed (4); default: half the rate measured in (1)")
    parser.add_argument("--name", default="automation", help="results file: <date>-<name>.json")
    args = parser.parse_args()

    started = time.perf_counter()
    report: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "settings": {"events": args.events, "people": args.people, "fire": args.fire,
                     "timers": args.timers, "lag_duration_s": args.lag_duration},
    }
    with tempfile.TemporaryDirectory(prefix="kairos-bench-automation-") as tmp:
        tmp_path = Path(tmp)
        with EmbeddedRedis(tmp_path / "redis-events", persistent=False) as server:
            events, worker = measure_events(server.url, server.pid, tmp_path, args.events,
                                            args.people)
            print(f"events: {events}", file=sys.stderr)
            report["events"] = events
            try:
                rate = args.lag_rate or (events["events_per_s"] or 1) / 2
                report["lag"] = measure_lag(server.url, rate, args.lag_duration)
                print(f"lag: {report['lag']}", file=sys.stderr)
            finally:
                worker.__exit__()
        with EmbeddedRedis(tmp_path / "redis-timers", persistent=False) as server:
            report["timers"] = measure_timers(server.url, server.pid, tmp_path, args.fire)
            print(f"timers: {report['timers']}", file=sys.stderr)
        with EmbeddedRedis(tmp_path / "redis-memory", persistent=False) as server:
            report["timer_memory"] = measure_timer_memory(server.url, args.timers)
            print(f"timer memory: {report['timer_memory']}", file=sys.stderr)
    report["targets"] = verdicts(report)
    report["run_seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{report['date']}-{args.name}.json"
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(table(report["targets"], report["lag"]))
    print(f"run: {report['run_seconds']} s; written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
