"""Destinations: the events a destination asks for reach it in signed batches, in order,
through its own consumer group; a busy destination is asked again, a refusing one gets
its batch dead-lettered; an erasure is forwarded as a deletion request; a worker killed
with -9 mid-batch loses nothing; /metrics shows each destination's lag."""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from edge.store import destinations as store
from tests.automation_support import ProcessWorker, SharedClock, ThreadWorker, wait_until
from tests.channel_servers import WebhookReceiver
from tests.support import SECRET_KEY, SETTINGS_YAML, LiveEdge, basic, write_config

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_" + base64.b64encode(b"d" * 32).decode()


@pytest.fixture(autouse=True)
def destination_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_SECRET", SECRET)


def config_for(target: Path, receiver: WebhookReceiver, extra: str = "") -> Path:
    return write_config(target, settings_yaml=SETTINGS_YAML + f"""
automation:
  start: all
  visibility_ms: 1000
destinations:
  crm:
    url: {receiver.url}
    secret_env: CRM_SECRET
    events: [Order Completed, identify]
    when: 'event.type == "identify" or event.properties.revenue > 10'
    batch: 50
    backoff_ms: 50
    max_attempts: 4
{extra}""")


@contextlib.contextmanager
def forwarding(tmp_path: Path, redis_url: str, client: redis.Redis,
               receiver: WebhookReceiver) -> Iterator[LiveEdge]:
    """An edge and a worker forwarding to `receiver`, once the destination's group
    reads the stream."""
    config = config_for(tmp_path / "config", receiver)
    clock = SharedClock(tmp_path / "clock")
    with LiveEdge(config, redis_url, clock=clock) as edge, \
            ThreadWorker(config, redis_url, clock):
        wait_until(lambda: reading(client), what="the group")
        yield edge


def reading(client: redis.Redis) -> bool:
    """The destination's group exists: events from now on reach it."""
    try:
        return any(g["name"] == store.group_of("crm").encode()
                   for g in client.xinfo_groups("kairos:events"))
    except redis.ResponseError:
        return False


def forwarded(receiver: WebhookReceiver) -> list[dict]:
    """Every event the destination accepted, in the order it received them."""
    found = []
    for call in receiver.calls:
        body = json.loads(call.body)
        if call.verified and body["type"] == "events":
            found += body["data"]["events"]
    return found


def accepted(receiver: WebhookReceiver) -> list[dict]:
    return [json.loads(c.body) for c in receiver.calls if c.verified]


def test_the_chosen_events_arrive_signed_in_order(tmp_path, redis_url, redis_client):
    with WebhookReceiver(SECRET) as receiver:
        with forwarding(tmp_path, redis_url, redis_client, receiver) as edge:
            edge.post("/v1/page", {"userId": "ana", "name": "Home"})
            edge.track("Order Completed", userId="ana", messageId="o-big",
                       properties={"revenue": 50})
            edge.track("Order Completed", userId="ana", messageId="o-small",
                       properties={"revenue": 5})
            edge.post("/v1/identify", {"userId": "ana", "messageId": "i-1",
                                       "traits": {"plan": "gold"}})
            edge.track("Product Viewed", userId="ana", properties={"revenue": 99})
            events = wait_until(lambda: len(forwarded(receiver)) >= 2 and forwarded(receiver),
                                what="the forwarded events")
            assert [e["messageId"] for e in events] == ["o-big", "i-1"]
            assert events[0]["profile_id"] == "user:ana" and events[0]["userId"] == "ana"
            assert all(call.verified for call in receiver.calls)
            assert all(c.webhook_id.startswith("crm:") for c in receiver.calls)
            metrics = edge.http.get("/metrics", headers=basic(SECRET_KEY)).text
            assert 'kairos_destination_forwarded_total{destination="crm"} 2' in metrics
            assert 'kairos_destination_lag_seconds{destination="crm"}' in metrics


