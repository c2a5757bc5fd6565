"""The scenario pack as shipped (config/scenarios/), end to end: events through the edge's
HTTP API, a real worker and Redis, a fake clock moved from one due timer to the next:
the right message on the right channel at the right local time, and the exits hold."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis

from edge.runtime.config import load_settings
from edge.store.timers import TimerStore
from edge.worker.simulate import events_from_stream, simulate
from tests.automation_support import ROOT, SharedClock, ThreadWorker, outbox, wait_until
from tests.channel_servers import SmtpCatcher
from tests.support import SECRET_KEY, SETTINGS_YAML, LiveEdge, basic, write_config
from tests.test_automation import AUTOMATION, quiet

PRAGUE = ZoneInfo("Europe/Prague")
HOUR = 3_600_000
DAY = 24 * HOUR


def local(text: str, zone: ZoneInfo = PRAGUE) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=zone).timestamp() * 1000)


def local_time(ms: int, zone: ZoneInfo = PRAGUE) -> str:
    return datetime.fromtimestamp(ms / 1000, zone).strftime("%a %H:%M")


@pytest.fixture
def clock(tmp_path: Path) -> SharedClock:
    return SharedClock(tmp_path / "clock", start_ms=local("2026-03-02T09:00:00"))  # a Monday


@pytest.fixture
def smtp() -> Iterator[SmtpCatcher]:
    with SmtpCatcher() as server:
        yield server


@pytest.fixture
def config(tmp_path: Path, smtp: SmtpCatcher) -> Path:
    """The test site with the shipped scenarios, rules and name-day calendars; email is
    delivered to a real SMTP server."""
    settings = SETTINGS_YAML.replace(
        "timezone: Europe/Prague",
        "timezone: Europe/Prague\n    email_from: Shop <shop@shop.test>\n"
        "    consent_defaults: { marketing: true, email: true }")
    settings = settings.replace("admin, metrics]", "admin, metrics, catalog:write]")
    delivery = f"""
delivery:
  visibility_ms: 1000
  backoff_ms: 1000
  email: {{ host: 127.0.0.1, port: {smtp.port}, pool: 1 }}
