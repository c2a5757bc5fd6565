"""Journeys end to end: events through HTTP, a real worker, real Redis, a fake clock."""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from zoneinfo import ZoneInfo
from pathlib import Path

import pytest
import redis

from edge.store.timers import TimerStore
from tests.automation_support import ROOT, ProcessWorker, SharedClock, ThreadWorker, outbox, settled, wait_until
from tests.support import SECRET_KEY, SETTINGS_YAML, LiveEdge, basic, write_config

HOUR = 3_600_000
AUTOMATION = """
automation:
  start: all
  poll_ms: 20
  visibility_ms: 1000
  timer_lease_ms: 2000
"""
ABANDONED_CART = """
id: abandoned-cart
entry: { on: Product Added }
reentry: always
goal: { on: Order Completed, within: 7d }
steps:
  - { id: wait-an-hour, wait: 1h }
  - { id: still-there, if: 'cart.value > 0', else: end }
  - id: remind
    send: { channel: email, title: "Your cart", body: "Hi {{ traits.first_name }}, {{ event.properties.name }} is waiting" }
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


def quiet(client: redis.Redis, clock: SharedClock) -> bool:
    """The worker has handled every event, every timer due by now and every date sweep."""
    if not settled(client):
        return False
    for zone in client.smembers("kairos:cal:zones"):
        local = datetime.fromtimestamp(clock.now_ms() / 1000, ZoneInfo(zone.decode())).date()
        swept = client.get(f"kairos:cal:{{z:{zone.decode()}}}:swept")
        if swept is None or swept.decode() < local.isoformat():
            return False
    counts = _timer_counts(client, clock.now_ms())
    return counts.overdue == 0 and counts.leased == 0


def _timer_counts(client: redis.Redis, now: int):
    import asyncio

    import redis.asyncio as aioredis

    async def read():
        async_client = aioredis.from_url(client.connection_pool.connection_kwargs.get("path") and "" or
                                         f"redis://{client.connection_pool.connection_kwargs['host']}:"
                                         f"{client.connection_pool.connection_kwargs['port']}/0")
        try:
            return await TimerStore(async_client).counts(now)
        finally:
            await async_client.aclose()
    return asyncio.run(read())


@pytest.fixture
def clock(tmp_path: Path) -> SharedClock:
    return SharedClock(tmp_path / "clock")


def add_to_cart(edge: LiveEdge, user: str, price: float = 20.0) -> None:
    answer = edge.post("/v1/track", {"userId": user, "event": "Product Added", "properties": {
        "product_id": "p1", "name": "Red shoe", "price": price, "quantity": 1}})
    assert answer.status_code == 200, answer.text


def test_abandoned_cart_reminds_after_an_hour_unless_purchased(tmp_path, redis_url, redis_client, clock):
    config = automation_config(tmp_path / "config", {"abandoned-cart": ABANDONED_CART})
    with LiveEdge(config, redis_url, clock=clock) as edge, ThreadWorker(config, redis_url, clock):
        edge.post("/v1/identify", {"userId": "eva", "traits": {"first_name": "Eva", "email": "eva@example.com"}})
        edge.post("/v1/identify", {"userId": "jan", "traits": {"first_name": "Jan", "email": "jan@example.com"}})
        add_to_cart(edge, "eva")
        add_to_cart(edge, "jan")
        wait_until(lambda: quiet(redis_client, clock), what="the entries")
        clock.advance(30 * 60_000)
        edge.post("/v1/track", {"userId": "jan", "event": "Order Completed", "properties": {
            "order_id": "o1", "revenue": 20.0, "products": [{"product_id": "p1", "price": 20.0, "quantity": 1}]}})
        wait_until(lambda: quiet(redis_client, clock), what="the order")
        assert outbox(redis_client) == []  # nothing before the hour
        clock.advance(30 * 60_000 - 1)
        wait_until(lambda: quiet(redis_client, clock), what="just before the hour")
        assert outbox(redis_client) == []
        clock.advance(1)
        sent = wait_until(lambda: outbox(redis_client), what="the reminder")
        wait_until(lambda: quiet(redis_client, clock), what="the reminder's timers")
        clock.advance(8 * 24 * HOUR)
        wait_until(lambda: quiet(redis_client, clock), what="the goal window")
    sent = outbox(redis_client)
    assert [(m.channel, m.journey, m.step, m.body) for m in sent] == [
        ("email", "abandoned-cart", "remind", "Hi Eva, Red shoe is waiting")]
    assert sent[0].profile_id.startswith("user:eva")


WELCOME = """
id: welcome
entry: { on: Signed Up }
steps:
  - { id: hello, send: { channel: email, body: "Welcome" } }
  - id: first-order
    wait_for: { on: Order Completed }
    timeout: 2d
    on_timeout: nudge
  - { id: thanks, send: { channel: email, body: "Thanks for your order" }, }
  - { id: done, exit: true }
  - { id: nudge, send: { channel: email, body: "10% off your first order" } }
