"""The HTTP client every provider connector, destination and audience export calls with.

aiohttp, one session per user with a bounded connection pool: measured side by side
in bench/channels.py (webhooks, three interleaved rounds) at 930-1,040 µs of worker
CPU per message against 1,860-2,100 µs with httpx, whose pool and anyio layers cost
more than the rest of a delivery together.

A session belongs to the event loop it was made in, so it is made at the first
request, not in a constructor that may run before the loop. An answer is read
whole; a timeout or a connection that fails or is lost is `Unreachable`, which the
callers turn into a retry.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

MAX_ANSWER_BYTES = 1024 * 1024  # a provider's answer is read up to this much


class Unreachable(Exception):
    """No answer: timed out, refused, reset, or closed before the reply."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class HttpClient:
    def __init__(self, concurrency: int = 32, timeout_ms: int = 10_000,
                 ssl_context: ssl.SSLContext | None = None,
                 headers: Mapping[str, str] | None = None,
                 auth: tuple[str, str] | None = None) -> None:
        self.concurrency = concurrency
        self.timeout = aiohttp.ClientTimeout(total=timeout_ms / 1000)
        self.ssl_context = ssl_context
        self.headers = dict(headers or {})
        if auth is not None:
            pair = f"{auth[0]}:{auth[1]}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.concurrency,
                                             ssl=self.ssl_context if self.ssl_context else True)
            self._session = aiohttp.ClientSession(timeout=self.timeout, connector=connector,
                                                  headers=self.headers)
        return self._session

    async def request(self, method: str, url: str, *, body: bytes | None = None,
                      form: Mapping[str, str] | None = None,
                      headers: Mapping[str, str] | None = None,
                      timeout_ms: int | None = None) -> Answer:
        options: dict[str, Any] = {"allow_redirects": False}
        if timeout_ms is not None:
            options["timeout"] = aiohttp.ClientTimeout(total=timeout_ms / 1000)
        try:
            async with self._open().request(method, url, data=form if form is not None else body,
                                            headers=headers, **options) as answer:
                content = await answer.content.read(MAX_ANSWER_BYTES)
                return Answer(answer.status, answer.headers, content)
        except asyncio.TimeoutError:
            raise Unreachable("timed out") from None
        except aiohttp.ClientError as exc:
            raise Unreachable(f"connection: {type(exc).__name__}") from None

    async def post(self, url: str, **kwargs: Any) -> Answer:
        return await self.request("POST", url, **kwargs)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
