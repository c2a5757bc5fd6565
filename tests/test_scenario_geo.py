"""Scenario 20, the geo offer, end to end: the shipped config/scenarios/20-geo-offer with a
shop in the settings, events through the edge's HTTP API, a real worker, Redis and a push
service, on a fake clock. In the shop while it is open: the shop's offer on push at that
local time, once a day; nothing outside the opening hours or outside the fence; a login
on the shop's hotspot counts as being there; without push, the offer in the app's answer."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.automation_support import ROOT, SharedClock, ThreadWorker, outbox, wait_until
from tests.push_service import PushService, VapidKey
from tests.support import SETTINGS_YAML, VAPID_PUBLIC_KEY, LiveEdge, write_config
from tests.test_automation import AUTOMATION, quiet
from tests.test_scenarios import HOUR, local, sent, simulation_agrees

SITE_KEY = VapidKey()
SHOP = (50.0870, 14.4208)
IN_THE_SHOP = {"latitude": 50.0871, "longitude": 14.4210}   # about 17 m from its point
ROUND_THE_CORNER = {"latitude": 50.0897, "longitude": 14.4208}  # about 300 m north
OFFER = "Old Town store: 10% off today"
SHOPS = """    shops:
      old-town:
        name: Old Town store
        latitude: 50.0870
        longitude: 14.4208
        radius: 150
        hours: { mon-fri: "09:00-19:00", sat: "10:00-16:00", sun: closed }
        hotspots: [old-town-guest]
"""


@pytest.fixture(autouse=True)
def vapid_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_VAPID_KEY", SITE_KEY.private_text)


@pytest.fixture
def clock(tmp_path: Path) -> SharedClock:
    return SharedClock(tmp_path / "clock", start_ms=local("2026-03-02T10:00:00"))  # a Monday


@pytest.fixture
def push(tmp_path: Path) -> Iterator[PushService]:
    with PushService(tmp_path) as service:
        yield service


@pytest.fixture
def config(tmp_path: Path, push: PushService) -> Path:
    """The test site with the shop and the shipped geo-offer scenario; push is delivered
    to a real push service."""
    settings = SETTINGS_YAML.replace(VAPID_PUBLIC_KEY, SITE_KEY.public_text).replace(
        "    timezone: Europe/Prague\n",
        "    timezone: Europe/Prague\n    consent_defaults: { marketing: true }\n" + SHOPS)
    delivery = f"""
delivery:
  public_url: https://edge.shop.test
  visibility_ms: 1000
  backoff_ms: 1000
  push:
    private_key_env: TEST_VAPID_KEY
    subject: mailto:ops@shop.test
    push_hosts: ["127.0.0.1"]
    ca_file: "{push.ca_file}"