"""
    target = write_config(tmp_path / "config", settings_yaml=settings + AUTOMATION + delivery)
    for folder in ("scenarios", "namedays"):
        shutil.copytree(ROOT / "config" / folder, target / folder)
    return target


def next_due(client: redis.Redis) -> int | None:
    store = TimerStore(None, shards=8)  # type: ignore[arg-type]  # for its key names
    found = [client.zrange(store.due_key(shard), 0, 0, withscores=True) for shard in range(8)]
    return min((int(first[0][1]) for first in found if first), default=None)


def run_until(client: redis.Redis, clock: SharedClock, end_ms: int) -> None:
    """Move the clock to each due timer in turn (so each fires on its time), then to
    `end_ms`, letting the worker finish what each moment asks."""
    while True:
        wait_until(lambda: quiet(client, clock), what="the worker")
        due = next_due(client)
        if due is None or due > end_ms:
            clock.set(end_ms)
            wait_until(lambda: quiet(client, clock), what="the worker")
            return
        clock.set(max(due, clock.now_ms()))


def sent(client: redis.Redis, journey: str | None = None) -> list[tuple[str, str, str, str]]:
    """(person, channel, title, local time) of every message queued (by `journey`), in order."""
    return [(m.profile_id, m.channel, m.title or "", local_time(m.timestamp))
            for m in outbox(client) if journey is None or m.journey == journey]


@contextmanager
def scenario(config: Path, redis_url: str, client: redis.Redis, clock: SharedClock,
             smtp: SmtpCatcher) -> Iterator[LiveEdge]:
    """The edge and a worker. Before they stop, every email queued must have reached
    the SMTP server, to its person, under its title."""
    with LiveEdge(config, redis_url, clock=clock) as edge, ThreadWorker(config, redis_url, clock):
        yield edge
        queued = sorted((f"{m.profile_id.removeprefix('user:')}@example.com", m.title or "")
                        for m in outbox(client) if m.channel == "email")
        wait_until(lambda: len(smtp.messages) >= len(queued), what="the emails delivered")
        assert sorted((parseaddr(str(m["To"]))[1], str(m["Subject"]))
                      for m in smtp.messages) == queued


def simulation_agrees(config: Path, redis_url: str, client: redis.Redis, journey: str,
                      start: int, end: int) -> None:
    """`kairos simulate` over the stream the live run recorded sends what the live run
    sent: the same people, channels, titles and times."""
    settings = load_settings(config)
    report = simulate(settings, journey, start, end,
                      events_from_stream(redis_url, settings.stream.key, start, end))
    live = [(m.profile_id, m.channel, m.title, m.timestamp) for m in outbox(client)
            if m.journey == journey]
    assert live, "the live run sent nothing to compare"
    # sends due at one moment leave in any order
    assert sorted((s.profile_id, s.channel, s.title, s.at) for s in report.sends) == sorted(live)


def identify(edge: LiveEdge, user: str, **traits: object) -> None:
    answer = edge.post("/v1/identify", {"userId": user, "traits": {
        "email": f"{user}@example.com", **traits}})
    assert answer.status_code == 200, answer.text


def track(edge: LiveEdge, user: str, event: str, **properties: object) -> None:
    answer = edge.track(event, userId=user, properties=properties)
    assert answer.status_code == 200, answer.text


def test_the_pack_passes_kairos_check(config: Path) -> None:
    import subprocess
    import sys

    answer = subprocess.run([sys.executable, "-m", "edge.cli", "check", str(config)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert answer.returncode == 0, answer.stderr
    journeys = sorted(p.parent.name for p in (config / "scenarios").glob("*/journey*.yaml"))
    assert f"{len(journeys)} journeys" in answer.stdout


def test_01_welcome_series_stops_at_the_first_order(config, redis_url, redis_client, clock, smtp):
    with scenario(config, redis_url, redis_client, clock, smtp) as edge:
        for user in ("ann", "ben"):
            identify(edge, user, first_name=user.title())
            track(edge, user, "Signed Up")
        run_until(redis_client, clock, local("2026-03-04T12:00:00"))
        track(edge, "ben", "Order Completed", order_id="b-1", revenue=20)  # after the tips
        run_until(redis_client, clock, local("2026-03-12T12:00:00"))
    simulation_agrees(config, redis_url, redis_client, "welcome-series",
                      local("2026-03-02T00:00:00"), local("2026-03-12T12:00:00"))
    assert sent(redis_client, "welcome-series") == [
        ("user:ann", "email", "Welcome to the shop", "Mon 09:00"),
        ("user:ben", "email", "Welcome to the shop", "Mon 09:00"),
        ("user:ann", "email", "Three things our customers love", "Wed 10:00"),
        ("user:ben", "email", "Three things our customers love", "Wed 10:00"),
        ("user:ann", "email", "10% off your first order", "Mon 10:00"),
    ]


def test_02_abandoned_cart_reminds_after_an_hour_unless_ordered(config, redis_url,
                                                                redis_client, clock, smtp):
    with scenario(config, redis_url, redis_client, clock, smtp) as edge:
        for user in ("cas", "dan"):
            identify(edge, user, first_name=user.title())
            track(edge, user, "Product Added", product_id="lamp", name="Desk lamp", price=40,
                  quantity=1)
        wait_until(lambda: quiet(redis_client, clock), what="the carts")
        clock.advance(30 * 60_000)
        track(edge, "dan", "Order Completed", order_id="d-1", revenue=40,
              products=[{"product_id": "lamp", "price": 40, "quantity": 1}])
        run_until(redis_client, clock, local("2026-03-02T12:00:00"))
    simulation_agrees(config, redis_url, redis_client, "abandoned-cart",
                      local("2026-03-02T00:00:00"), local("2026-03-02T12:00:00"))
    assert sent(redis_client, "abandoned-cart") == [
        ("user:cas", "email", "Still thinking about Desk lamp?", "Mon 10:00")]


def test_04_name_day_greets_at_nine_in_the_persons_zone(config, redis_url, redis_client, clock, smtp):
    new_york = ZoneInfo("America/New_York")
    clock.set(local("2026-10-16T12:00:00"))
    with scenario(config, redis_url, redis_client, clock, smtp) as edge:
        identify(edge, "lukas-prague", first_name="Lukáš", country="CZ",
                 timezone="Europe/Prague")
        identify(edge, "lukas-ny", first_name="Lukas", country="CZ", timezone="America/New_York")
        identify(edge, "petr", first_name="Petr", country="CZ", timezone="Europe/Prague")
        for hour in range(48):  # hour by hour through 18 October in both zones
            clock.set(local("2026-10-17T12:00:00") + hour * HOUR)
            wait_until(lambda: quiet(redis_client, clock), what=f"hour {hour}")
    simulation_agrees(config, redis_url, redis_client, "name-day",
                      local("2026-10-16T00:00:00"), local("2026-10-19T12:00:00"))
    greetings = {m.profile_id: m for m in outbox(redis_client)}
    assert set(greetings) == {"user:lukas-prague", "user:lukas-ny"}
    assert local_time(greetings["user:lukas-prague"].timestamp) == "Sun 09:00"
    assert local_time(greetings["user:lukas-ny"].timestamp, new_york) == "Sun 09:00"
    assert greetings["user:lukas-prague"].title == "Happy name day, Lukáš!"


def test_05_registration_anniversary_a_year_later_at_the_fallback_hour(
        config, redis_url, redis_client, clock, smtp):
    clock.set(local("2027-03-01T12:00:00"))
    with scenario(config, redis_url, redis_client, clock, smtp) as edge:
        identify(edge, "eva", first_name="Eva", created_at="2026-03-02T08:30:00Z")
        for hour in range(36):
            clock.set(local("2027-03-01T23:00:00") + hour * HOUR)
            wait_until(lambda: quiet(redis_client, clock), what=f"hour {hour}")
    simulation_agrees(config, redis_url, redis_client, "registration-anniversary",
                      local("2027-03-01T00:00:00"), local("2027-03-03T12:00:00"))
    assert sent(redis_client) == [("user:eva", "email", "Another year together, Eva",
                                   "Tue 10:00")]


def test_06_review_request_a_week_after_delivery_unless_reviewed(config, redis_url,
                                                                 redis_client, clock, smtp):
    with scenario(config, redis_url, redis_client, clock, smtp) as edge:
        for user in ("fay", "gus"):
            identify(edge, user)
            track(edge, user, "Order Delivered", order_id=f"{user}-1")
        wait_until(lambda: quiet(redis_client, clock), what="the deliveries")
        clock.advance(3 * DAY)
        track(edge, "gus", "Review Submitted", order_id="gus-1", rating=5)
        run_until(redis_client, clock, local("2026-03-12T12:00:00"))
    simulation_agrees(config, redis_url, redis_client, "review-request",
                      local("2026-03-02T00:00:00"), local("2026-03-12T12:00:00"))
    assert sent(redis_client) == [("user:fay", "email", "How is your order fay-1?", "Mon 10:00")]


def put_products(edge: LiveEdge, *products: dict) -> None:
    answer = edge.http.put("/v1/catalog/products", json=list(products), headers=basic(SECRET_KEY))
    assert answer.status_code == 200, answer.text


def test_12_back_in_stock_tells_who_looked_while_sold_out_once(config, redis_url,
                                                               redis_client, clock, smtp):
    sold_out = {"id": "boot", "name": "Trail boot", "price": 120.0, "currency": "EUR",
                "stock": 0}
    with scenario(config, redis_url, redis_client, clock, smtp) as edge:
        put_products(edge, sold_out)
        identify(edge, "hal")
        track(edge, "hal", "Product Viewed", product_id="boot", name="Trail boot")
        wait_until(lambda: quiet(redis_client, clock), what="the view")
        put_products(edge, {**sold_out, "stock": 4})
        wait_until(lambda: outbox(redis_client), what="the alert")
        put_products(edge, {**sold_out, "stock": 3})  # still in stock: nothing new
        wait_until(lambda: quiet(redis_client, clock), what="the worker")
    simulation_agrees(config, redis_url, redis_client, "back-in-stock",
                      local("2026-03-02T00:00:00"), local("2026-03-03T12:00:00"))
    assert sent(redis_client) == [("user:hal", "email", "Trail boot is back", "Mon 09:00")]
    assert "4 left" in outbox(redis_client)[0].body


def test_13_price_drop_alert_names_the_old_and_the_new_price(config, redis_url, redis_client,
                                                             clock, smtp):
    lamp = {"id": "lamp", "name": "Desk lamp", "price": 40.0, "currency": "EUR"}
    with scenario(config, redis_url, redis_client, clock, smtp) as edge:
        put_products(edge, lamp)
        identify(edge, "ida")
        track(edge, "ida", "Product Viewed", product_id="lamp", name="Desk lamp")
        wait_until(lambda: quiet(redis_client, clock), what="the view")
        put_products(edge, {**lamp, "sale_price": 30.0})
        wait_until(lambda: outbox(redis_client), what="the alert")
    simulation_agrees(config, redis_url, redis_client, "price-drop",
                      local("2026-03-02T00:00:00"), local("2026-03-03T12:00:00"))
    [alert] = outbox(redis_client)
    assert (alert.profile_id, alert.title) == ("user:ida", "Desk lamp is now cheaper")
    assert alert.body == "Desk lamp: 40.0 EUR, now 30.0 EUR."


def day_by_day(client: redis.Redis, clock: SharedClock, first: str, days: int) -> None:
    """From local midnight of `first` on, a day at a time: each day's date sweep at its
    start, then its timers each on its time."""
    start = local(f"{first}T00:05:00")
    for day in range(days):
        clock.set(max(clock.now_ms(), start + day * DAY))
        run_until(client, clock, start + (day + 1) * DAY - 10 * 60_000)


def test_15_renewal_reminds_a_month_and_a_week_before_until_renewed(config, redis_url,
                                                                   redis_client, clock, smtp):
    # a one-off date's index expires on Redis's own clock a few days after the date:
    # these dates lie ahead of any real today
    clock.set(local("2030-03-01T12:00:00"))
    with scenario(config, redis_url, redis_client, clock, smtp) as edge:
        for user in ("lea", "max"):
            identify(edge, user, subscription_end="2030-04-15")
        day_by_day(redis_client, clock, "2030-03-02", 20)  # through 21 March
        track(edge, "max", "Subscription Renewed", plan="yearly")
        day_by_day(redis_client, clock, "2030-03-22", 30)
    simulation_agrees(config, redis_url, redis_client, "renewal",
                      local("2030-03-01T00:00:00"), local("2030-04-21T12:00:00"))
    assert sent(redis_client) == [
        ("user:lea", "email", "Your subscription ends on 2030-04-15", "Sat 10:00"),
        ("user:max", "email", "Your subscription ends on 2030-04-15", "Sat 10:00"),
        ("user:lea", "email", "One week left", "Mon 10:00"),
    ]
    assert [datetime.fromtimestamp(m.timestamp / 1000, PRAGUE).date().isoformat()
            for m in outbox(redis_client)] == ["2030-03-16", "2030-03-16", "2030-04-08"]


def test_17_win_back_after_ninety_days_without_an_order(config, redis_url, redis_client, clock, smtp):
    with scenario(config, redis_url, redis_client, clock, smtp) as edge:
        for user in ("kim", "ned"):
            identify(edge, user, first_name=user.title())
            track(edge, user, "Order Completed", order_id=f"{user}-1", revenue=30)
        wait_until(lambda: quiet(redis_client, clock), what="the orders")
        clock.set(local("2026-05-01T12:00:00"))  # 60 days on, ned orders again
        track(edge, "ned", "Order Completed", order_id="ned-2", revenue=30)
        run_until(redis_client, clock, local("2026-06-15T12:00:00"))
    simulation_agrees(config, redis_url, redis_client, "win-back",
                      local("2026-03-02T00:00:00"), local("2026-06-15T12:00:00"))
    assert sent(redis_client, "win-back") == [("user:kim", "email", "We miss you, Kim", "Sun 10:00"),
                                  ("user:kim", "email", "15% to welcome you back", "Sun 10:00")]
    assert [datetime.fromtimestamp(m.timestamp / 1000, PRAGUE).date().isoformat()
            for m in outbox(redis_client) if m.journey == "win-back"] == ["2026-05-31", "2026-06-07"]


def test_10_upsell_shows_the_next_tier_in_the_same_answer(config, redis_url, clock):
    base = {"name": "Road shoe", "currency": "EUR", "category": "Shoes > Running", "stock": 5}
    with LiveEdge(config, redis_url, clock=clock) as edge:
        put_products(edge, {**base, "id": "road", "price": 100.0, "url": "https://shop.test/road"},
                     {**base, "id": "tempo", "name": "Tempo shoe", "price": 120.0,
                      "url": "https://shop.test/tempo"},
                     {**base, "id": "race", "name": "Race shoe", "price": 112.0, "stock": 0,
                      "url": "https://shop.test/race"})
        answer = edge.track("Product Viewed", userId="ona",
                            properties={"product_id": "road", "name": "Road shoe"})
        assert answer.status_code == 200, answer.text
        slot = answer.json()["slots"]["recommendations"]
        assert slot["rule"] == "upsell-next-tier"
        assert 'href="https://shop.test/tempo"' in slot["html"]  # the sold-out one is passed over
        assert "Tempo shoe" in slot["html"] and "120" in slot["html"]
        top = edge.track("Product Viewed", userId="ona",
                         properties={"product_id": "tempo", "name": "Tempo shoe"})
        assert "recommendations" not in top.json()["slots"]  # nothing dearer in stock


def test_11_loyalty_points_reminder_before_they_expire(config, redis_url, redis_client, clock, smtp):
    clock.set(local("2030-05-01T12:00:00"))  # one-off dates ahead of any real today
    with scenario(config, redis_url, redis_client, clock, smtp) as edge:
        identify(edge, "pia", points=420, points_expire_on="2030-05-31")
        identify(edge, "rob", points=0, points_expire_on="2030-05-31")  # nothing to remind of
        identify(edge, "sue", points=80, points_expire_on="2030-05-31")
        track(edge, "sue", "Points Redeemed", points=80)
        identify(edge, "sue", points=0)
        day_by_day(redis_client, clock, "2030-05-15", 3)
    simulation_agrees(config, redis_url, redis_client, "loyalty-points",
                      local("2030-05-01T00:00:00"), local("2030-05-18T12:00:00"))
    assert sent(redis_client) == [("user:pia", "email", "420 points expire on 2030-05-31",
                                   "Fri 10:00")]


def test_14_after_sales_care_tips_wait_while_a_ticket_is_open(config, redis_url, redis_client,
                                                             clock, smtp):
    shoes = [{"product_id": "road", "category": "Shoes > Running", "price": 100, "quantity": 1}]
    lamp = [{"product_id": "lamp", "category": "Home > Lights", "price": 40, "quantity": 1}]
    with scenario(config, redis_url, redis_client, clock, smtp) as edge:
        for user, products in (("amy", shoes), ("bo", shoes), ("cy", lamp)):
            identify(edge, user)
            track(edge, user, "Order Completed", order_id=f"{user}-1", revenue=100,
                  products=products)
        run_until(redis_client, clock, local("2026-03-04T12:00:00"))
        identify(edge, "bo", open_tickets=1)  # a complaint about the order
        run_until(redis_client, clock, local("2026-03-07T12:00:00"))
        identify(edge, "bo", open_tickets=0)
        track(edge, "bo", "Ticket Closed", ticket_id="t-9")
        run_until(redis_client, clock, local("2026-03-17T12:00:00"))
    simulation_agrees(config, redis_url, redis_client, "after-sales-care",
                      local("2026-03-02T00:00:00"), local("2026-03-17T12:00:00"))
    assert sent(redis_client, "after-sales-care") == [
        ("user:amy", "email", "Getting the best out of your new shoes", "Thu 10:00"),
        ("user:bo", "email", "Getting the best out of your new shoes", "Sun 10:00"),
        ("user:amy", "email", "Two weeks in: keep them going", "Mon 10:00"),
    ]


def test_09_cross_sell_shows_what_others_bought_with_the_cart(config, redis_url, clock):
    item = {"currency": "EUR", "category": "Shoes > Running", "stock": 9}
    with LiveEdge(config, redis_url, clock=clock) as edge:
        put_products(edge, {**item, "id": "road", "name": "Road shoe", "price": 100.0,
                            "url": "https://shop.test/road"},
                     {**item, "id": "socks", "name": "Run socks", "price": 12.0,
                      "url": "https://shop.test/socks"},
                     {**item, "id": "cap", "name": "Cap", "price": 20.0,
                      "url": "https://shop.test/cap"})
        for buyer, together in (("b1", ["road", "socks"]), ("b2", ["road", "socks", "cap"])):
            track(edge, buyer, "Order Completed", order_id=f"{buyer}-o", revenue=150,
                  products=[{"product_id": p, "price": 10, "quantity": 1} for p in together])
        answer = edge.track("Product Added", userId="pat",
                            properties={"product_id": "road", "name": "Road shoe", "price": 100,
                                        "quantity": 1})
        assert answer.status_code == 200, answer.text
        slot = answer.json()["slots"]["cross-sell"]
        assert slot["rule"] == "cross-sell-cart"
        assert 'href="https://shop.test/socks"' in slot["html"]  # bought with it twice


def mail_to(smtp: SmtpCatcher, user: str, subject: str) -> str:
    """The HTML of the one email to `user` under `subject`, as the SMTP server got it."""
    [found] = [m for m in smtp.messages if parseaddr(str(m["To"]))[1] == f"{user}@example.com"
               and str(m["Subject"]) == subject]
    return found.get_body(("html",)).get_content()


def shoe_shop(edge: LiveEdge) -> None:
    """Three products, and two past orders that bought socks (and once a cap) with the shoe."""
    item = {"currency": "EUR", "stock": 9}
    put_products(edge, {**item, "id": "road", "name": "Road shoe", "price": 100.0,
                        "url": "https://shop.test/road"},
                 {**item, "id": "socks", "name": "Run socks", "price": 12.0,
                  "url": "https://shop.test/socks"},
                 {**item, "id": "cap", "name": "Cap", "price": 20.0, "url": "https://shop.test/cap"})
    for buyer, together in (("b1", ["road", "socks"]), ("b2", ["road", "socks", "cap"])):
        identify(edge, buyer)
        track(edge, buyer, "Order Completed", order_id=f"{buyer}-o", revenue=150,
              products=[{"product_id": p, "price": 10, "quantity": 1} for p in together])


def test_08_thank_you_shows_what_others_bought_with_the_order(config, redis_url, redis_client,
                                                              clock, smtp):
    with scenario(config, redis_url, redis_client, clock, smtp) as edge:
        shoe_shop(edge)
        identify(edge, "amy", first_name="Amy")
        track(edge, "amy", "Order Completed", order_id="a-1", revenue=100,
              products=[{"product_id": "road", "price": 100, "quantity": 1}])
        # the till posts the same order again (a retry): still one run for the order
        track(edge, "amy", "Order Completed", order_id="a-1", revenue=100,
              products=[{"product_id": "road", "price": 100, "quantity": 1}])
        run_until(redis_client, clock, local("2026-03-02T12:00:00"))
    simulation_agrees(config, redis_url, redis_client, "thank-you",
                      local("2026-03-02T00:00:00"), local("2026-03-02T12:00:00"))
    assert sorted(sent(redis_client)) == [  # timers due together fire in any order
        ("user:amy", "email", "Thank you for your order a-1", "Mon 09:30"),
        ("user:b1", "email", "Thank you for your order b1-o", "Mon 09:30"),
        ("user:b2", "email", "Thank you for your order b2-o", "Mon 09:30")]
    html = mail_to(smtp, "amy", "Thank you for your order a-1")
    assert 'href="https://shop.test/socks"' in html and "Run socks" in html
    assert html.index("Run socks") < html.index("Cap")  # bought with it twice, then once
    first = mail_to(smtp, "b1", "Thank you for your order b1-o")
    assert "Cap" in first and "Run socks" not in first  # what the order held is left out
    assert "also chose" not in mail_to(smtp, "b2", "Thank you for your order b2-o")


def test_09_cross_sell_email_a_day_later_unless_they_ordered(config, redis_url, redis_client,
                                                             clock, smtp):
    with scenario(config, redis_url, redis_client, clock, smtp) as edge:
        shoe_shop(edge)
        for user in ("pat", "quinn"):
            identify(edge, user)
            track(edge, user, "Product Added", product_id="road", name="Road shoe", price=100,
                  quantity=1)
        run_until(redis_client, clock, local("2026-03-02T15:00:00"))
        track(edge, "quinn", "Order Completed", order_id="q-1", revenue=100,
              products=[{"product_id": "road", "price": 100, "quantity": 1}])
        run_until(redis_client, clock, local("2026-03-04T12:00:00"))
    simulation_agrees(config, redis_url, redis_client, "cross-sell-email",
                      local("2026-03-02T00:00:00"), local("2026-03-04T12:00:00"))
    assert [m for m in sent(redis_client) if "Goes well" in m[2]] == [
        ("user:pat", "email", "Goes well with Road shoe", "Tue 10:00")]
    html = mail_to(smtp, "pat", "Goes well with Road shoe")
    assert 'href="https://shop.test/socks"' in html and "Cap" in html


def test_16_event_reminders_and_a_follow_up_for_who_came_and_who_did_not(
        config, redis_url, redis_client, clock, smtp):
    meetup = {"event_id": "e-1", "name": "Spring meetup",
              "starts_at": "2026-03-05T18:00:00+01:00", "ends_at": "2026-03-05T20:00:00+01:00"}
    talk = {"event_id": "e-2", "name": "Summer talk",
            "starts_at": "2026-03-12T17:00:00+01:00", "ends_at": "2026-03-12T18:00:00+01:00"}
    with scenario(config, redis_url, redis_client, clock, smtp) as edge:
        for user in ("ann", "ben", "cy"):
            identify(edge, user)
            track(edge, user, "Event Registered", **meetup)
        track(edge, "ann", "Event Registered", **talk)
        run_until(redis_client, clock, local("2026-03-03T12:00:00"))
        track(edge, "cy", "Registration Cancelled", event_id="e-1")
        run_until(redis_client, clock, local("2026-03-05T18:05:00"))
        track(edge, "ann", "Event Attended", event_id="e-1")  # her talk's run waits on
        run_until(redis_client, clock, local("2026-03-14T12:00:00"))
    simulation_agrees(config, redis_url, redis_client, "event-reminder",
                      local("2026-03-02T00:00:00"), local("2026-03-14T12:00:00"))
    assert sent(redis_client, "event-reminder") == [
        ("user:ann", "email", "Tomorrow: Spring meetup", "Wed 18:00"),
        ("user:ben", "email", "Tomorrow: Spring meetup", "Wed 18:00"),
        ("user:ann", "email", "Spring meetup starts in an hour", "Thu 17:00"),
        ("user:ben", "email", "Spring meetup starts in an hour", "Thu 17:00"),
        ("user:ann", "email", "Thank you for coming to Spring meetup", "Thu 22:00"),
        ("user:ben", "email", "Sorry we missed you at Spring meetup", "Fri 17:00"),
        # the check-in was for the meetup: the talk's run did not hear it
        ("user:ann", "email", "Tomorrow: Summer talk", "Wed 17:00"),
        ("user:ann", "email", "Summer talk starts in an hour", "Thu 16:00"),
        ("user:ann", "email", "Sorry we missed you at Summer talk", "Fri 16:00"),
    ]