def test_a_busy_destination_is_asked_again_and_a_refusal_is_dead_lettered(
        tmp_path, redis_url, redis_client):
    with WebhookReceiver(SECRET, script=[(503, {}, 0), (429, {"Retry-After": "0"}, 0),
                                         (200, {}, 0), (400, {}, 0)]) as receiver:
        with forwarding(tmp_path, redis_url, redis_client, receiver) as edge:
            edge.track("Order Completed", userId="bo", messageId="o-1", properties={"revenue": 20})
            wait_until(lambda: len(receiver.calls) >= 3, what="three attempts")
            assert len({c.webhook_id for c in receiver.calls}) == 1  # the same batch each time
            edge.track("Order Completed", userId="bo", messageId="o-2", properties={"revenue": 30})
            wait_until(lambda: redis_client.xlen(store.DEAD), what="the dead letter")
            [(_, dead)] = redis_client.xrange(store.DEAD)
            assert dead[b"destination"] == b"crm" and dead[b"reason"].startswith(b"400")
            assert json.loads(dead[b"messages"]) == ["o-2"]
            edge.track("Order Completed", userId="bo", messageId="o-3", properties={"revenue": 40})
            wait_until(lambda: [e["messageId"] for e in forwarded(receiver)][-1:] == ["o-3"],
                       what="the next batch")
            assert len(receiver.calls) == 5
            metrics = edge.http.get("/metrics", headers=basic(SECRET_KEY)).text
            assert 'kairos_destination_dead_total{destination="crm"} 1' in metrics


def test_an_erasure_is_forwarded_as_a_deletion_request(tmp_path, redis_url, redis_client):
    with WebhookReceiver(SECRET) as receiver:
        with forwarding(tmp_path, redis_url, redis_client, receiver) as edge:
            edge.post("/v1/identify", {"userId": "cy", "anonymousId": "a-cy",
                                       "traits": {"email": "cy@example.com"}})
            wait_until(lambda: forwarded(receiver), what="the identify")
            assert edge.http.delete("/v1/profiles/user:cy",
                                    headers=basic(SECRET_KEY)).status_code == 200
            deletion = wait_until(lambda: [b for b in accepted(receiver)
                                           if b["type"] == "profile.deleted"], what="the deletion")
            [request] = deletion
            assert request["data"]["profile_id"] == "user:cy"
            assert "anon:a-cy" in request["data"]["identifiers"]
            # sent: the erased person's identifiers are not kept any longer
            wait_until(lambda: redis_client.xlen(store.ERASURES) == 0, what="the trim")


def test_a_worker_killed_mid_batch_leaves_nothing_behind(tmp_path, redis_url, redis_client):
    # the first request is held for 30 s: the worker is killed while waiting for it
    with WebhookReceiver(SECRET, script=[(200, {}, 30)]) as receiver:
        config = config_for(tmp_path / "config", receiver)
        clock = SharedClock(tmp_path / "clock")
        with LiveEdge(config, redis_url, clock=clock) as edge:
            first = ProcessWorker(config, redis_url, clock, "w1").start()
            try:
                wait_until(lambda: reading(redis_client), timeout_s=20, what="the group")
                edge.track("Order Completed", userId="di", messageId="o-1",
                           properties={"revenue": 11})
                wait_until(lambda: receiver.calls, timeout_s=20, what="the held request")
                edge.track("Order Completed", userId="di", messageId="o-2",
                           properties={"revenue": 12})
                first.kill()
            finally:
                first.stop()
            second = ProcessWorker(config, redis_url, clock, "w2").start()
            try:
                wait_until(lambda: {"o-1", "o-2"} <= {e["messageId"] for e in after_first(receiver)},
                           timeout_s=20, what="the batch taken over")
            finally:
                second.stop()
            assert redis_client.xpending("kairos:events", store.group_of("crm"))["pending"] == 0


def after_first(receiver: WebhookReceiver) -> list[dict]:
    """The events of every request after the first (which the killed worker never saw
    answered)."""
    return [event for call in receiver.calls[1:] if call.verified
            for event in json.loads(call.body)["data"]["events"]]


def test_check_explains_a_condition_the_destination_cannot_use(tmp_path):
    receiver = WebhookReceiver(SECRET)
    config = config_for(tmp_path / "config", receiver).joinpath("kairos.yaml")
    config.write_text(config.read_text().replace(
        """when: 'event.type == "identify" or event.properties.revenue > 10'""",
        """when: 'traits.plan == "gold"'"""))
    answer = subprocess.run([sys.executable, "-m", "edge.cli", "check", str(config.parent)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60,
                            env={"CRM_SECRET": SECRET, "PATH": "/usr/bin:/bin"})
    assert answer.returncode == 1
    assert "destinations.crm.when" in answer.stderr
    assert "'traits' cannot be used" in answer.stderr
