"""Real servers the delivery tests send to: an SMTP server (aiosmtpd) and a webhook
receiver that checks Standard Webhooks signatures, each able to answer as a failing
provider would."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edge.store.embedded import free_port


class _Handler:
    def __init__(self, catcher: "SmtpCatcher") -> None:
        self.catcher = catcher

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        local = address.partition("@")[0]
        if local.startswith("bounce"):
            return "550 5.1.1 No such user here"
        if local.startswith("later") and self.catcher.deferred.get(address, 0) < 1:
            self.catcher.deferred[address] = self.catcher.deferred.get(address, 0) + 1
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.catcher.hold_s:
            await asyncio.sleep(self.catcher.hold_s)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.catcher.messages.append(parsed)
        return f"250 2.0.0 Ok: queued as Q{len(self.catcher.messages):05d}"


class SmtpCatcher:
    """An SMTP server on a free port. Recipients named bounce* are refused (550),
    later* are deferred once (451); `hold_s` keeps DATA waiting."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.deferred: dict[str, int] = {}
        self.hold_s = 0.0
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> "SmtpCatcher":
        self._controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._controller.stop()


@dataclass
class Call:
    webhook_id: str
    body: bytes
    verified: bool
    signatures: str


@dataclass
class WebhookReceiver:
    """A receiver on a free port: checks each request's signature against `secret`;
    answers from `script` in order ((status, headers, delay_s)), then 200."""

    secret: str
    script: list[tuple[int, dict[str, str], float]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        app = Starlette(routes=[Route("/hooks", self._hook, methods=["POST"]),
                                Route("/hooks/{rest:path}", self._hook, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                     log_level="warning"))
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()),
                                        daemon=True)

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        try:
            Webhook(self.secret).verify(body, headers)
            verified = True
        except WebhookVerificationError:
            verified = False
        self.calls.append(Call(headers.get("webhook-id", ""), body, verified,
                               headers.get("webhook-signature", "")))
        if self.script:
            status, extra, delay = self.script.pop(0)
            if delay:
                await asyncio.sleep(delay)
            return Response(status_code=status, headers=extra)
        return Response(status_code=200 if verified else 401)

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the webhook receiver did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.should_exit = True
        self._thread.join(10)
