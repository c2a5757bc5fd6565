"""SMS and WhatsApp delivery through servers in the providers' formats: the number as the
person typed it goes out in E.164 with the provider's credentials, retries follow the
fake clock, and the providers' signed callbacks come back through the edge as status
events of the person; unsigned or forged ones change nothing."""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import redis

from edge.connectors.phones import e164
from edge.connectors.sms import twilio_signature
from edge.ingest.tracking import Token, Tokens, shorten_links
from edge.runtime.config import SettingsError, load_settings
from edge.store import streams
from edge.store.embedded import free_port
from tests import provider_servers
from tests.automation_support import SharedClock, ThreadWorker, wait_until
from tests.provider_servers import (TwilioServer, WhatsAppServer, whatsapp_inbound,
                                    whatsapp_status)
from tests.support import SETTINGS_YAML, LiveEdge, write_config

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-twilio-auth-token"
SENDER = "+15005550006"
PHONE_NUMBER_ID = "106540352242922"
ACCESS_TOKEN = "test-whatsapp-access-token"
APP_SECRET = "test-whatsapp-app-secret"
VERIFY_TOKEN = "test-whatsapp-verify-token"
TEMPLATE = "order_update"
NUMBER = "420603123456"  # "603 123 456" read in region CZ, as WhatsApp writes it
MINUTE = 60_000