"""


def signed_up(edge: LiveEdge, user: str, **traits: object) -> None:
    edge.post("/v1/identify", {"userId": user, "traits": {"email": f"{user}@example.com", **traits}})
    assert edge.post("/v1/track", {"userId": user, "event": "Signed Up"}).status_code == 200


def order(edge: LiveEdge, user: str) -> None:
    answer = edge.post("/v1/track", {"userId": user, "event": "Order Completed", "properties": {
        "order_id": f"o-{user}", "revenue": 20.0}})
    assert answer.status_code == 200, answer.text


def bodies(client: redis.Redis) -> list[tuple[str, str]]:
    return sorted((m.profile_id, m.body) for m in outbox(client))


def test_a_wait_for_an_event_takes_the_timeout_branch_when_it_does_not_come(
        tmp_path, redis_url, redis_client, clock):
    config = automation_config(tmp_path / "config", {"welcome": WELCOME})
    with LiveEdge(config, redis_url, clock=clock) as edge, ThreadWorker(config, redis_url, clock):
        signed_up(edge, "ann")
        signed_up(edge, "bob")
        wait_until(lambda: quiet(redis_client, clock), what="the sign-ups")
        clock.advance(24 * HOUR)
        order(edge, "ann")
        wait_until(lambda: quiet(redis_client, clock), what="ann's order")
        assert bodies(redis_client) == [("user:ann", "Thanks for your order"), ("user:ann", "Welcome"),
                                        ("user:bob", "Welcome")]
        clock.advance(24 * HOUR - 1)
        wait_until(lambda: quiet(redis_client, clock), what="a moment before the timeout")
        assert len(outbox(redis_client)) == 3
        clock.advance(1)
        wait_until(lambda: len(outbox(redis_client)) == 4, what="the nudge")
        wait_until(lambda: quiet(redis_client, clock), what="the end")
    assert bodies(redis_client) == [("user:ann", "Thanks for your order"), ("user:ann", "Welcome"),
                                    ("user:bob", "10% off your first order"), ("user:bob", "Welcome")]
    assert redis_client.keys("{p:*}:j") == [] or all(
        not any(k.startswith(b"r\x1f") for k in redis_client.hkeys(key))
        for key in redis_client.keys("{p:*}:j"))  # every run ended


NAME_DAY = """
id: name-day
entry: { date: name_day }
steps:
  - { id: nine, wait_until: { time: "09:00" } }
  - { id: greet, send: { channel: email, title: "Happy name day, {{ traits.first_name }}!", body: "A gift inside" } }