"""
    target = write_config(tmp_path / "config", rules_yaml="rules: []\n",
                          settings_yaml=settings + AUTOMATION + delivery)
    scenario = ROOT / "config" / "scenarios" / "20-geo-offer"
    shutil.copytree(scenario, target / "scenarios" / scenario.name)
    return target


def subscribe(edge: LiveEdge, user: str, push: PushService) -> None:
    answer = edge.track("Push Subscribed", userId=user,
                        properties={"subscription": push.browser().subscription()})
    assert answer.status_code == 200, answer.text


def app_open(edge: LiveEdge, user: str, location: dict) -> dict:
    """The shop's app opens and reports where the phone is; the edge's answer."""
    answer = edge.track("Application Opened", userId=user, properties={},
                        context={"app": {"name": "Shop"}, "location": location})
    assert answer.status_code == 200, answer.text
    return answer.json()


def hotspot_login(edge: LiveEdge, user: str, hotspot: str = "old-town-guest") -> None:
    """The shop's guest Wi-Fi portal, with the site's secret key, says who logged in."""
    answer = edge.track("Hotspot Login", userId=user, properties={"hotspot": hotspot})
    assert answer.status_code == 200, answer.text


def settle(client: redis.Redis, clock: SharedClock, push: PushService, pushes: int) -> None:
    wait_until(lambda: quiet(client, clock), what="the worker")
    wait_until(lambda: len(push.delivered) >= pushes, what=f"{pushes} pushes delivered")
    wait_until(lambda: quiet(client, clock), what="the delivery's status events")
    assert len(push.delivered) == pushes


def test_20_geo_offer_on_push_in_the_shop_while_open_once_a_day(config, redis_url,
                                                                redis_client, clock, push):
    with LiveEdge(config, redis_url, clock=clock) as edge, \
            ThreadWorker(config, redis_url, clock):
        for user in ("pia", "ron"):
            subscribe(edge, user, push)
        # Monday 10:00, open: Pia's phone is in the shop, Ron's round the corner
        answer = app_open(edge, "pia", IN_THE_SHOP)
        assert answer["messages"] == []  # she has push: no in-app copy of the offer
        app_open(edge, "ron", ROUND_THE_CORNER)
        settle(redis_client, clock, push, 1)
        assert sent(redis_client) == [("user:pia", "push", OFFER, "Mon 10:00")]
        assert push.delivered[0].payload["title"] == OFFER
        assert "Old Town store" in push.delivered[0].payload["body"]

        clock.advance(HOUR)  # an hour later, still in the shop: once a day
        app_open(edge, "pia", IN_THE_SHOP)
        settle(redis_client, clock, push, 1)

        clock.set(local("2026-03-03T19:30:00"))  # Tuesday evening, closed since 19:00
        app_open(edge, "pia", IN_THE_SHOP)
        hotspot_login(edge, "ron")
        settle(redis_client, clock, push, 1)

        clock.set(local("2026-03-04T10:00:00"))  # Wednesday, open again
        hotspot_login(edge, "ron")
        hotspot_login(edge, "ron", "cafe-next-door")  # not the shop's: changes nothing
        settle(redis_client, clock, push, 2)
        clock.advance(60_000)
        app_open(edge, "pia", IN_THE_SHOP)
        settle(redis_client, clock, push, 3)
        where = edge.profile("user:ron").json()["location"]
    assert sent(redis_client) == [("user:pia", "push", OFFER, "Mon 10:00"),
                                  ("user:ron", "push", OFFER, "Wed 10:00"),
                                  ("user:pia", "push", OFFER, "Wed 10:01")]
    assert {m.journey for m in outbox(redis_client)} == {"geo-offer"}
    assert (where["shop"], where["source"], where["shop_name"], where["shop_open"]) == \
        ("old-town", "hotspot", "Old Town store", True)
    assert (where["latitude"], where["longitude"]) == SHOP
    simulation_agrees(config, redis_url, redis_client, "geo-offer",
                      local("2026-03-02T00:00:00"), local("2026-03-05T00:00:00"))


def test_20_geo_offer_in_the_app_without_push_once_a_day(config, redis_url, redis_client,
                                                         clock, push):
    with LiveEdge(config, redis_url, clock=clock) as edge, \
            ThreadWorker(config, redis_url, clock):
        assert app_open(edge, "ida", ROUND_THE_CORNER)["messages"] == []
        [banner] = app_open(edge, "ida", IN_THE_SHOP)["messages"]
        assert (banner["rule"], banner["type"], banner["title"]) == \
            ("geo-offer-in-app", "banner", OFFER)
        clock.advance(30 * 60_000)
        assert app_open(edge, "ida", IN_THE_SHOP)["messages"] == []  # once a day
        clock.set(local("2026-03-03T10:30:00"))  # a day on
        [again] = app_open(edge, "ida", IN_THE_SHOP)["messages"]
        assert again["title"] == OFFER
        wait_until(lambda: quiet(redis_client, clock), what="the worker")
    # the journey's push found no subscription: nothing queued for her
    assert outbox(redis_client) == [] and push.attempts == 0
