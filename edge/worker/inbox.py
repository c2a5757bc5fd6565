"""The demo's inbox: an SMTP server on a local port that keeps the last messages it
receives in Redis, for /demo/inbox to show. `make serve` points the email connector
at it, so a newcomer sees the welcome and abandoned-cart emails arrive, sent through
the same SMTP path a real relay would get. Never for production: anything sent to it
is shown to anyone who can open the demo."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import time
from email.message import EmailMessage
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiosmtpd.smtp import SMTP

log = logging.getLogger("kairos.inbox")

INBOX_KEY = "kairos:demo:inbox"  # list of JSON messages, newest first
KEEP = 200


class _Keeper:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        if not isinstance(parsed, EmailMessage):
            return "554 not a message"
        html = parsed.get_body(("html",))
        text = parsed.get_body(("plain",))
        record = {"to": list(envelope.rcpt_tos), "from": str(parsed["From"] or ""),
                  "subject": str(parsed["Subject"] or ""), "at": int(time.time() * 1000),
                  "message_id": str(parsed["Message-ID"] or ""),
                  "html": html.get_content() if html is not None else "",
                  "text": text.get_content() if text is not None else ""}
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.lpush(INBOX_KEY, orjson.dumps(record))
            pipe.ltrim(INBOX_KEY, 0, KEEP - 1)
            await pipe.execute()
        return "250 OK: kept in the demo inbox"


async def serve_inbox(client: aioredis.Redis, port: int) -> asyncio.AbstractServer | None:
    """The inbox on 127.0.0.1:`port`; None (and a warning) when the port is taken."""
    loop = asyncio.get_running_loop()
    keeper = _Keeper(client)
    try:
        return await loop.create_server(lambda: SMTP(keeper, hostname="kairos-demo-inbox"),
                                        host="127.0.0.1", port=port)
    except OSError as exc:
        log.warning("the demo inbox could not listen on port %d: %s", port, exc)
        return None


async def messages(client: aioredis.Redis, to: str | None = None,
                   count: int = 50) -> list[dict[str, Any]]:
    found = [orjson.loads(raw) for raw in await client.lrange(INBOX_KEY, 0, KEEP - 1)]
    if to:
        wanted = to.strip().lower()
        found = [m for m in found if wanted in (r.lower() for r in m["to"])]
    return found[:count]
