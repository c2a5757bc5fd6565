"""Webhooks, signed by the Standard Webhooks scheme (https://www.standardwebhooks.com):
`webhook-id` (the message id, the same on every retry, so receivers drop repeats),
`webhook-timestamp` (seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`, one per secret while a secret is being rotated).

A journey's webhook step may only call a configured endpoint: its URL must begin
with the endpoint's. An endpoint that answers 410 Gone is disabled until its
configuration changes (the disabled mark records the URL it was given for).
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import Mapping

import orjson
import redis.asyncio as aioredis
from standardwebhooks.webhooks import Webhook

from edge.connectors.base import Failed, Outgoing, RateLimiter, Result, Retry, Sent, http_result
from edge.connectors.http import HttpClient, Unreachable
from edge.runtime.config import WebhookEndpoint, WebhookSettings

DISABLED_KEY = "kairos:webhooks:disabled"  # hash: endpoint name -> the URL that answered 410
DISABLED_REFRESH_S = 1.0


class Signer:
    """Signs one body under every secret an endpoint currently accepts."""

    def __init__(self, secrets: list[str]) -> None:
        if not secrets:
            raise ValueError("a webhook endpoint needs at least one secret")
        self._signers = [Webhook(secret) for secret in secrets]

    def headers(self, message_id: str, body: bytes, at: datetime) -> dict[str, str]:
        text = body.decode()
        signatures = " ".join(signer.sign(message_id, at, text) for signer in self._signers)
        return {"webhook-id": message_id, "webhook-timestamp": str(int(at.timestamp())),
                "webhook-signature": signatures, "content-type": "application/json"}


def endpoint_secrets(endpoint: WebhookEndpoint, environ: Mapping[str, str]) -> list[str]:
    """The endpoint's secrets from the environment: the current one, then the one being
    rotated out (receivers accept either while both are listed)."""
    names = [endpoint.secret_env] + ([endpoint.previous_secret_env]
                                     if endpoint.previous_secret_env else [])
    return [environ[name] for name in names if environ.get(name)]


class WebhookConnector:
    channel = "webhook"
    dedupes = True  # the receiver drops a repeated webhook-id

    def __init__(self, settings: WebhookSettings, client: aioredis.Redis,
                 environ: Mapping[str, str] = os.environ) -> None:
        self.settings = settings
        self.redis = client
        self.limiter = RateLimiter(settings.rate_per_s)
        self.concurrency = settings.concurrency
        self.signers = {name: Signer(endpoint_secrets(endpoint, environ))
                        for name, endpoint in settings.endpoints.items()}
        self.http = HttpClient(settings.concurrency, settings.timeout_ms)
        self._disabled: dict[str, str] = {}  # endpoint -> URL, as last read from Redis
        self._disabled_read_at = float("-inf")

    def endpoint_for(self, url: str) -> str | None:
        """The configured endpoint `url` belongs to (the longest matching prefix)."""
        matches = [(len(e.url), name) for name, e in self.settings.endpoints.items()
                   if url == e.url or url.startswith(e.url.rstrip("/") + "/")
                   or url.startswith(e.url + "?")]
        return max(matches)[1] if matches else None

    async def send(self, outgoing: Outgoing) -> Result:
        message = outgoing.message
        url = outgoing.to
        name = self.endpoint_for(url)
        if name is None:
            return Failed(f"{url!r} is not a configured webhook endpoint")
        if await self._disabled_url(name) == self.settings.endpoints[name].url:
            return Failed(f"endpoint {name} is disabled: it answered 410 Gone")
        body = orjson.dumps({
            "type": "journey.webhook" if message.journey else "rule.webhook",
            "timestamp": message.timestamp,
            "data": {"profile_id": message.profile_id, "journey": message.journey,
                     "step": message.step, "run": message.run, "rule": message.rule or None,
                     "body": message.body}})
        headers = self.signers[name].headers(outgoing.idempotency_key, body,
                                             datetime.now(timezone.utc))
        try:
            answer = await self.http.post(url, body=body, headers=headers)
        except Unreachable as exc:
            return Retry(exc.reason)
        result = http_result(answer.status, answer.headers, "", answer.text[:200])
        if isinstance(result, Sent):
            return Sent(answer.headers.get("x-request-id", ""), delivered=True)
        if isinstance(result, Failed) and answer.status == 410:
            await self.redis.hset(DISABLED_KEY, name, self.settings.endpoints[name].url)
            self._disabled[name] = self.settings.endpoints[name].url
        return result

    async def _disabled_url(self, name: str) -> str | None:
        """The URL an endpoint was disabled for, read from Redis at most once a second:
        another worker's 410 is honoured within that second, and a send costs no round
        trip for it."""
        now = time.monotonic()
        if now - self._disabled_read_at >= DISABLED_REFRESH_S:
            self._disabled_read_at = now
            self._disabled = {field.decode(): url.decode() for field, url in
                              (await self.redis.hgetall(DISABLED_KEY)).items()}
        return self._disabled.get(name)

    async def close(self) -> None:
        await self.http.close()
