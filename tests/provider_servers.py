"""Real HTTP servers in the SMS and WhatsApp providers' formats, for the delivery tests:
a Twilio-compatible Messages API and a WhatsApp Cloud API, each checking credentials and
the request's shape as the provider does, able to answer as a failing provider would,
and able to call back as the provider does (signed status callbacks and webhooks).

The signatures are computed here from the providers' published algorithms, not with the
edge's code, so a mistake on either side shows as a 403."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edge.store.embedded import free_port

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class _Server:
    """A Starlette app served by uvicorn on a free port in a background thread."""

    def __init__(self, routes: list[Route]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(Starlette(routes=routes), host="127.0.0.1",
                                                     port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()),
                                        daemon=True)

    def __enter__(self) -> Any:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the provider server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.should_exit = True
        self._thread.join(10)


def _json(body: Any, status: int) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


# -- Twilio -----------------------------------------------------------------------------------

def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """As Twilio signs a request: the URL, then each parameter's name and value in the
    names' order, HMAC-SHA1 under the auth token, base64."""
    signed = url
    for name in sorted(params):
        signed += name + params[name]
    return base64.b64encode(hmac.new(auth_token.encode(), signed.encode("utf-8"),
                                     hashlib.sha1).digest()).decode()


@dataclass
class SmsRequest:
    form: dict[str, str]
    authorization: str
    sid: str = ""  # the sid answered, when it was accepted


@dataclass
class TwilioServer(_Server):
    """Answers POST /2010-04-01/Accounts/{sid}/Messages.json. Requests with the wrong Basic
    auth get 401 (20003); a 'To' that is not E.164 gets 400 (21211). `script` holds
    answers to give first, in order: (HTTP status, Twilio error code or None)."""

    account_sid: str
    auth_token: str
    script: list[tuple[int, int | None]] = field(default_factory=list)
    requests: list[SmsRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__([Route("/2010-04-01/Accounts/{account}/Messages.json", self._messages,
                                methods=["POST"])])

    @property
    def accepted(self) -> list[SmsRequest]:
        return [r for r in self.requests if r.sid]

    def _error(self, status: int, code: int, message: str) -> Response:
        return _json({"code": code, "message": message, "status": status,
                      "more_info": f"https://www.twilio.com/docs/errors/{code}"}, status)

    async def _messages(self, request: Request) -> Response:
        authorization = request.headers.get("authorization", "")
        expected = "Basic " + base64.b64encode(
            f"{self.account_sid}:{self.auth_token}".encode()).decode()
        form = dict(urllib.parse.parse_qsl((await request.body()).decode()))
        call = SmsRequest(form, authorization)
        self.requests.append(call)
        if authorization != expected or request.path_params["account"] != self.account_sid:
            return self._error(401, 20003, "Authenticate")
        if request.headers.get("content-type", "").split(";")[0] != \
                "application/x-www-form-urlencoded":
            return self._error(400, 20001, "Content-Type must be form-encoded")
        if not form.get("Body"):
            return self._error(400, 21602, "Message body is required.")
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return self._error(400, 21603, "A 'From' phone number is required.")
        if self.script:
            status, code = self.script.pop(0)
            if code is None:
                return Response(status_code=status)
            return self._error(status, code, "scripted failure")
        if not E164.match(form.get("To", "")):
            return self._error(400, 21211, f"The 'To' number {form.get('To')} is not a valid "
                                           "phone number.")
        call.sid = f"SM{len(self.requests):032d}"
        return _json({"sid": call.sid, "status": "queued", "to": form["To"],
                      "from": form.get("From"), "body": form["Body"],
                      "account_sid": self.account_sid}, 201)

    def post_status(self, url: str, message_sid: str, status: str, error_code: str = "",
                    error_message: str = "", token: str | None = None) -> httpx.Response:
        """The status callback Twilio makes, signed (with `token` to forge it)."""
        params = {"MessageSid": message_sid, "SmsSid": message_sid, "MessageStatus": status,
                  "SmsStatus": status, "AccountSid": self.account_sid, "ApiVersion": "2010-04-01"}
        if error_code:
            params["ErrorCode"] = error_code
        if error_message:
            params["ErrorMessage"] = error_message
        return self.post_signed(url, params, token)

    def post_signed(self, url: str, params: dict[str, str],
                    token: str | None = None) -> httpx.Response:
        signature = twilio_signature(self.auth_token if token is None else token, url, params)
        return httpx.post(url, data=params, headers={"X-Twilio-Signature": signature,
                                                     "User-Agent": "TwilioProxy/1.1"})


# -- WhatsApp ---------------------------------------------------------------------------------

@dataclass
class WhatsAppServer(_Server):
    """Answers POST /{version}/{phone_number_id}/messages with the Bearer token; refuses
    a body not shaped as the Cloud API takes it (400, code 100). `script` as TwilioServer's:
    (HTTP status, Cloud API error code)."""

    phone_number_id: str
    access_token: str
    app_secret: str
    script: list[tuple[int, int]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__([Route("/{version}/{number}/messages", self._messages,
                                methods=["POST"])])

    def _error(self, status: int, code: int, message: str) -> Response:
        return _json({"error": {"message": message, "type": "OAuthException", "code": code,
                                "fbtrace_id": "AbCdEf"}}, status)

    async def _messages(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.access_token}":
            return self._error(401, 190, "Invalid OAuth access token.")
        if request.path_params["number"] != self.phone_number_id:
            return self._error(400, 100, "Unsupported post request.")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return self._error(400, 100, "Invalid JSON")
        self.requests.append(body)
        problem = _message_problem(body)
        if problem:
            return self._error(400, 100, f"Invalid parameter: {problem}")
        if self.script:
            status, code = self.script.pop(0)
            return self._error(status, code, "scripted failure")
        wamid = f"wamid.HBgM{len(self.requests):08d}"
        self.ids.append(wamid)
        return _json({"messaging_product": "whatsapp",
                      "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                      "messages": [{"id": wamid}]}, 200)

    def post_webhook(self, url: str, value: dict[str, Any],
                     secret: str | None = None) -> httpx.Response:
        """A webhook as Meta sends it, one change holding `value`, signed with the app
        secret (or with `secret`, to forge it)."""
        body = orjson.dumps({"object": "whatsapp_business_account", "entry": [{
            "id": "102290129340398", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881",
                             "phone_number_id": self.phone_number_id}, **value}}]}]})
        return self.post_raw(url, body, secret)

    def post_raw(self, url: str, body: bytes, secret: str | None = None) -> httpx.Response:
        key = (self.app_secret if secret is None else secret).encode()
        signature = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        return httpx.post(url, content=body, headers={"Content-Type": "application/json",
                                                      "X-Hub-Signature-256": signature})


