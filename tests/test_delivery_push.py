"""Web Push through a push service that checks VAPID and decrypts as the browser would:
the subscription the service worker stored is what the message goes to, its link is a
signed click redirect, a gone subscription is removed from the person, a 429 waits for
Retry-After on the fake clock, and no endpoint outside the push services is called."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import redis

from edge.runtime.config import delivery_problems, load_settings
from edge.store import streams
from tests.automation_support import SharedClock, ThreadWorker, wait_until
from tests.push_service import PushService, VapidKey
from tests.support import SECRET_KEY, SETTINGS_YAML, VAPID_PUBLIC_KEY, LiveEdge, basic, write_config
from tests.test_delivery import ledger_state, queue, statuses

MINUTE = 60_000
SITE_KEY = VapidKey()


@pytest.fixture(autouse=True)
def vapid_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_VAPID_KEY", SITE_KEY.private_text)


@pytest.fixture
def clock(tmp_path: Path) -> SharedClock:
    return SharedClock(tmp_path / "clock")


def push_config(target: Path, service: PushService, hosts: str = '["127.0.0.1"]') -> Path:
    settings = SETTINGS_YAML.replace(VAPID_PUBLIC_KEY, SITE_KEY.public_text)
    settings += f"""
automation:
  start: all
  poll_ms: 20
  visibility_ms: 1000
  timer_lease_ms: 2000
delivery:
  public_url: https://edge.shop.test
  visibility_ms: 1000
  lease_ms: 3000
  backoff_ms: 1000
  max_attempts: 3
  push:
    private_key_env: TEST_VAPID_KEY
    subject: mailto:ops@shop.test
    ttl_s: 3600
    urgency: high
    push_hosts: {hosts}
    ca_file: "{service.ca_file}"
