"""Delivery through real servers: email to an SMTP server the test starts, webhooks to a
receiver that checks their signatures; at most once to the provider, retries on a
fake clock, dead letters, suppression and the status events that come back."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
import redis

from edge.store import streams
from edge.store.deliveries import DEAD_LETTERS
from tests.automation_support import ROOT, ProcessWorker, SharedClock, ThreadWorker, settled, wait_until
from tests.channel_servers import SmtpCatcher, WebhookReceiver
from tests.support import SECRET_KEY, SETTINGS_YAML, LiveEdge, basic, write_config

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
MINUTE = 60_000

WELCOME = """
id: welcome
entry: { on: Signed Up }
steps:
  - id: hello
    send: { channel: email, title: "Welcome, {{ traits.first_name }}", body: "<p>Hi {{ traits.first_name }}, <a href='https://shop.test/new'>see what is new</a>.</p>" }
"""


def delivery_config(target: Path, smtp_port: int, webhook_url: str = "http://127.0.0.1:9/none",
                    journeys: dict[str, str] | None = None, extra: str = "") -> Path:
    settings = SETTINGS_YAML.replace(
        "timezone: Europe/Prague",
        "timezone: Europe/Prague\n    email_from: Test shop <shop@shop.test>\n"
        "    consent_defaults: { marketing: true, email: true, sms: true }")
    settings += f"""
automation:
  start: all
  poll_ms: 20
  visibility_ms: 1000
  timer_lease_ms: 2000