"""


def test_a_name_day_greeting_goes_at_nine_in_each_persons_zone(tmp_path, redis_url, redis_client, clock):
    from datetime import datetime, timezone

    def at(text: str) -> int:
        return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)

    config = automation_config(tmp_path / "config", {"name-day": NAME_DAY})
    clock.set(at("2026-10-16T12:00:00"))
    with LiveEdge(config, redis_url, clock=clock) as edge, ThreadWorker(config, redis_url, clock):
        edge.post("/v1/identify", {"userId": "lukas-prague", "traits": {
            "first_name": "Lukáš", "country": "CZ", "timezone": "Europe/Prague", "email": "l1@example.com"}})
        edge.post("/v1/identify", {"userId": "lukas-ny", "traits": {
            "first_name": "Lukas", "country": "CZ", "timezone": "America/New_York", "email": "l2@example.com"}})
        edge.post("/v1/identify", {"userId": "petr", "traits": {
            "first_name": "Petr", "country": "CZ", "timezone": "Europe/Prague", "email": "p@example.com"}})
        wait_until(lambda: quiet(redis_client, clock), what="the identifies")
        # hour by hour through the name day (18 October) in both zones
        sent_at: dict[str, int] = {}
        for hour in range(0, 48):
            clock.set(at("2026-10-17T12:00:00") + hour * HOUR)
            wait_until(lambda: quiet(redis_client, clock), what=f"hour {hour}")
            for message in outbox(redis_client):
                sent_at.setdefault(message.profile_id, message.timestamp)
    assert sent_at == {"user:lukas-prague": at("2026-10-18T07:00:00"),   # 09:00 CEST
                       "user:lukas-ny": at("2026-10-18T13:00:00")}       # 09:00 EDT
    assert {m.title for m in outbox(redis_client)} == {"Happy name day, Lukáš!", "Happy name day, Lukas!"}


REMINDER_V1 = """
id: reminder
entry: { on: Signed Up }
steps:
  - { id: wait, wait: 1h }
  - { id: remind, send: { channel: email, body: "version one" } }
"""
REMINDER_V2 = """
id: reminder
entry: { on: Signed Up }
steps:
  - { id: wait-longer, wait: 2h }
  - { id: remind-again, send: { channel: email, body: "version two" } }