"""
    return write_config(target, settings_yaml=settings)


def subscribe(edge: LiveEdge, user: str, subscription: dict) -> None:
    answer = edge.post("/v1/track", {"userId": user, "event": "Push Subscribed",
                                     "properties": {"subscription": subscription}})
    assert answer.status_code == 200, answer.text


def test_a_push_arrives_encrypted_for_the_browser_and_signed_by_the_sites_key(
        tmp_path, redis_url, redis_client, clock):
    with PushService(tmp_path) as service:
        browser = service.browser()
        config = push_config(tmp_path / "config", service)
        with LiveEdge(config, redis_url, clock=clock) as edge, \
                ThreadWorker(config, redis_url, clock):
            subscribe(edge, "pia", browser.subscription())
            queue(redis_client, "user:pia", "p-1", channel="push", title="Your cart misses you",
                  body="Two items are waiting", link="https://shop.test/cart")
            wait_until(lambda: ledger_state(redis_client, "p-1") == "sent", what="the push")
            link = urlsplit(service.delivered[0].payload["link"])
            clock.advance(MINUTE)  # a person taps a minute later; a scanner at once
            redirect = edge.http.get(link.path, follow_redirects=False,
                                     headers={"user-agent": "Mozilla/5.0 (Android 14) Chrome/131"})
            wait_until(lambda: _events(redis_client, "Push Clicked"), what="the click event")
    assert service.refused == []
    [delivered] = service.delivered
    assert delivered.vapid_key == SITE_KEY.public_text
    assert delivered.headers["ttl"] == "3600" and delivered.headers["urgency"] == "high"
    assert len(delivered.headers["topic"]) <= 32
    payload = delivered.payload
    assert payload["title"] == "Your cart misses you" and payload["body"] == "Two items are waiting"
    assert payload["tag"] == "p-1"  # the notification's tag: a repeat replaces it
    assert f"{link.scheme}://{link.netloc}" == "https://edge.shop.test"
    assert link.path.startswith("/go/")
    assert redirect.status_code == 302
    destination = urlsplit(redirect.headers["location"])
    assert destination.netloc == "shop.test" and destination.path == "/cart"
    assert parse_qs(destination.query)["utm_medium"] == ["push"]
    assert statuses(redis_client, "p-1") == ["Message Sent"]
    [clicked] = _events(redis_client, "Push Clicked")
    assert clicked["userId"] == "pia" and clicked["properties"]["message_id"] == "p-1"
    assert redis_client.hget("kairos:delivery:{p-1}", "p") == b"m1"  # the service's id


def test_a_gone_subscription_is_removed_and_later_pushes_find_no_address(
        tmp_path, redis_url, redis_client, clock):
    with PushService(tmp_path, script=[(410, {})]) as service:
        browser = service.browser()
        config = push_config(tmp_path / "config", service)
        with LiveEdge(config, redis_url, clock=clock) as edge, \
                ThreadWorker(config, redis_url, clock):
            subscribe(edge, "gus", browser.subscription())
            queue(redis_client, "user:gus", "p-2", channel="push", body="hello")
            wait_until(lambda: ledger_state(redis_client, "p-2") == "failed", what="the 410")
            wait_until(lambda: _subscription(edge, "gus") is None,
                       what="the subscription removed")
            queue(redis_client, "user:gus", "p-3", channel="push", body="again")
            wait_until(lambda: ledger_state(redis_client, "p-3") == "failed", what="no address")
    assert service.attempts == 1 and service.delivered == []
    assert statuses(redis_client, "p-2") == ["Message Failed"]
    assert redis_client.hget("kairos:delivery:{p-3}", "r").decode().startswith("no_address")


def test_a_new_subscription_is_kept_when_an_old_one_answers_gone(
        tmp_path, redis_url, redis_client, clock):
    with PushService(tmp_path, script=[(404, {})]) as service:
        old, new = service.browser(), service.browser()
        config = push_config(tmp_path / "config", service)
        with LiveEdge(config, redis_url, clock=clock) as edge, \
                ThreadWorker(config, redis_url, clock):
            # The person subscribes again while the push to the old endpoint is on its way.
            service.before_answer = lambda: subscribe(edge, "ivy", new.subscription())
            subscribe(edge, "ivy", old.subscription())
            queue(redis_client, "user:ivy", "p-4", channel="push", body="hello")
            wait_until(lambda: ledger_state(redis_client, "p-4") == "failed", what="the 404")
            wait_until(lambda: statuses(redis_client, "p-4"), what="the status")
            time.sleep(0.3)
            kept = _subscription(edge, "ivy")
    assert service.attempts == 1
    assert kept is not None and kept["endpoint"] == new.endpoint


def test_a_429_waits_for_retry_after_on_the_clock_then_sends_once(
        tmp_path, redis_url, redis_client, clock):
    with PushService(tmp_path, script=[(429, {"retry-after": "120"})]) as service:
        browser = service.browser()
        config = push_config(tmp_path / "config", service)
        with LiveEdge(config, redis_url, clock=clock) as edge, \
                ThreadWorker(config, redis_url, clock):
            subscribe(edge, "ron", browser.subscription())
            queue(redis_client, "user:ron", "p-5", channel="push", body="later")
            wait_until(lambda: ledger_state(redis_client, "p-5") == "retry", what="the 429")
            clock.advance(MINUTE)  # less than the two minutes asked for
            time.sleep(0.4)
            assert service.delivered == []
            clock.advance(2 * MINUTE)
            wait_until(lambda: ledger_state(redis_client, "p-5") == "sent", what="the resend")
    assert len(service.delivered) == 1 and service.attempts == 2


def test_an_endpoint_outside_the_push_services_is_never_called(
        tmp_path, redis_url, redis_client, clock):
    with PushService(tmp_path) as service:
        browser = service.browser()
        config = push_config(tmp_path / "config", service, hosts='["fcm.googleapis.com"]')
        with LiveEdge(config, redis_url, clock=clock) as edge, \
                ThreadWorker(config, redis_url, clock):
            subscribe(edge, "eve", browser.subscription())  # aimed at an internal address
            queue(redis_client, "user:eve", "p-6", channel="push", body="hello")
            wait_until(lambda: ledger_state(redis_client, "p-6") == "failed", what="the refusal")
    assert service.attempts == 0
    reason = redis_client.hget("kairos:delivery:{p-6}", "r").decode()
    assert "not a known push service" in reason and "127.0.0.1" in reason


def test_the_settings_check_names_a_site_key_that_is_not_the_private_keys(tmp_path):
    with PushService(tmp_path) as service:
        settings = load_settings(push_config(tmp_path / "config", service))
    other = VapidKey()
    problems = dict(delivery_problems(settings, {"TEST_VAPID_KEY": other.private_text}))
    [(where, why)] = [(where, why) for where, why in problems.items()
                      if where[-1] == "vapid_public_key"]
    assert where[:2] == ("sites", "shop") and other.public_text in why
    assert delivery_problems(settings, {"TEST_VAPID_KEY": SITE_KEY.private_text}) == []
    broken = dict(delivery_problems(settings, {"TEST_VAPID_KEY": "not-a-key"}))
    assert "P-256" in broken[("delivery", "push", "private_key_env")]
    missing = dict(delivery_problems(settings, {}))
    assert "TEST_VAPID_KEY is not set" in missing[("delivery", "push", "private_key_env")]


def _subscription(edge: LiveEdge, user: str) -> dict | None:
    answer = edge.http.get(f"/v1/profiles/user:{user}", headers=basic(SECRET_KEY))
    assert answer.status_code == 200, answer.text
    return answer.json()["traits"].get("push_subscription")



def _events(client: redis.Redis, name: str) -> list[dict]:
    return [record.event for _, fields in client.xrange(streams.EVENTS)
            if isinstance(record := streams.decode(fields), streams.Event)
            and record.event.get("event") == name]
