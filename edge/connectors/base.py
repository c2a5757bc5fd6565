"""What every connector takes and answers: one outgoing message in, one typed outcome out.

A connector knows its provider's request format and how the provider answers; the
delivery service (edge/worker/delivery.py) does the rest: the ledger that keeps a
message from going out twice, the checks just before sending, retries, dead letters
and the status events. So a connector never retries by itself and never raises for
an answer it understands: it says Sent, Retry or Failed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Mapping, Protocol

import msgspec

from edge.store.streams import OutboundMessage


class Outgoing(msgspec.Struct, frozen=True, kw_only=True):
    """One message to one recipient, with everything the provider needs."""

    message: OutboundMessage
    site: str
    to: str  # the address: an email, an E.164 number, a push subscription (JSON), a URL
    idempotency_key: str  # the message id: what a provider that dedupes is given
    sender: str = ""  # the site's sender (email From, SMS sender id)
    first_name: str = ""
    unsubscribe_url: str = ""  # signed, one click (RFC 8058 for email)
    open_pixel_url: str = ""  # signed; "" when opens are not tracked


class Sent(msgspec.Struct, frozen=True):
    provider_id: str
    delivered: bool = False  # the provider confirmed delivery in its answer (a webhook's 2xx)
    # how reports that come later name the message, when not by provider_id (an email's
    # Message-ID, which complaints and bounce notifications quote)
    reference: str = ""


class Retry(msgspec.Struct, frozen=True):
    reason: str
    after_ms: int | None = None  # what the provider asked for (Retry-After), if it did


class Failed(msgspec.Struct, frozen=True):
    reason: str
    bounced: bool = False  # the address does not take mail: suppressed from now on
    gone: bool = False  # the endpoint or subscription no longer exists


Result = Sent | Retry | Failed


class Connector(Protocol):
    channel: str
    # Whether resending under the same idempotency key is safe after an interrupted
    # attempt (the provider, or the receiver, drops the repeat).
    dedupes: bool
    limiter: "RateLimiter"
    concurrency: int

    async def send(self, outgoing: Outgoing) -> Result: ...

    async def close(self) -> None: ...


class RateLimiter:
    """A token bucket: at most `rate` sends a second on average, `burst` at once.
    `rate` 0 means unlimited."""

    def __init__(self, rate: float, burst: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self.tokens = self.burst
        self.clock = clock
        self.updated = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if self.rate <= 0:
            return
        async with self._lock:  # waiters are served in order
            while True:
                now = self.clock()
                self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


def http_result(status: int, headers: Mapping[str, str], provider_id: str,
                body_hint: str = "") -> Result:
    """How an HTTP provider's answer ends an attempt: 2xx sent; 408, 425, 429 and 5xx
    again later (with the Retry-After asked for); 404 and 410 gone; other 4xx failed."""
    if 200 <= status < 300:
        return Sent(provider_id)
    reason = f"HTTP {status}" + (f": {body_hint[:200]}" if body_hint else "")
    if status in (408, 425, 429) or status >= 500:
        return Retry(reason, retry_after_ms(headers.get("retry-after")))
    if status in (404, 410):
        return Failed(reason, gone=True)
    return Failed(reason)


def retry_after_ms(value: str | None) -> int | None:
    """Retry-After in seconds (the HTTP-date form is read as no wish), capped at a day."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return int(min(max(seconds, 0.0), 86_400.0) * 1000)
