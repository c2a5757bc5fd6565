"""SMS through a Twilio-compatible Messages API.

One form-encoded POST per message to `/2010-04-01/Accounts/{AccountSid}/Messages.json`
(HTTP Basic, AccountSid:AuthToken), answered 201 with the message's `sid`, which the
status callbacks (edge/http/callbacks.py) name later. Twilio keeps no idempotency key,
so a send interrupted mid-request cannot be resent safely (`dedupes` is False: the
delivery service dead-letters it instead of risking a second text).

An error answer carries Twilio's own code (`{"code": 21211, "message": ...}`); the codes
that mean the number itself cannot take texts end the message as bounced, which
suppresses the number for later messages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Iterable, Mapping

import orjson

from edge.connectors.base import Failed, Outgoing, RateLimiter, Result, Sent, Retry, http_result
from edge.connectors.http import Answer, HttpClient, Unreachable
from edge.connectors.phones import e164
from edge.runtime.config import SmsSettings

API_VERSION = "2010-04-01"
# 21211: the 'To' number is not valid; 21614: it is not a mobile number (cannot take texts).
BOUNCING_CODES = frozenset({21211, 21614})


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """X-Twilio-Signature: base64 of HMAC-SHA1 under the auth token of the URL Twilio
    requested followed by each POST parameter, sorted by name (then value), its name
    immediately followed by its value."""
    data = url + "".join(name + value for name, value in sorted(set(params)))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def credentials(settings: SmsSettings, environ: Mapping[str, str]) -> tuple[str, str]:
    """(AccountSid, AuthToken) from the environment variables the settings name."""
    return environ.get(settings.account_sid_env, ""), environ.get(settings.auth_token_env, "")


class SmsConnector:
    channel = "sms"
    dedupes = False  # Twilio takes no idempotency key: a repeat is a second text

    def __init__(self, settings: SmsSettings, environ: Mapping[str, str] = os.environ) -> None:
        self.settings = settings
        account_sid, auth_token = credentials(settings, environ)
        self.url = (f"{settings.base_url.rstrip('/')}/{API_VERSION}/Accounts/{account_sid}"
                    "/Messages.json")
        self.limiter = RateLimiter(settings.rate_per_s)
        self.concurrency = settings.concurrency
        self.http = HttpClient(settings.concurrency, settings.timeout_ms,
                               auth=(account_sid, auth_token))

    def form(self, to: str, body: str) -> dict[str, str]:
        settings = self.settings
        form = {"To": to, "Body": body}
        if settings.messaging_service_sid:
            form["MessagingServiceSid"] = settings.messaging_service_sid
        else:
            form["From"] = settings.sender
        if settings.status_callback_url:
            form["StatusCallback"] = settings.status_callback_url
        return form

    async def send(self, outgoing: Outgoing) -> Result:
        to = e164(outgoing.to, self.settings.default_region)
        if to is None:
            return Failed(f"invalid phone number: not a valid number "
                          f"(default region {self.settings.default_region})")
        try:
            answer = await self.http.post(self.url, form=self.form(to, outgoing.message.body))
        except Unreachable as exc:
            return Retry(exc.reason)
        return read_answer(answer)

    async def close(self) -> None:
        await self.http.close()


def read_answer(answer: Answer) -> Result:
    """Sent with the message's sid, or what Twilio's error code says."""
    try:
        body = orjson.loads(answer.body) if answer.body else {}
    except orjson.JSONDecodeError:
        body = {}
    body = body if isinstance(body, dict) else {}
    if 200 <= answer.status < 300:
        sid = body.get("sid")
        return Sent(sid if isinstance(sid, str) else "")
    code, message = body.get("code"), body.get("message")
    hint = f"Twilio {code}: {message}" if code is not None else answer.text[:200]
    result = http_result(answer.status, answer.headers, "", hint)
    if isinstance(result, Failed) and code in BOUNCING_CODES:
        return Failed(result.reason, bounced=True)
    return result
