"""WhatsApp through the Cloud API: `POST {base_url}/{api_version}/{phone_number_id}/messages`,
JSON, with the access token as a Bearer token; answered `{"messages": [{"id": "wamid..."}]}`.

WhatsApp lets a business write freely only within 24 hours of the person's last message
to it (the customer-service window); outside it only an approved template may be sent.
The callback route (edge/http/callbacks.py) opens the window when the person writes,
as a Redis key per number that expires with it; the connector sends the message's text
as it is while the window is open, and otherwise the configured template with the text
as its one body parameter. The window is kept in wall time, as WhatsApp keeps it.

The Cloud API keeps no idempotency key either: `dedupes` is False.

| key | type | holds |
|---|---|---|
| `kairos:whatsapp:window:{<number's digits>}` | string | when the person last wrote (wall clock, ms); expires 24 h after |
"""

from __future__ import annotations

import os
import time
from typing import Any, Mapping

import orjson
import redis.asyncio as aioredis

from edge.connectors.base import Failed, Outgoing, RateLimiter, Result, Retry, Sent, http_result
from edge.connectors.http import Answer, HttpClient, Unreachable
from edge.connectors.phones import e164
from edge.runtime.config import WhatsAppSettings

WINDOW_MS = 24 * 3_600_000
# The window is taken as closed a little early: a text that arrives at the API just after
# it closed is refused (131047), and then goes again as the template.
WINDOW_MARGIN_MS = 5 * 60_000
# Error codes of the Cloud API that a later attempt may get past: throttling, a busy or
# failing service, and (131047) a window that closed meanwhile.
RETRY_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131047, 131056, 133004})
WINDOW_CLOSED = 131047


def window_key(number: str) -> str:
    """The window's key for a number in E.164 or as WhatsApp writes it (digits only)."""
    return f"kairos:whatsapp:window:{{{number.lstrip('+')}}}"


async def open_window(client: aioredis.Redis, number: str, wrote_ms: int | None = None) -> None:
    """The person behind `number` wrote at `wrote_ms` (now by default): the window is
    open for 24 hours from then. An older message does not shorten a newer window."""
    now = wall_ms()
    wrote = min(wrote_ms if wrote_ms is not None else now, now)
    left = wrote + WINDOW_MS - now
    if left <= 0:
        return
    key = window_key(number)
    known = await client.get(key)
    if known is not None and int(known) >= wrote:
        return
    await client.set(key, str(wrote), px=left)


async def window_open(client: aioredis.Redis, number: str) -> bool:
    known = await client.get(window_key(number))
    return known is not None and int(known) + WINDOW_MS - WINDOW_MARGIN_MS > wall_ms()


async def close_window(client: aioredis.Redis, number: str) -> None:
    await client.delete(window_key(number))


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def text_message(to: str, body: str) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
            "type": "text", "text": {"body": body}}


def template_message(to: str, settings: WhatsAppSettings, body: str) -> dict[str, Any]:
    # A template parameter may hold no new lines or tabs, nor more than four spaces in a row.
    parameter = " ".join(body.split())
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
            "type": "template",
            "template": {"name": settings.template, "language": {"code": settings.language},
                         "components": [{"type": "body", "parameters": [
                             {"type": "text", "text": parameter}]}]}}


class WhatsAppConnector:
    channel = "whatsapp"
    dedupes = False  # the Cloud API takes no idempotency key: a repeat is a second message

    def __init__(self, settings: WhatsAppSettings, client: aioredis.Redis,
                 environ: Mapping[str, str] = os.environ) -> None:
        self.settings = settings
        self.redis = client
        self.url = (f"{settings.base_url.rstrip('/')}/{settings.api_version}/"
                    f"{settings.phone_number_id}/messages")
        self.limiter = RateLimiter(settings.rate_per_s)
        self.concurrency = settings.concurrency
        token = environ.get(settings.access_token_env, "")
        self.http = HttpClient(settings.concurrency, settings.timeout_ms,
                               headers={"Authorization": f"Bearer {token}"})

    async def send(self, outgoing: Outgoing) -> Result:
        number = e164(outgoing.to, self.settings.default_region)
        if number is None:
            return Failed(f"invalid phone number: not a valid number "
                          f"(default region {self.settings.default_region})")
        to = number.lstrip("+")
        body = outgoing.message.body
        free = await window_open(self.redis, to)
        payload = text_message(to, body) if free else template_message(to, self.settings, body)
        try:
            answer = await self.http.post(self.url, body=orjson.dumps(payload),
                                          headers={"Content-Type": "application/json"})
        except Unreachable as exc:
            return Retry(exc.reason)
        result, code = read_answer(answer)
        if code == WINDOW_CLOSED:
            await close_window(self.redis, to)  # the next attempt sends the template
        return result

    async def close(self) -> None:
        await self.http.close()


def read_answer(answer: Answer) -> tuple[Result, int | None]:
    """Sent with the message's wamid, or what the Cloud API's error says; and its code."""
    try:
        body = orjson.loads(answer.body) if answer.body else {}
    except orjson.JSONDecodeError:
        body = {}
    body = body if isinstance(body, dict) else {}
    if 200 <= answer.status < 300:
        messages = body.get("messages")
        first = messages[0] if isinstance(messages, list) and messages else {}
        wamid = first.get("id") if isinstance(first, dict) else None
        return Sent(wamid if isinstance(wamid, str) else ""), None
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    hint = (f"WhatsApp {code}: {error.get('message', '')}" if code is not None
            else answer.text[:200])
    result = http_result(answer.status, answer.headers, "", hint)
    if code in RETRY_CODES and isinstance(result, Failed):
        return Retry(result.reason), code
    return result, code