def whatsapp_status(wamid: str, status: str, recipient: str,
                    error: tuple[int, str] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(int(time.time())),
                             "recipient_id": recipient}
    if error is not None:
        entry["errors"] = [{"code": error[0], "title": error[1], "message": error[1],
                            "error_data": {"details": error[1]}}]
    return {"statuses": [entry]}


def whatsapp_inbound(sender: str, text: str) -> dict[str, Any]:
    return {"contacts": [{"profile": {"name": "Eva"}, "wa_id": sender}],
            "messages": [{"from": sender, "id": "wamid.IN1", "timestamp": str(int(time.time())),
                          "type": "text", "text": {"body": text}}]}


def _message_problem(body: Any) -> str:
    """What the Cloud API would refuse in a message body, or ""."""
    if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
        return "messaging_product must be whatsapp"
    if not re.fullmatch(r"[1-9][0-9]{6,14}", str(body.get("to", "")).lstrip("+")):
        return "to must be a phone number"
    kind = body.get("type")
    if kind == "text":
        text = body.get("text")
        if not isinstance(text, dict) or not isinstance(text.get("body"), str) \
                or not text["body"]:
            return "text.body is required"
        return ""
    if kind != "template":
        return f"unsupported type {kind!r}"
    template = body.get("template")
    if not isinstance(template, dict) or not template.get("name"):
        return "template.name is required"
    if not isinstance(template.get("language"), dict) or not template["language"].get("code"):
        return "template.language.code is required"
    for component in template.get("components", []):
        for parameter in component.get("parameters", []):
            if parameter.get("type") != "text" or not isinstance(parameter.get("text"), str):
                return "parameters must be text"
            if re.search(r"[\n\t]| {5,}", parameter["text"]):
                return "Param text cannot have new-line/tab characters or more than 4 " \
                       "consecutive spaces"
    return ""