delivery:
  visibility_ms: 1000
  lease_ms: 3000
  backoff_ms: 1000
  max_attempts: 3
  email: {{ host: 127.0.0.1, port: {smtp_port}, pool: 2 }}
  webhooks:
    endpoints:
      crm: {{ url: "{webhook_url}", secret_env: TEST_HOOK_SECRET, previous_secret_env: TEST_HOOK_OLD }}
{extra}"""
    config = write_config(target, settings_yaml=settings)
    (config / "journeys").mkdir(exist_ok=True)
    for name, text in (journeys or {}).items():
        (config / "journeys" / f"{name}.yaml").write_text(text)
    return config


@pytest.fixture(autouse=True)
def hook_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    monkeypatch.setenv("TEST_HOOK_OLD", OLD_SECRET)


@pytest.fixture
def clock(tmp_path: Path) -> SharedClock:
    return SharedClock(tmp_path / "clock")


def queue(client: redis.Redis, profile_id: str, message_id: str, channel: str = "email",
          title: str = "Hello", body: str = "<p>Hi</p>", link: str | None = None) -> None:
    message = streams.OutboundMessage(profile_id=profile_id, message_id=message_id,
                                      timestamp=1_767_225_600_000, rule="r1", channel=channel,
                                      title=title, body=body, link=link)
    client.xadd(streams.OUTBOX, streams.encode(message))


def person(edge: LiveEdge, user: str, **traits: object) -> None:
    answer = edge.post("/v1/identify", {"userId": user, "traits": {
        "email": f"{user}@example.com", "first_name": "Eva", **traits}})
    assert answer.status_code == 200, answer.text


def statuses(client: redis.Redis, message_id: str) -> list[str]:
    found = []
    for _, fields in client.xrange(streams.EVENTS):
        record = streams.decode(fields)
        if isinstance(record, streams.Event) and str(record.event.get("event", "")).startswith("Message ") \
                and record.event.get("properties", {}).get("message_id") == message_id:
            found.append(record.event["event"])
    return found


def status_events(client: redis.Redis) -> list[dict]:
    return [record.event for _, fields in client.xrange("kairos:events")
            if isinstance(record := streams.decode(fields), streams.Event)
            and str(record.event.get("event", "")).startswith("Message ")]


def ledger_state(client: redis.Redis, message_id: str) -> str:
    value = client.hget(f"kairos:delivery:{{{message_id}}}", "s")
    return value.decode() if value else ""


def test_a_journey_email_arrives_as_multipart_mime_with_a_stable_message_id(
        tmp_path, redis_url, redis_client, clock):
    with SmtpCatcher() as smtp:
        config = delivery_config(tmp_path / "config", smtp.port, journeys={"welcome": WELCOME})
        with LiveEdge(config, redis_url, clock=clock) as edge, ThreadWorker(config, redis_url, clock):
            person(edge, "eva")
            assert edge.post("/v1/track", {"userId": "eva", "event": "Signed Up"}).status_code == 200
            wait_until(lambda: smtp.messages, what="the welcome email")
            wait_until(lambda: any(e["event"] == "Message Sent" for e in status_events(redis_client)),
                       what="the status event")
    [mail] = smtp.messages
    assert mail["To"] == "eva@example.com"
    assert mail["From"] == "Test shop <shop@shop.test>"
    assert mail["Subject"] == "Welcome, Eva"
    assert mail["Message-ID"].endswith("@shop.test>")
    assert mail.get_content_type() == "multipart/alternative"
    html = mail.get_body(("html",)).get_content()
    text = mail.get_body(("plain",)).get_content()
    assert "Hi Eva" in html and 'style="' in html and "<style" not in html  # styles inlined
    assert "Hi Eva, see what is new (https://shop.test/new)" in text
    [sent] = [e for e in status_events(redis_client) if e["event"] == "Message Sent"]
    properties = sent["properties"]
    assert properties["journey"] == "welcome" and properties["step"] == "hello"
    assert properties["channel"] == "email" and properties["provider_id"] == "Q00001"
    assert sent["userId"] == "eva"


def test_a_message_delivered_twice_by_the_outbox_is_sent_once(tmp_path, redis_url, redis_client,
                                                               clock):
    with SmtpCatcher() as smtp:
        config = delivery_config(tmp_path / "config", smtp.port)
        with LiveEdge(config, redis_url, clock=clock) as edge:
            person(edge, "ana")
            queue(redis_client, "user:ana", "m-1")
            queue(redis_client, "user:ana", "m-1")  # the same message, appended again
            with ThreadWorker(config, redis_url, clock):
                wait_until(lambda: settled(redis_client, "kairos-delivery", streams.OUTBOX),
                           what="the outbox")
                time.sleep(0.2)
    assert len(smtp.messages) == 1
    assert ledger_state(redis_client, "m-1") == "sent"
    assert statuses(redis_client, "m-1") == ["Message Sent"]  # the repeat's echo was dropped


def test_a_deferred_recipient_is_tried_again_after_the_backoff(tmp_path, redis_url, redis_client,
                                                               clock):
    with SmtpCatcher() as smtp:
        config = delivery_config(tmp_path / "config", smtp.port)
        with LiveEdge(config, redis_url, clock=clock) as edge:
            person(edge, "later1", email="later1@example.com")
            queue(redis_client, "user:later1", "m-2")
            with ThreadWorker(config, redis_url, clock):
                wait_until(lambda: ledger_state(redis_client, "m-2") == "retry", what="a retry")
                time.sleep(0.3)
                assert smtp.messages == []  # not before the backoff on the clock
                clock.advance(MINUTE)
                wait_until(lambda: ledger_state(redis_client, "m-2") == "sent", what="the resend")
    assert len(smtp.messages) == 1
    assert redis_client.hget("kairos:delivery:{m-2}", "a") == b"2"


def test_a_bounce_suppresses_the_address_for_later_messages(tmp_path, redis_url, redis_client,
                                                            clock):
    with SmtpCatcher() as smtp:
        config = delivery_config(tmp_path / "config", smtp.port)
        with LiveEdge(config, redis_url, clock=clock) as edge:
            person(edge, "bo", email="bounce@example.com")
            queue(redis_client, "user:bo", "m-3")
            with ThreadWorker(config, redis_url, clock):
                wait_until(lambda: ledger_state(redis_client, "m-3") == "failed", what="the bounce")
                queue(redis_client, "user:bo", "m-4")
                wait_until(lambda: ledger_state(redis_client, "m-4") == "failed", what="suppression")
                wait_until(lambda: statuses(redis_client, "m-4"), what="the second status")
    assert smtp.messages == []
    assert statuses(redis_client, "m-3") == ["Message Bounced"]
    assert statuses(redis_client, "m-4") == ["Message Failed"]
    reason = redis_client.hget("kairos:delivery:{m-4}", "r").decode()
    assert reason.startswith("suppressed:") and "550" in reason


def test_consent_withdrawn_after_queueing_is_checked_at_send_time(tmp_path, redis_url,
                                                                 redis_client, clock):
    with SmtpCatcher() as smtp:
        config = delivery_config(tmp_path / "config", smtp.port)
        with LiveEdge(config, redis_url, clock=clock) as edge:
            person(edge, "cy")
            queue(redis_client, "user:cy", "m-5")
            answer = edge.post("/v1/track", {"userId": "cy", "event": "Consent Updated",
                                             "properties": {"email": False}})
            assert answer.status_code == 200, answer.text
            with ThreadWorker(config, redis_url, clock):
                wait_until(lambda: ledger_state(redis_client, "m-5") == "failed", what="the check")
    assert smtp.messages == []
    assert redis_client.hget("kairos:delivery:{m-5}", "r").decode().startswith("consent")


def test_webhooks_are_signed_retried_on_5xx_and_429_and_a_410_disables_the_endpoint(
        tmp_path, redis_url, redis_client, clock):
    receiver = WebhookReceiver(SECRET, script=[(500, {}, 0), (429, {"Retry-After": "120"}, 0)])
    with receiver, SmtpCatcher() as smtp:
        config = delivery_config(tmp_path / "config", smtp.port, webhook_url=receiver.url)
        with LiveEdge(config, redis_url, clock=clock) as edge:
            person(edge, "di")
            queue(redis_client, "user:di", "w-1", channel="webhook", body='{"x": 1}',
                  link=receiver.url + "/orders")
            with ThreadWorker(config, redis_url, clock):
                wait_until(lambda: len(receiver.calls) == 1, what="the first call")
                clock.advance(MINUTE)  # past the first backoff: the 429 comes next
                wait_until(lambda: len(receiver.calls) == 2, what="the second call")
                wait_until(lambda: ledger_state(redis_client, "w-1") == "retry", what="the 429")
                clock.advance(MINUTE)  # Retry-After asked for two minutes
                time.sleep(0.3)
                assert len(receiver.calls) == 2
                clock.advance(MINUTE + 1000)
                wait_until(lambda: ledger_state(redis_client, "w-1") == "sent", what="the third")
                receiver.script.append((410, {}, 0))
                queue(redis_client, "user:di", "w-2", channel="webhook", link=receiver.url)
                wait_until(lambda: ledger_state(redis_client, "w-2") == "failed", what="the 410")
                queue(redis_client, "user:di", "w-3", channel="webhook", link=receiver.url)
                wait_until(lambda: ledger_state(redis_client, "w-3") == "failed", what="disabled")
                queue(redis_client, "user:di", "w-4", channel="webhook", link="http://elsewhere.test/x")
                wait_until(lambda: ledger_state(redis_client, "w-4") == "failed", what="refused")
    assert [c.webhook_id for c in receiver.calls] == ["w-1", "w-1", "w-1", "w-2"]
    assert all(c.verified for c in receiver.calls)
    assert all(len(c.signatures.split(" ")) == 2 for c in receiver.calls)  # both secrets
    assert "disabled" in redis_client.hget("kairos:delivery:{w-3}", "r").decode()
    assert "not a configured" in redis_client.hget("kairos:delivery:{w-4}", "r").decode()
    assert statuses(redis_client, "w-1") == ["Message Sent", "Message Delivered"]


def test_a_provider_that_keeps_failing_ends_in_the_dead_letter_stream(tmp_path, redis_url,
                                                                     redis_client, clock):
    receiver = WebhookReceiver(SECRET, script=[(503, {}, 0)] * 5)
    with receiver, SmtpCatcher() as smtp:
        config = delivery_config(tmp_path / "config", smtp.port, webhook_url=receiver.url)
        with LiveEdge(config, redis_url, clock=clock) as edge:
            person(edge, "ed")
            queue(redis_client, "user:ed", "w-5", channel="webhook", link=receiver.url)
            with ThreadWorker(config, redis_url, clock):
                for attempt in (1, 2):
                    wait_until(lambda n=attempt: len(receiver.calls) == n, what=f"call {attempt}")
                    clock.advance(10 * MINUTE)
                wait_until(lambda: ledger_state(redis_client, "w-5") == "dead", what="the dead letter")
            scraped = edge.http.get("/metrics", headers=basic(SECRET_KEY)).text
    assert 'kairos_delivery_messages_total{channel="webhook",outcome="retried"} 2' in scraped
    assert 'kairos_delivery_messages_total{channel="webhook",outcome="dead"} 1' in scraped
    assert "kairos_delivery_dead_letters 1" in scraped
    assert "kairos_delivery_retries_pending 0" in scraped
    assert len(receiver.calls) == 3
    [(_, fields)] = redis_client.xrange(DEAD_LETTERS)
    assert fields[b"reason"].decode().startswith("gave up after 3 attempts: HTTP 503")
    [failed] = [e for e in status_events(redis_client) if e["event"] == "Message Failed"]
    assert failed["properties"]["dead_letter"] is True


def test_a_worker_killed_while_sending_email_never_sends_it_twice(tmp_path, redis_url,
                                                                  redis_client, clock):
    with SmtpCatcher() as smtp:
        smtp.hold_s = 4.0  # DATA is answered late: the worker dies before it hears back
        config = delivery_config(tmp_path / "config", smtp.port)
        with LiveEdge(config, redis_url, clock=clock) as edge:
            person(edge, "fa")
            queue(redis_client, "user:fa", "m-6")
            first = ProcessWorker(config, redis_url, clock, "first").start()
            try:
                wait_until(lambda: ledger_state(redis_client, "m-6") == "sending", timeout_s=20,
                           what="the first attempt")
                time.sleep(0.5)  # inside DATA
                first.kill()
            finally:
                first.stop()
            smtp.hold_s = 0
            second = ProcessWorker(config, redis_url, clock, "second").start()
            try:
                wait_until(lambda: ledger_state(redis_client, "m-6") == "dead", timeout_s=30,
                           what="the interrupted attempt's end")
            finally:
                second.stop()
    # at most once: what the first worker handed over may or may not have arrived,
    # but nothing was sent again, and the dead letter says why
    assert len(smtp.messages) <= 1
    [(_, fields)] = redis_client.xrange(DEAD_LETTERS)
    assert fields[b"reason"].decode().startswith("interrupted")


def test_kairos_check_names_a_missing_secret(tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.delenv("TEST_HOOK_SECRET")
    config = delivery_config(tmp_path / "config", 2525)
    done = subprocess.run([sys.executable, "-m", "edge.cli", "check", str(config)], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert "delivery.webhooks.endpoints.crm.secret_env" in done.stdout + done.stderr
    assert "TEST_HOOK_SECRET is not set" in done.stdout + done.stderr


def test_the_demo_inbox_shows_what_the_worker_delivered_to_it(tmp_path, redis_url, redis_client,
                                                              clock):
    from edge.store.embedded import free_port

    port = free_port()
    config = delivery_config(tmp_path / "config", port, journeys={"welcome": WELCOME})
    settings = (config / "kairos.yaml").read_text()
    (config / "kairos.yaml").write_text(settings.replace(
        "demo:\n  enabled: true\n  site: shop", f"demo:\n  enabled: true\n  site: shop\n  inbox_port: {port}"))
    with LiveEdge(config, redis_url, clock=clock) as edge, ThreadWorker(config, redis_url, clock):
        person(edge, "hana")
        assert edge.post("/v1/track", {"userId": "hana", "event": "Signed Up"}).status_code == 200
        wait_until(lambda: ledger_state(redis_client, next(iter(
            m.message_id for m in outbox_messages(redis_client)), "none")) == "sent",
            what="the welcome email")
        page = edge.http.get("/demo/inbox", params={"to": "hana@example.com"})
        other = edge.http.get("/demo/inbox", params={"to": "nobody@example.com"})
    assert page.status_code == 200
    assert "Welcome, Eva" in page.text and "sandbox" in page.text
    assert "frame-src 'self'" in page.headers["content-security-policy"]
    assert "Welcome, Eva" not in other.text


def outbox_messages(client: redis.Redis) -> list[streams.OutboundMessage]:
    return [record for _, fields in client.xrange(streams.OUTBOX)
            if isinstance(record := streams.decode(fields), streams.OutboundMessage)]