@pytest.fixture(autouse=True)
def provider_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TWILIO_SID", ACCOUNT_SID)
    monkeypatch.setenv("TEST_TWILIO_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("TEST_WA_TOKEN", ACCESS_TOKEN)
    monkeypatch.setenv("TEST_WA_SECRET", APP_SECRET)
    monkeypatch.setenv("TEST_WA_VERIFY", VERIFY_TOKEN)


def provider_config(target: Path, edge_port: int, twilio_url: str, whatsapp_url: str) -> Path:
    settings = SETTINGS_YAML.replace(
        "timezone: Europe/Prague",
        "timezone: Europe/Prague\n"
        "    consent_defaults: { marketing: true, sms: true, whatsapp: true }")
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
  sms:
    base_url: "{twilio_url}"
    account_sid_env: TEST_TWILIO_SID
    auth_token_env: TEST_TWILIO_TOKEN
    sender: "{SENDER}"
    status_callback_url: "http://127.0.0.1:{edge_port}/v1/callbacks/sms"
    default_region: CZ
  whatsapp:
    base_url: "{whatsapp_url}"
    phone_number_id: "{PHONE_NUMBER_ID}"
    access_token_env: TEST_WA_TOKEN
    app_secret_env: TEST_WA_SECRET
    verify_token_env: TEST_WA_VERIFY
    template: {TEMPLATE}
    language: cs
"""
    config = write_config(target, settings_yaml=settings)
    (config / "journeys").mkdir(exist_ok=True)
    return config


@dataclass
class World:
    edge: LiveEdge
    twilio: TwilioServer
    whatsapp: WhatsAppServer
    clock: SharedClock

    @property
    def sms_callback(self) -> str:
        return f"{self.edge.url}/v1/callbacks/sms"

    @property
    def whatsapp_callback(self) -> str:
        return f"{self.edge.url}/v1/callbacks/whatsapp"


@pytest.fixture
def world(tmp_path: Path, redis_url: str) -> Iterator[World]:
    """Both providers, an edge whose configuration names them, and a worker, on one clock."""
    clock = SharedClock(tmp_path / "clock")
    with TwilioServer(ACCOUNT_SID, AUTH_TOKEN) as twilio, \
            WhatsAppServer(PHONE_NUMBER_ID, ACCESS_TOKEN, APP_SECRET) as whatsapp:
        port = free_port()
        config = provider_config(tmp_path / "config", port, twilio.url, whatsapp.url)
        with LiveEdge(config, redis_url, clock=clock, port=port) as edge, \
                ThreadWorker(config, redis_url, clock):
            yield World(edge, twilio, whatsapp, clock)


def person(edge: LiveEdge, user: str, phone: str) -> None:
    answer = edge.post("/v1/identify", {"userId": user, "traits": {"phone": phone,
                                                                   "first_name": "Eva"}})
    assert answer.status_code == 200, answer.text


def queue(client: redis.Redis, profile_id: str, message_id: str, channel: str,
          body: str) -> None:
    message = streams.OutboundMessage(profile_id=profile_id, message_id=message_id,
                                      timestamp=1_767_225_600_000, rule="r1", channel=channel,
                                      body=body)
    client.xadd(streams.OUTBOX, streams.encode(message))


def status_events(client: redis.Redis, message_id: str) -> list[dict]:
    return [record.event for _, fields in client.xrange("kairos:events")
            if isinstance(record := streams.decode(fields), streams.Event)
            and str(record.event.get("event", "")).startswith("Message ")
            and record.event.get("properties", {}).get("message_id") == message_id]


def statuses(client: redis.Redis, message_id: str) -> list[str]:
    return [event["event"] for event in status_events(client, message_id)]


def ledger(client: redis.Redis, message_id: str, field: str = "s") -> str:
    value = client.hget(f"kairos:delivery:{{{message_id}}}", field)
    return value.decode() if value else ""


# -- SMS --------------------------------------------------------------------------------------

def test_an_sms_goes_out_in_e164_and_its_signed_delivered_callback_joins_the_person(
        world: World, redis_client: redis.Redis) -> None:
    person(world.edge, "eva", "603 123 456")
    queue(redis_client, "user:eva", "s-1", "sms", "Your order has shipped")
    wait_until(lambda: ledger(redis_client, "s-1") == "sent", what="the send")
    [call] = world.twilio.requests
    assert call.form == {"To": "+420603123456", "From": SENDER, "Body": "Your order has shipped",
                         "StatusCallback": world.sms_callback}
    assert call.authorization == "Basic " + base64.b64encode(
        f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert ledger(redis_client, "s-1", "p") == call.sid

    answer = world.twilio.post_status(call.form["StatusCallback"], call.sid, "delivered")
    assert answer.status_code == 204, answer.text
    wait_until(lambda: "Message Delivered" in statuses(redis_client, "s-1"), what="the echo")
    [delivered] = [e for e in status_events(redis_client, "s-1")
                   if e["event"] == "Message Delivered"]
    assert delivered["userId"] == "eva"
    assert delivered["properties"]["channel"] == "sms"
    assert delivered["properties"]["provider_id"] == call.sid
    # the provider calling again, and a status that says nothing new, add nothing
    assert world.twilio.post_status(world.sms_callback, call.sid, "delivered").status_code == 204
    assert world.twilio.post_status(world.sms_callback, call.sid, "sent").status_code == 204
    time.sleep(0.2)
    assert statuses(redis_client, "s-1") == ["Message Sent", "Message Delivered"]


def test_forged_malformed_and_unknown_sms_callbacks_change_nothing(
        world: World, redis_client: redis.Redis) -> None:
    person(world.edge, "eva", "603 123 456")
    queue(redis_client, "user:eva", "s-2", "sms", "Hello")
    wait_until(lambda: ledger(redis_client, "s-2") == "sent", what="the send")
    sid, url = world.twilio.requests[0].sid, world.sms_callback
    http = world.edge.http

    forged = world.twilio.post_status(url, sid, "failed", "30005", token="not-the-token")
    assert forged.status_code == 403, forged.text
    unsigned = http.post("/v1/callbacks/sms", data={"MessageSid": sid, "MessageStatus": "failed"})
    assert unsigned.status_code == 403
    # signed for another URL: the signature covers the URL as configured
    params = {"MessageSid": sid, "MessageStatus": "failed"}
    other = provider_servers.twilio_signature(AUTH_TOKEN, "https://elsewhere.test/sms", params)
    elsewhere = http.post("/v1/callbacks/sms", data=params,
                          headers={"X-Twilio-Signature": other})
    assert elsewhere.status_code == 403

    missing = world.twilio.post_signed(url, {"MessageStatus": "delivered"})
    assert missing.status_code == 400 and missing.json()["field"] == "MessageSid"
    garbled = http.post("/v1/callbacks/sms", content=b"\xff\xfe",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert garbled.status_code == 400 and garbled.json()["field"] == "body"
    not_a_form = http.post("/v1/callbacks/sms", json={"MessageSid": sid})
    assert not_a_form.status_code == 415 and not_a_form.json()["field"] == "Content-Type"

    unknown = world.twilio.post_status(url, "SM" + "f" * 32, "delivered")
    assert unknown.status_code == 204, unknown.text
    time.sleep(0.2)
    assert statuses(redis_client, "s-2") == ["Message Sent"]
    assert ledger(redis_client, "s-2") == "sent"


def test_an_undelivered_callback_for_an_unknown_handset_bounces_and_suppresses_the_number(
        world: World, redis_client: redis.Redis) -> None:
    person(world.edge, "eva", "603 123 456")
    queue(redis_client, "user:eva", "s-3", "sms", "Hello")
    wait_until(lambda: ledger(redis_client, "s-3") == "sent", what="the send")
    answer = world.twilio.post_status(world.sms_callback, world.twilio.requests[0].sid,
                                      "undelivered", "30005", "Unknown destination handset")
    assert answer.status_code == 204, answer.text
    wait_until(lambda: "Message Bounced" in statuses(redis_client, "s-3"), what="the bounce")
    [bounced] = [e for e in status_events(redis_client, "s-3") if e["event"] == "Message Bounced"]
    assert "30005" in bounced["properties"]["reason"]
    queue(redis_client, "user:eva", "s-4", "sms", "Hello again")
    wait_until(lambda: ledger(redis_client, "s-4") == "failed", what="the suppression")
    assert ledger(redis_client, "s-4", "r").startswith("suppressed: sms bounced")
    assert len(world.twilio.requests) == 1


def test_an_invalid_number_fails_without_a_request(world: World,
                                                   redis_client: redis.Redis) -> None:
    person(world.edge, "ivo", "12")
    queue(redis_client, "user:ivo", "s-5", "sms", "Hello")
    wait_until(lambda: statuses(redis_client, "s-5"), what="the failure's status event")
    assert ledger(redis_client, "s-5") == "failed"
    assert ledger(redis_client, "s-5", "r").startswith("invalid phone number")
    assert statuses(redis_client, "s-5") == ["Message Failed"]
    assert world.twilio.requests == []


def test_a_500_is_retried_after_the_backoff_and_sent_once(world: World,
                                                          redis_client: redis.Redis) -> None:
    world.twilio.script.append((500, 20500))
    person(world.edge, "eva", "603 123 456")
    queue(redis_client, "user:eva", "s-6", "sms", "Hello")
    wait_until(lambda: ledger(redis_client, "s-6") == "retry", what="the retry")
    assert "Twilio 20500" in ledger(redis_client, "s-6", "r")
    time.sleep(0.3)
    assert len(world.twilio.requests) == 1  # not before the backoff on the clock
    world.clock.advance(MINUTE)
    wait_until(lambda: ledger(redis_client, "s-6") == "sent", what="the resend")
    assert len(world.twilio.requests) == 2 and len(world.twilio.accepted) == 1
    assert ledger(redis_client, "s-6", "a") == "2"
    wait_until(lambda: statuses(redis_client, "s-6"), what="the send's status event")
    time.sleep(0.2)
    assert statuses(redis_client, "s-6") == ["Message Sent"]


def test_twilio_refusing_the_number_bounces_it(world: World, redis_client: redis.Redis) -> None:
    world.twilio.script.append((400, 21211))
    person(world.edge, "eva", "603 123 456")
    queue(redis_client, "user:eva", "s-7", "sms", "Hello")
    wait_until(lambda: statuses(redis_client, "s-7"), what="the refusal's status event")
    assert ledger(redis_client, "s-7") == "failed"
    assert "Twilio 21211" in ledger(redis_client, "s-7", "r")
    assert statuses(redis_client, "s-7") == ["Message Bounced"]


# -- WhatsApp ---------------------------------------------------------------------------------

def test_whatsapp_sends_the_template_outside_the_window_and_text_once_the_person_writes(
        world: World, redis_client: redis.Redis) -> None:
    person(world.edge, "eva", "603 123 456")
    queue(redis_client, "user:eva", "w-1", "whatsapp", "Your order\nhas   shipped")
    wait_until(lambda: ledger(redis_client, "w-1") == "sent", what="the template")
    assert world.whatsapp.requests[0] == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": NUMBER,
        "type": "template", "template": {
            "name": TEMPLATE, "language": {"code": "cs"},
            "components": [{"type": "body", "parameters": [
                {"type": "text", "text": "Your order has shipped"}]}]}}
    assert ledger(redis_client, "w-1", "p") == world.whatsapp.ids[0]

    answer = world.whatsapp.post_webhook(world.whatsapp_callback, whatsapp_inbound(NUMBER, "Hi"))
    assert answer.status_code == 200, answer.text
    queue(redis_client, "user:eva", "w-2", "whatsapp", "Your order\nhas shipped")
    wait_until(lambda: ledger(redis_client, "w-2") == "sent", what="the text")
    assert world.whatsapp.requests[1] == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": NUMBER,
        "type": "text", "text": {"body": "Your order\nhas shipped"}}


def test_whatsapp_statuses_come_back_as_status_events(world: World,
                                                      redis_client: redis.Redis) -> None:
    person(world.edge, "eva", "603 123 456")
    queue(redis_client, "user:eva", "w-3", "whatsapp", "One")
    queue(redis_client, "user:eva", "w-4", "whatsapp", "Two")
    wait_until(lambda: ledger(redis_client, "w-3") == ledger(redis_client, "w-4") == "sent",
               what="both sends")
    failed_id, delivered_id = ledger(redis_client, "w-3", "p"), ledger(redis_client, "w-4", "p")
    url, server = world.whatsapp_callback, world.whatsapp

    failed = whatsapp_status(failed_id, "failed", NUMBER, (131026, "Message undeliverable"))
    assert server.post_webhook(url, failed, secret="not-the-secret").status_code == 403
    time.sleep(0.2)
    assert statuses(redis_client, "w-3") == ["Message Sent"]
    assert server.post_webhook(url, failed).status_code == 200
    assert server.post_webhook(url, whatsapp_status(delivered_id, "delivered", NUMBER)
                               ).status_code == 200
    wait_until(lambda: "Message Failed" in statuses(redis_client, "w-3"), what="the failure")
    wait_until(lambda: "Message Delivered" in statuses(redis_client, "w-4"), what="the delivery")
    [event] = [e for e in status_events(redis_client, "w-3") if e["event"] == "Message Failed"]
    assert event["userId"] == "eva"
    assert "131026" in event["properties"]["reason"]
    assert "Message undeliverable" in event["properties"]["reason"]
    # statuses of messages the ledger does not know are taken and ignored
    assert server.post_webhook(url, whatsapp_status("wamid.unknown", "delivered", NUMBER)
                               ).status_code == 200

    missing = server.post_raw(url, b'{"entry": [{"changes": [{"field": "messages"}]}]}')
    assert missing.status_code == 400 and missing.json()["field"] == "entry[0].changes[0]"
    assert "value" in missing.json()["reason"]
    not_json = server.post_raw(url, b"{not json")
    assert not_json.status_code == 400 and not_json.json()["field"] == "body"


def test_whatsapp_subscription_check(world: World) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
             "hub.challenge": "1158201444"}
    answer = world.edge.http.get("/v1/callbacks/whatsapp", params=query)
    assert answer.status_code == 200, answer.text
    assert answer.text == "1158201444"
    assert answer.headers["content-type"].startswith("text/plain")
    wrong = world.edge.http.get("/v1/callbacks/whatsapp",
                                params={**query, "hub.verify_token": "guess"})
    assert wrong.status_code == 403
    assert world.edge.http.get("/v1/callbacks/whatsapp",
                               params={**query, "hub.mode": "unsubscribe"}).status_code == 403


def test_callbacks_answer_404_where_the_channel_is_not_configured(tmp_path: Path,
                                                                  redis_url: str) -> None:
    with LiveEdge(write_config(tmp_path / "config"), redis_url) as edge:
        assert edge.http.post("/v1/callbacks/sms", data={"MessageSid": "SM1"}).status_code == 404
        assert edge.http.get("/v1/callbacks/whatsapp").status_code == 404
        assert edge.http.post("/v1/callbacks/whatsapp", json={"entry": []}).status_code == 404


def test_a_missing_provider_secret_or_sender_is_named_at_load(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.delenv("TEST_TWILIO_TOKEN")
    config = provider_config(tmp_path / "config", 8080, "https://api.twilio.test",
                             "ftp://graph.test")
    text = (config / "kairos.yaml").read_text().replace(f'sender: "{SENDER}"', "")
    (config / "kairos.yaml").write_text(text.replace(f"template: {TEMPLATE}", ""))
    with pytest.raises(SettingsError) as raised:
        load_settings(config)
    message = str(raised.value)
    assert "delivery.sms.auth_token_env" in message and "TEST_TWILIO_TOKEN is not set" in message
    assert "delivery.sms.sender" in message
    assert "delivery.whatsapp.base_url" in message and "delivery.whatsapp.template" in message


# -- units ------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, region, expected", [
    ("603 123 456", "CZ", "+420603123456"),
    ("+420 603 123 456", "CZ", "+420603123456"),
    ("00420 603-123-456", "CZ", "+420603123456"),
    ("+44 7911 123456", "CZ", "+447911123456"),
    ("(415) 555-2671", "US", "+14155552671"),
    ("0170 1234567", "de", "+491701234567"),
    ("12", "CZ", None),                 # too short
    ("603 123 45", "CZ", None),         # a digit missing
    ("not a number", "CZ", None),
    ("", "CZ", None),
    ("603 123 456", "", None),          # no country code and no region to read it in
])
def test_e164(raw: str, region: str, expected: str | None) -> None:
    assert e164(raw, region) == expected


TWILIO_EXAMPLE = ("https://mycompany.com/myapp.php?foo=1&bar=2",
                  {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
                   "From": "+12349013030", "To": "+18005551212"})


def test_the_twilio_signature_matches_twilios_published_example() -> None:
    url, params = TWILIO_EXAMPLE
    assert twilio_signature("12345", url, params.items()) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    # the test server's own implementation agrees
    assert provider_servers.twilio_signature("12345", url, params) == \
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_a_texts_links_go_through_short_links_to_the_signed_click_redirect(
        tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> None:
    clock = SharedClock(tmp_path / "clock")
    with TwilioServer(ACCOUNT_SID, AUTH_TOKEN) as twilio, \
            WhatsAppServer(PHONE_NUMBER_ID, ACCESS_TOKEN, APP_SECRET) as whatsapp:
        port = free_port()
        config = provider_config(tmp_path / "config", port, twilio.url, whatsapp.url)
        settings = config / "kairos.yaml"
        settings.write_text(settings.read_text().replace(
            "delivery:\n", f"delivery:\n  public_url: http://127.0.0.1:{port}\n", 1))
        with LiveEdge(config, redis_url, clock=clock, port=port) as edge, \
                ThreadWorker(config, redis_url, clock):
            person(edge, "ivy", "603 123 456")
            queue(redis_client, "user:ivy", "s-link", "sms",
                  "Shipped: https://shop.test/orders/7. Track it (https://shop.test/t?id=7)!")
            wait_until(lambda: ledger(redis_client, "s-link") == "sent", what="the send")
            [call] = twilio.requests
            found = re.fullmatch(rf"Shipped: http://127\.0\.0\.1:{port}/s/([\w-]{{12}})\. "
                                 rf"Track it \(http://127\.0\.0\.1:{port}/s/([\w-]{{12}})\)!",
                                 call.form["Body"])
            assert found, call.form["Body"]
            clock.advance(MINUTE)  # a person taps a minute later; a scanner at once
            tapped = edge.http.get(f"/s/{found.group(1)}", follow_redirects=False,
                                   headers={"user-agent": "Mozilla/5.0 (iPhone) Mobile"})
            assert tapped.status_code == 302
            assert tapped.headers["location"] == ("https://shop.test/orders/7?utm_source=shop"
                                                  "&utm_medium=sms&utm_campaign=kairos")
            second = edge.http.get(f"/s/{found.group(2)}", follow_redirects=False)
            assert second.headers["location"].startswith("https://shop.test/t?id=7&utm_source=")
            missing = edge.http.get("/s/AAAAAAAAAAAA", follow_redirects=False)
            assert missing.status_code == 404 and missing.json()["field"] == "code"
            wait_until(lambda: [record.event for _, fields in redis_client.xrange(streams.EVENTS)
                                if isinstance(record := streams.decode(fields), streams.Event)
                                and record.event.get("event") == "SMS Clicked"
                                and record.event.get("userId") == "ivy"], what="the click")


def test_a_texts_short_links_are_the_same_on_every_attempt() -> None:
    tokens = Tokens(b"k" * 32)
    template = Token(kind="u", message_id="s-1", profile_id="user:a", channel="sms")
    first = shorten_links("see https://shop.test/a", "https://e.test", tokens, template, "shop")
    again = shorten_links("see https://shop.test/a", "https://e.test", tokens, template, "shop")
    assert first == again and len(first[0]) == len("see https://e.test/s/") + 12
    other = shorten_links("see https://shop.test/a", "https://e.test", Tokens(b"o" * 32),
                          template, "shop")
    assert other[0] != first[0]  # the code is the key's: not to be made without it
