"""Provider callbacks: what became of an SMS, a WhatsApp message or an email after the
provider took it, and the WhatsApp messages people send (which open the 24-hour window).

- `POST /v1/callbacks/sms`: Twilio's status callback, form-encoded, signed with the auth
  token (X-Twilio-Signature over the callback URL as configured and the sorted params).
- `GET /v1/callbacks/whatsapp`: Meta's subscription check (hub.mode, hub.verify_token,
  hub.challenge).
- `POST /v1/callbacks/whatsapp`: Meta's webhook, JSON, signed with the app secret
  (X-Hub-Signature-256: HMAC-SHA256 of the raw body).

- `POST /v1/callbacks/email`: a complaint (RFC 5965 feedback report) or a late bounce
  (RFC 3464 delivery status notification), the mail as it arrived at the feedback or
  bounce address, posted by whatever reads that mailbox with a secret key of scope
  `delivery:report`: mail carries no signature we could check.

Providers call the others, not holders of our keys: a request is genuine only when its
signature is, so a missing or wrong one is refused (403) before anything is read from
Redis. A provider id the ledger does not know (a message sent elsewhere, or forgotten
after `ledger_days`) is acknowledged and ignored: refusing it would only make the
provider retry. Each status becomes a status event through the edge's pipeline, under
a message id made from the message's and the status, so a repeated callback is
recorded once. A route whose channel is not configured answers 404.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import urllib.parse

import msgspec
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from edge.connectors import whatsapp
from edge.connectors.sms import credentials, twilio_signature
from edge.connectors.email_reports import COMPLAINT, NotAReport, read_report
from edge.connectors.status import BOUNCED, COMPLAINED, DELIVERED, FAILED, status_event
from edge.http.common import json_response, require_scope
from edge.http.errors import error_response
from edge.http.state import EdgeState
from edge.ingest.auth import AuthError
from edge.ingest.wire import InputError
from edge.pipeline.delivery import profile_from
from edge.pipeline.handler import RequestInfo
from edge.store.deliveries import DeliveryLedger
from edge.store.streams import OutboundMessage
from edge.worker.delivery import SUPPRESSED_KEY, address_key, address_of

MAX_CALLBACK_BYTES = 1024 * 1024
FORM = "application/x-www-form-urlencoded"
# Twilio's error codes that say the number cannot take texts: 30003 unreachable handset,
# 30005 unknown number, 30006 a landline or an unreachable carrier, 21211 invalid 'To'.
SMS_BOUNCES = frozenset({"30003", "30005", "30006", "21211"})


# -- SMS --------------------------------------------------------------------------------------

async def sms_status(request: Request) -> Response:
    """Twilio's status callback for an SMS (delivered, undelivered, failed)."""
    state: EdgeState = request.app.state.edge
    sms = state.settings.delivery.sms
    if sms is None:
        return _not_configured("SMS")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise InputError("Content-Type", f"expected {FORM}", status=415)
    params = _form(await _body(request))
    _, auth_token = credentials(sms, os.environ)
    url = sms.status_callback_url or str(request.url)
    given = request.headers.get("x-twilio-signature", "")
    if not auth_token or not hmac.compare_digest(
            given.encode(), twilio_signature(auth_token, url, params).encode()):
        raise AuthError(403, "X-Twilio-Signature is missing or does not match")
    fields = dict(params)
    sid = fields.get("MessageSid", "")
    if not sid:
        raise InputError("MessageSid", "is required")
    status = fields.get("MessageStatus", "")
    if status == "delivered":
        name, reason = DELIVERED, ""
    elif status in ("undelivered", "failed"):
        code = fields.get("ErrorCode", "")
        name = BOUNCED if code in SMS_BOUNCES else FAILED
        reason = f"{status}: Twilio {code}" if code else status
        if fields.get("ErrorMessage"):
            reason += f" {fields['ErrorMessage']}"
    else:  # queued, sending, sent, ...: the delivery service told of the send already
        return Response(status_code=204)
    await _emit(request, state, "sms", sid, name, reason)
    return Response(status_code=204)


def _form(body: bytes) -> list[tuple[str, str]]:
    try:
        return urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                                      strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise InputError("body", "not a form-encoded body") from None


# -- WhatsApp ---------------------------------------------------------------------------------

class WaError(msgspec.Struct):
    code: int | None = None
    title: str = ""
    message: str = ""


class WaStatus(msgspec.Struct):
    id: str
    status: str
    errors: list[WaError] = []


class WaMessage(msgspec.Struct):
    sender: str = msgspec.field(name="from")
    timestamp: str = ""


class WaValue(msgspec.Struct):
    statuses: list[WaStatus] = []
    messages: list[WaMessage] = []


class WaChange(msgspec.Struct):
    value: WaValue


class WaEntry(msgspec.Struct):
    changes: list[WaChange] = []


class WaNotification(msgspec.Struct):
    entry: list[WaEntry]


_decode_notification = msgspec.json.Decoder(WaNotification).decode