"""


def test_a_journey_edited_while_people_wait_keeps_each_run_on_its_version(
        tmp_path, redis_url, redis_client, clock):
    config = automation_config(tmp_path / "config", {"reminder": REMINDER_V1})
    with LiveEdge(config, redis_url, clock=clock) as edge, ThreadWorker(config, redis_url, clock):
        signed_up(edge, "early")
        wait_until(lambda: quiet(redis_client, clock), what="the first entry")
        (config / "journeys" / "reminder.yaml").write_text(REMINDER_V2)
        wait_until(lambda: redis_client.hlen("kairos:journey-docs") == 2, what="the reload")
        signed_up(edge, "late")
        wait_until(lambda: quiet(redis_client, clock), what="the second entry")
        clock.advance(HOUR)
        wait_until(lambda: quiet(redis_client, clock), what="an hour")
        assert bodies(redis_client) == [("user:early", "version one")]
        # a broken edit never replaces the running journeys
        (config / "journeys" / "reminder.yaml").write_text(REMINDER_V2.replace("wait: 2h", "wait: soon"))
        time.sleep(1.5)
        clock.advance(HOUR)
        wait_until(lambda: len(outbox(redis_client)) == 2, what="the second version's send")
    assert bodies(redis_client) == [("user:early", "version one"), ("user:late", "version two")]


def test_a_worker_killed_mid_flow_loses_nothing_and_sends_nothing_twice(
        tmp_path, redis_url, redis_client, clock):
    config = automation_config(tmp_path / "config", {"reminder": REMINDER_V1})
    people = [f"p{n}" for n in range(60)]
    first = ProcessWorker(config, redis_url, clock, "first").start()
    second = ProcessWorker(config, redis_url, clock, "second").start()
    try:
        with LiveEdge(config, redis_url, clock=clock) as edge:
            wait_until(lambda: redis_client.exists("kairos:journey-docs"), what="the workers")
            for person in people:
                signed_up(edge, person)
            first.kill()  # mid-batch: what it held stays pending until the visibility timeout
            wait_until(lambda: quiet(redis_client, clock), timeout_s=20, what="every entry")
            clock.advance(HOUR)
            time.sleep(0.05)
            second.kill()  # mid-flow: timers it leased come back after the lease
            third = ProcessWorker(config, redis_url, clock, "third").start()
            try:
                wait_until(lambda: len(outbox(redis_client)) >= len(people), timeout_s=30,
                           what="every reminder")
                wait_until(lambda: quiet(redis_client, clock), timeout_s=20, what="the end")
            finally:
                third.stop()
    finally:
        first.stop()
        second.stop()
    sent = outbox(redis_client)
    assert sorted(m.profile_id for m in sent) == sorted(f"user:{p}" for p in people)
    assert len({m.message_id for m in sent}) == len(people)


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


def test_sends_held_back_by_quiet_hours_and_by_a_cap_go_out_when_allowed(
        tmp_path, redis_url, redis_client, clock):
    from datetime import datetime, timezone

    config = automation_config(tmp_path / "config", {"digest": DIGEST})
    (config / "rules" / "policy.yaml").write_text(POLICY)
    # 22:30 in Prague (CET, UTC+1): quiet hours
    clock.set(int(datetime(2026, 1, 5, 21, 30, tzinfo=timezone.utc).timestamp() * 1000))
    with LiveEdge(config, redis_url, clock=clock) as edge, ThreadWorker(config, redis_url, clock):
        signed_up(edge, "night-owl")
        wait_until(lambda: quiet(redis_client, clock), what="the sign-up")
        assert outbox(redis_client) == []
        run = edge.profile("user:night-owl").json()["journeys"]["runs"][0]
        assert run["deferred"]["reason"] == "quiet_hours"
        eight = int(datetime(2026, 1, 6, 7, 0, tzinfo=timezone.utc).timestamp() * 1000)
        assert run["next_wake_up"] == eight
        clock.set(eight - 1)
        wait_until(lambda: quiet(redis_client, clock), what="just before eight")
        assert outbox(redis_client) == []
        clock.set(eight)
        wait_until(lambda: len(outbox(redis_client)) == 1, what="the welcome at eight")
        wait_until(lambda: quiet(redis_client, clock), what="the tip held back by the cap")
        run = edge.profile("user:night-owl").json()["journeys"]["runs"][0]
        assert run["deferred"]["reason"] == "cap"
        assert run["next_wake_up"] == eight + 24 * HOUR + 1
        clock.set(eight + 24 * HOUR + 1)
        wait_until(lambda: len(outbox(redis_client)) == 2, what="the tip a day later")
    assert [(m.body, m.timestamp) for m in outbox(redis_client)] == [
        ("welcome", eight), ("a tip", eight + 24 * HOUR + 1)]


def test_metrics_show_the_workers_throughput_lag_and_pending_counts(
        tmp_path, redis_url, redis_client, clock):
    config = automation_config(tmp_path / "config", {"welcome": WELCOME})
    with LiveEdge(config, redis_url, clock=clock) as edge, ThreadWorker(config, redis_url, clock):
        for person in ("m1", "m2", "m3"):
            signed_up(edge, person)
        wait_until(lambda: quiet(redis_client, clock), what="the sign-ups")
        def scraped() -> dict[str, float]:
            text = edge.http.get("/metrics", headers=basic(SECRET_KEY)).text
            return {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
                    if line.startswith("kairos_automation_")}
        figures = wait_until(lambda: (f := scraped()).get("kairos_automation_sends_total") == 3 and f,
                             what="the flushed counters")
    assert figures["kairos_automation_events_total"] == 6   # three identifies, three sign-ups
    assert figures["kairos_automation_commits_total"] == 3
    assert figures["kairos_automation_workers"] == 1
    assert figures["kairos_automation_stream_pending"] == 0
    assert figures["kairos_automation_timers_pending"] == 3    # each waits for a first order
    assert figures["kairos_automation_timers_overdue"] == 0
    assert 'kairos_automation_stream_lag_seconds{worker="w1"}' in figures


BROWSERS = """
id: browsers
entry: { segment: viewer }
steps:
  - { id: hello, send: { channel: email, body: "You like looking around" } }
"""
PRICE_DROP = """
id: price-drop
entry: { catalog: price_dropped, viewed_within: 7d }
steps:
  - id: tell
    send: { channel: email, body: "{{ event.properties.name }} is now {{ event.properties.new_price }}" }
