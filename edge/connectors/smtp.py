"""Email over SMTP (aiosmtplib): a pool of connections, STARTTLS or implicit TLS, auth
with credentials from the environment.

How an answer ends the attempt: accepted (250) is sent, with the server's queue id
when it says one; a 5xx for the recipient is a bounce (the address is suppressed);
any other 5xx failed; 4xx, timeouts and lost connections are tried again. A
connection that breaks after the message was handed over may deliver it twice on
the retry, as with any SMTP client; the Message-ID stays the same so that the
receiving side can drop the repeat.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Mapping

import aiosmtplib

from edge.connectors import email_message
from edge.connectors.base import Failed, Outgoing, RateLimiter, Result, Retry, Sent
from edge.runtime.config import EmailSettings

QUEUE_ID = re.compile(r"(?:queued as|id=|<)\s*([A-Za-z0-9._@-]{4,})", re.IGNORECASE)


class EmailConnector:
    channel = "email"
    dedupes = False

    def __init__(self, settings: EmailSettings, environ: Mapping[str, str] = os.environ) -> None:
        self.settings = settings
        self.username = environ.get(settings.username_env) if settings.username_env else None
        self.password = environ.get(settings.password_env) if settings.password_env else None
        self.limiter = RateLimiter(settings.rate_per_s)
        self.concurrency = settings.pool
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._open = 0

    async def _connection(self) -> aiosmtplib.SMTP:
        try:
            return self._idle.get_nowait()
        except asyncio.QueueEmpty:
            pass
        security = self.settings.security
        smtp = aiosmtplib.SMTP(hostname=self.settings.host, port=self.settings.port,
                               use_tls=security == "tls",
                               start_tls=True if security == "starttls" else False,
                               validate_certs=self.settings.verify_certificates,
                               timeout=self.settings.timeout_ms / 1000)
        await smtp.connect()
        if self.username:
            await smtp.login(self.username, self.password or "")
        self._open += 1
        return smtp

    def _give_back(self, smtp: aiosmtplib.SMTP) -> None:
        if smtp.is_connected and self._idle.qsize() < self.settings.pool:
            self._idle.put_nowait(smtp)
        else:
            self._drop(smtp)

    def _drop(self, smtp: aiosmtplib.SMTP) -> None:
        self._open = max(0, self._open - 1)
        smtp.close()

    async def send(self, outgoing: Outgoing) -> Result:
        mail = email_message.build(outgoing)
        try:
            smtp = await self._connection()
        except aiosmtplib.SMTPAuthenticationError as exc:
            return Failed(f"SMTP login refused: {exc.code} {exc.message}")
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            return Retry(f"SMTP connect: {exc}")
        try:
            refused, reply = await smtp.sendmail(mail.envelope_from, [mail.envelope_to],
                                                  mail.data)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            self._give_back(smtp)
            first = exc.recipients[0] if exc.recipients else None
            code = first.code if first is not None else 550
            text = f"{code} {first.message if first is not None else 'recipient refused'}"
            if 500 <= code < 600:
                return Failed(f"recipient refused: {text}", bounced=True)
            return Retry(f"recipient deferred: {text}")
        except aiosmtplib.SMTPResponseException as exc:
            self._give_back(smtp)
            if 500 <= exc.code < 600:
                return Failed(f"SMTP {exc.code} {exc.message}")
            return Retry(f"SMTP {exc.code} {exc.message}")
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            self._drop(smtp)
            return Retry(f"SMTP: {type(exc).__name__}: {exc}")
        self._give_back(smtp)
        found = QUEUE_ID.search(reply or "")
        return Sent(found.group(1) if found else mail.message_id, reference=mail.message_id)

    async def close(self) -> None:
        while not self._idle.empty():
            smtp = self._idle.get_nowait()
            try:
                await asyncio.wait_for(smtp.quit(), 2)
            except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
                smtp.close()