async def whatsapp_verify(request: Request) -> Response:
    """Meta's subscription check: the challenge back when the verify token matches."""
    state: EdgeState = request.app.state.edge
    settings = state.settings.delivery.whatsapp
    if settings is None:
        return _not_configured("WhatsApp")
    query = request.query_params
    expected = os.environ.get(settings.verify_token_env, "") if settings.verify_token_env else ""
    given = query.get("hub.verify_token", "")
    if query.get("hub.mode") != "subscribe" or not expected or not hmac.compare_digest(
            given.encode(), expected.encode()):
        raise AuthError(403, "hub.mode must be subscribe and hub.verify_token must match")
    challenge = query.get("hub.challenge")
    if not challenge:
        raise InputError("hub.challenge", "is required")
    return PlainTextResponse(challenge)


async def whatsapp_events(request: Request) -> Response:
    """Meta's webhook: message statuses, and people's messages (the 24-hour window)."""
    state: EdgeState = request.app.state.edge
    settings = state.settings.delivery.whatsapp
    secret = os.environ.get(settings.app_secret_env, "") if settings and settings.app_secret_env \
        else ""
    if settings is None or not secret:
        return _not_configured("WhatsApp")
    body = await _body(request)
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    given = request.headers.get("x-hub-signature-256", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise AuthError(403, "X-Hub-Signature-256 is missing or does not match")
    if not body:
        raise InputError("body", "empty: expected a JSON object")
    notification = _decode_notification(body)
    for entry in notification.entry:
        for change in entry.changes:
            for message in change.value.messages:
                await whatsapp.open_window(state.redis, message.sender,
                                           _seconds_ms(message.timestamp))
            for status in change.value.statuses:
                if status.status in ("delivered", "read"):  # read: delivered, if that was lost
                    await _emit(request, state, "whatsapp", status.id, DELIVERED, "")
                elif status.status == "failed":
                    await _emit(request, state, "whatsapp", status.id, FAILED,
                                _whatsapp_reason(status.errors))
    return json_response({"success": True})


def _whatsapp_reason(errors: list[WaError]) -> str:
    if not errors:
        return "failed"
    first = errors[0]
    return f"failed: WhatsApp {first.code}: {first.title or first.message}"


def _seconds_ms(text: str) -> int | None:
    return int(text) * 1000 if text.isdigit() else None


# -- email ------------------------------------------------------------------------------------

async def email_report(request: Request) -> Response:
    """A complaint (ARF) or a late bounce (DSN) about a sent email, as the mail arrived."""
    state: EdgeState = request.app.state.edge
    caller = state.keyring.authenticate(request.headers.get("authorization"))
    require_scope(caller, "delivery:report")
    try:
        report = read_report(await _body(request))
    except NotAReport as exc:
        raise InputError("body", str(exc)) from None
    matched = False
    if report.kind is not None and report.message_id:
        matched = await _emit(request, state, "email", report.message_id,
                              COMPLAINED if report.kind == COMPLAINT else BOUNCED, report.reason)
    return json_response({"kind": report.kind, "message_id": report.message_id or None,
                          "reason": report.reason, "matched": matched})


# -- all --------------------------------------------------------------------------------------

async def _emit(request: Request, state: EdgeState, channel: str, provider_id: str, name: str,
                reason: str) -> bool:
    """The status event of the message the provider's id belongs to; nothing (False) when
    the ledger does not know it."""
    settings = state.settings
    ledger = DeliveryLedger(state.redis, ttl_ms=settings.delivery.ledger_days * 86_400_000)
    found = await ledger.message_for_provider_id(channel, provider_id)
    if found is None:
        return False
    message, record = found
    now = state.pipeline.clock.now_ms()
    made = status_event(settings, next(iter(settings.sites), ""), message, name, now,
                        record.attempts, provider_id, reason)
    if made is None:
        return False
    if name in (BOUNCED, COMPLAINED):
        await _suppress(state, message, reason, now,
                        "bounced" if name == BOUNCED else "complaint")
    incoming, caller = made
    await state.pipeline.handle(incoming, caller,
                                RequestInfo(user_agent=request.headers.get("user-agent")),
                                answered=False)
    return True


async def _suppress(state: EdgeState, message: OutboundMessage, reason: str, now: int,
                    why: str = "bounced") -> None:
    """An address the provider says cannot take messages (or whose owner complained) gets
    none from now on, as when the provider refuses it at send time (edge/worker/delivery.py)."""
    layout = state.rulebook.active.layout
    reply = await state.store.read(message.profile_id, layout, now)
    if reply is None:
        return
    address = address_of(message.channel, profile_from(reply, layout)["traits"])
    if address:
        await state.redis.hset(SUPPRESSED_KEY, address_key(message.channel, address),
                               f"{message.channel} {why}: {reason}"[:300])


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_CALLBACK_BYTES:
        raise InputError("body", f"larger than {MAX_CALLBACK_BYTES} bytes", status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_CALLBACK_BYTES:
            raise InputError("body", f"larger than {MAX_CALLBACK_BYTES} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _not_configured(channel: str) -> Response:
    return error_response(404, "not_found", f"{channel} is not configured on this edge",
                          field="path")
