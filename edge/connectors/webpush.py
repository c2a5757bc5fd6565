"""Web Push (RFC 8030) to the subscription the snippet's service worker stored.

Each message is one POST to the subscription's endpoint, with:
- the payload encrypted for that browser alone (RFC 8291, `Content-Encoding:
  aes128gcm`): an ephemeral ECDH key against the subscription's `p256dh` key and
  its `auth` secret, done by http-ece;
- a VAPID token (RFC 8292, `Authorization: vapid t=<JWT>,k=<public key>`) signed
  with the site's private key, so the push service knows the sender is the one the
  browser subscribed with; the JWT's audience is the endpoint's origin, and one
  token per origin is reused until shortly before it expires;
- `TTL` (how long the push service may hold it for an offline browser), `Urgency`,
  and `Topic`, made from the message id: a push service replaces an undelivered
  message with the same topic, and the service worker shows it under the message id
  as its tag, so a repeat after an interrupted attempt replaces the notification
  rather than showing a second one (which is why `dedupes` is True).

Only the push services configured (the browsers' own by default) are called: the
subscription is written by a browser, so it could name any address.

Push services answer 201; 404 or 410 mean the subscription is gone (the browser
unsubscribed, or the permission was withdrawn), and the delivery service removes
it from the person.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import time
from typing import Any, Mapping
from urllib.parse import urlsplit

import http_ece
import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from edge.connectors.base import Failed, Outgoing, RateLimiter, Result, Retry, Sent, http_result
from edge.connectors.http import HttpClient, Unreachable
from edge.runtime.config import WebPushSettings
from edge.runtime.vapid import b64url, load_vapid, unb64url

# A VAPID token may live at most 24 hours; a fresh one is signed this long before.
TOKEN_LIFETIME_S = 12 * 3600
TOKEN_RENEW_S = 3600


def topic_of(message_id: str) -> str:
    """At most 32 characters of the URL-safe alphabet, as RFC 8030 allows a Topic."""
    return b64url(hashlib.sha256(message_id.encode()).digest())[:32]


def payload_of(outgoing: Outgoing) -> bytes:
    """What the service worker reads (snippet/src/sw.js): the title, text and link."""
    message = outgoing.message
    return orjson.dumps({"title": message.title or "", "body": message.body,
                         "link": message.link, "tag": message.message_id})


def encrypt(payload: bytes, subscription: Mapping[str, Any]) -> bytes:
    """The aes128gcm body for one subscription (a fresh sender key and salt each time)."""
    keys = subscription["keys"]
    sender = ec.generate_private_key(ec.SECP256R1())
    return http_ece.encrypt(payload, salt=os.urandom(16), private_key=sender,
                            dh=unb64url(keys["p256dh"]), auth_secret=unb64url(keys["auth"]),
                            version="aes128gcm")


class VapidTokens:
    """One signed VAPID header per push service origin, renewed before it expires."""

    def __init__(self, vapid: Vapid02, subject: str, clock: Any = time.time) -> None:
        self.vapid = vapid
        self.subject = subject
        self.clock = clock
        self._made: dict[str, tuple[float, str]] = {}

    def header(self, endpoint: str) -> str:
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        now = self.clock()
        made = self._made.get(audience)
        if made is not None and made[0] - now > TOKEN_RENEW_S:
            return made[1]
        expires = int(now) + TOKEN_LIFETIME_S
        header = self.vapid.sign({"aud": audience, "exp": expires,
                                  "sub": self.subject})["Authorization"]
        self._made[audience] = (expires, header)
        return header


class WebPushConnector:
    channel = "push"
    dedupes = True  # the Topic and the notification's tag make a repeat replace, not add

    def __init__(self, settings: WebPushSettings,
                 environ: Mapping[str, str] = os.environ) -> None:
        self.settings = settings
        self.limiter = RateLimiter(settings.rate_per_s)
        self.concurrency = settings.concurrency
        self.tokens = VapidTokens(load_vapid(environ[settings.private_key_env]),
                                  settings.subject)
        trusted = ssl.create_default_context(cafile=settings.ca_file) \
            if settings.ca_file else None
        self.http = HttpClient(settings.concurrency, settings.timeout_ms, ssl_context=trusted)

    def allowed(self, endpoint: str) -> bool:
        parts = urlsplit(endpoint)
        host = (parts.hostname or "").lower()
        return parts.scheme == "https" and any(
            host == allowed or host.endswith("." + allowed) for allowed in self.settings.push_hosts)

    async def send(self, outgoing: Outgoing) -> Result:
        try:
            subscription = orjson.loads(outgoing.to)
            endpoint = subscription["endpoint"]
            if not self.allowed(endpoint):
                return Failed(f"the subscription's endpoint is not a known push service "
                              f"({urlsplit(endpoint).hostname}): see delivery.push.push_hosts",
                              gone=True)
            body = encrypt(payload_of(outgoing), subscription)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return Failed(f"invalid push subscription: {type(exc).__name__}", gone=True)
        headers = {"authorization": self.tokens.header(endpoint),
                   "content-encoding": "aes128gcm",
                   "content-type": "application/octet-stream",
                   "ttl": str(self.settings.ttl_s), "urgency": self.settings.urgency,
                   "topic": topic_of(outgoing.message.message_id)}
        try:
            answer = await self.http.post(endpoint, body=body, headers=headers)
        except Unreachable as exc:
            return Retry(exc.reason)
        result = http_result(answer.status, answer.headers, "", answer.text[:200])
        if isinstance(result, Sent):
            # The push service names the message in Location (its id for later).
            return Sent(answer.headers.get("location", "").rsplit("/", 1)[-1])
        return result

    async def close(self) -> None:
        await self.http.close()
