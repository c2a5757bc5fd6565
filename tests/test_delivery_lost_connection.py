"""A provider that takes the whole request and then loses the connection without an
answer: the message is tried again after the backoff, under the same idempotency key
(the webhook's `webhook-id`, the email's `Message-ID`), so the receiver can drop the
repeat, and the message ends sent, recorded once."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from typing import Any

from aiosmtpd.controller import Controller

from edge.store.embedded import free_port
from tests.automation_support import SharedClock, ThreadWorker, wait_until
from tests.support import LiveEdge
from tests.test_delivery import (SECRET, delivery_config, hook_secrets, ledger_state,  # noqa: F401 - hook_secrets: a fixture used by name
                                 person, queue, statuses)

MINUTE = 60_000


class DroppingHttpServer:
    """HTTP on a raw socket: reads each request whole, then closes the connection
    without a word for the first `drops` requests, and answers 200 after that."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.requests: list[tuple[dict[str, str], bytes, bool]] = []  # headers, body, answered
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {name.strip().lower(): value.strip() for name, _, value in
                   (line.partition(":") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        answered = len(self.requests) >= self.drops
        self.requests.append((headers, body, answered))
        if answered:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            await writer.drain()
        writer.close()

    def __enter__(self) -> "DroppingHttpServer":
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", self.port), self._loop)
        self._server = started.result(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def test_a_webhook_whose_connection_is_lost_after_the_request_is_sent_again_under_its_id(
        tmp_path, redis_url, redis_client):
    clock = SharedClock(tmp_path / "clock")
    with DroppingHttpServer(drops=1) as server:
        config = delivery_config(tmp_path / "config", free_port(), webhook_url=server.url)
        with LiveEdge(config, redis_url, clock=clock) as edge, \
                ThreadWorker(config, redis_url, clock):
            person(edge, "lu")
            queue(redis_client, "user:lu", "w-lost", channel="webhook", link=server.url,
                  body='{"order": 7}')
            wait_until(lambda: ledger_state(redis_client, "w-lost") == "retry", what="a retry")
            clock.advance(MINUTE)
            wait_until(lambda: ledger_state(redis_client, "w-lost") == "sent", what="the resend")
    [(first, body, first_answered), (second, again, second_answered)] = server.requests
    assert (first_answered, second_answered) == (False, True)
    assert first["webhook-id"] == second["webhook-id"] == "w-lost"  # the receiver drops the repeat
    assert body == again and b"order" in body
    assert statuses(redis_client, "w-lost") == ["Message Sent", "Message Delivered"]


class _DroppingSmtp:
    """Takes the first message's data, then closes the connection instead of answering."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bool]] = []  # Message-ID, answered

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        answered = bool(self.received)
        self.received.append((str(parsed["Message-ID"]), answered))
        if not answered:
            server.transport.close()
        return "250 2.0.0 Ok: queued as Q1"


def test_an_email_whose_connection_is_lost_after_its_data_keeps_its_message_id(
        tmp_path, redis_url, redis_client):
    clock = SharedClock(tmp_path / "clock")
    handler = _DroppingSmtp()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        config = delivery_config(tmp_path / "config", port)
        with LiveEdge(config, redis_url, clock=clock) as edge, \
                ThreadWorker(config, redis_url, clock):
            person(edge, "mo")
            queue(redis_client, "user:mo", "m-lost")
            wait_until(lambda: ledger_state(redis_client, "m-lost") == "retry", what="a retry")
            clock.advance(MINUTE)
            wait_until(lambda: ledger_state(redis_client, "m-lost") == "sent", what="the resend")
            time.sleep(0.2)
    finally:
        controller.stop()
    [(first, first_answered), (second, second_answered)] = handler.received
    assert (first_answered, second_answered) == (False, True)
    assert first == second  # the receiving side sees one message, delivered twice at most
    assert statuses(redis_client, "m-lost") == ["Message Sent"]