"""


def view(edge: LiveEdge, user: str, product: str) -> None:
    answer = edge.post("/v1/track", {"userId": user, "event": "Product Viewed",
                                     "properties": {"product_id": product, "name": product}})
    assert answer.status_code == 200, answer.text


def test_entering_a_segment_and_a_price_drop_of_a_viewed_product_start_journeys(
        tmp_path, redis_url, redis_client, clock):
    config = automation_config(tmp_path / "config", {"browsers": BROWSERS, "price-drop": PRICE_DROP})
    settings = (config / "kairos.yaml").read_text()
    (config / "kairos.yaml").write_text(settings.replace("admin, metrics]", "admin, metrics, catalog:write]"))
    with LiveEdge(config, redis_url, clock=clock) as edge, ThreadWorker(config, redis_url, clock):
        for user in ("looker", "glancer"):
            edge.post("/v1/identify", {"userId": user, "traits": {"email": f"{user}@example.com"}})
        product = {"id": "lamp", "name": "Desk lamp", "price": 40.0, "currency": "EUR"}
        assert edge.http.put("/v1/catalog/products", json=[product],
                             headers=basic(SECRET_KEY)).status_code == 200
        for _ in range(3):
            view(edge, "looker", "lamp")  # the third view puts her in the segment `viewer`
        clock.advance(8 * 24 * HOUR)
        view(edge, "glancer", "lamp")
        wait_until(lambda: quiet(redis_client, clock), what="the views")
        assert bodies(redis_client) == [("user:looker", "You like looking around")]
        cheaper = {**product, "sale_price": 30.0}
        assert edge.http.put("/v1/catalog/products", json=[cheaper],
                             headers=basic(SECRET_KEY)).status_code == 200
        wait_until(lambda: len(outbox(redis_client)) == 2, what="the price drop")
        wait_until(lambda: quiet(redis_client, clock), what="the end")
    # looker's views are older than a week: only glancer hears of the drop
    assert bodies(redis_client) == [("user:glancer", "Desk lamp is now 30.0"),
                                    ("user:looker", "You like looking around")]


def test_erasing_a_person_removes_their_runs_timers_and_calendar_entries(
        tmp_path, redis_url, redis_client, clock):
    config = automation_config(tmp_path / "config", {"welcome": WELCOME, "name-day": NAME_DAY,
                                                     "price-drop": PRICE_DROP})
    with LiveEdge(config, redis_url, clock=clock) as edge, ThreadWorker(config, redis_url, clock):
        signed_up(edge, "gone", first_name="Petr", country="CZ")
        view(edge, "gone", "lamp")
        wait_until(lambda: quiet(redis_client, clock), what="the sign-up")
        assert edge.profile("user:gone").json()["journeys"]["runs"]
        assert any(redis_client.smembers(k) for k in redis_client.keys("kairos:cal:{z:*}:name-day:*"))
        assert redis_client.zcard("kairos:viewers:{v:lamp}") == 1
        assert edge.http.delete("/v1/profiles/user:gone", headers=basic(SECRET_KEY)).status_code == 200
    leftovers = [key for key in redis_client.keys("*")
                 if b"gone" in key or any(b"gone" in m for m in _members(redis_client, key))]
    assert leftovers == []


def _members(client: redis.Redis, key: bytes) -> list[bytes]:
    kind = client.type(key)
    if kind == b"zset":
        return client.zrange(key, 0, -1)
    if kind == b"set":
        return list(client.smembers(key))
    if kind == b"hash":
        return [*client.hkeys(key), *client.hvals(key)]
    return []


def test_traits_given_in_the_context_of_any_call_index_a_persons_dates():
    from edge.worker.calendar_sweep import dates_may_change
    from rules.journey_schema import read_journeys
    from rules.journeys import JourneyBook

    book = JourneyBook(read_journeys([("n.yaml", NAME_DAY)])[0])
    assert dates_may_change(book, {"type": "track", "context": {"traits": {"first_name": "Eva"}}})
    assert dates_may_change(book, {"type": "identify", "traits": {"timezone": "Europe/Oslo"}})
    assert not dates_may_change(book, {"type": "track", "context": {"traits": {"plan": "pro"}}})
    assert not dates_may_change(book, {"type": "page", "properties": {"first_name": "Eva"}})
    assert not dates_may_change(JourneyBook([]), {"type": "identify", "traits": {"first_name": "Eva"}})
