"""The routes a sent message's links reach: the open pixel, click redirects, one-click
unsubscribe (RFC 8058) and the person's preference page.

They are reached by a mail client or a browser, with no API key: the signed token
is the only authority (edge/ingest/tracking.py). A redirect goes to the token's
destination only. Opens and clicks become `<Channel> Opened` / `<Channel> Clicked`
events of the person, joined to the message and the journey step; those made by
machines (edge/ingest/machines.py) are recorded as `<Channel> Prefetched` /
`<Channel> Scanned`, which count for nothing. A failing Redis never breaks the
redirect or the pixel: the event is lost, the reader is not.
"""

from __future__ import annotations

import base64
import hashlib
import html
import logging
from typing import Any
from urllib.parse import parse_qsl

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from edge.http.errors import error_response
from edge.http.state import EdgeState
from edge.ingest import consent
from edge.ingest.auth import Caller
from edge.ingest.machines import click_by_machine, open_by_machine
from edge.ingest.normalize import normalize
from edge.ingest.tracking import CLICK, OPEN, UNSUBSCRIBE, BadToken, Token, Tokens, load_tokens
from edge.ingest.wire import Event, InputError
from edge.pipeline.delivery import profile_from
from edge.pipeline.handler import RequestInfo
from edge.store import short_links

log = logging.getLogger("kairos.tracking")

PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")
NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}
CHANNEL_WORD = {"email": "Email", "sms": "SMS", "push": "Push", "whatsapp": "WhatsApp",
                "in_app": "Message"}
# what the preference page offers, in its words
PREFERENCES = {"marketing": "Offers and news", "email": "by email", "sms": "by text message",
               "whatsapp": "on WhatsApp", "push": "as browser notifications",
               "advertising": "Ads chosen for me on other sites (my email address or phone "
                              "number, hashed, matched by the ad platform)"}


async def tokens_of(state: EdgeState) -> Tokens:
    if state.tokens is None:
        state.tokens = await load_tokens(state.redis)
    return state.tokens


async def _token(request: Request, kind: str) -> Token:
    state: EdgeState = request.app.state.edge
    text = request.path_params["token"].removesuffix(".png")
    try:
        token = (await tokens_of(state)).verify(text)
    except BadToken as exc:
        raise InputError("token", str(exc)) from None
    if token.kind != kind:
        raise InputError("token", "not a token for this link")
    return token


async def _record(request: Request, token: Token, name: str, message_id: str,
                  properties: dict[str, Any], joined_to_message: bool = True) -> None:
    """One event of the token's person through the edge's pipeline; joined to the
    message and its journey step unless its properties have a shape of their own."""
    state: EdgeState = request.app.state.edge
    site = state.settings.sites.get(token.site) or next(iter(state.settings.sites.values()))
    site_id = token.site if token.site in state.settings.sites else next(iter(state.settings.sites))
    kind, _, person = token.profile_id.partition(":")
    identity = {"userId": person} if kind == "user" else {"anonymousId": person}
    joined = dict(properties)
    if joined_to_message:
        joined.update(message_id=token.message_id, channel=token.channel)
        for key, value in (("journey", token.journey), ("step", token.step)):
            if value:
                joined[key] = value
    event = Event(type="track", event=name, messageId=message_id, properties=joined, **identity)
    caller = Caller("secret", site_id, site, frozenset({"ingest"}))
    pipeline = state.pipeline
    incoming = normalize(event, caller, state.settings.limits, pipeline.clock.now_ms())
    info = RequestInfo(user_agent=request.headers.get("user-agent"))
    async with state.event_deadline():
        await pipeline.handle(incoming, caller, info, answered=False)


async def _record_quietly(request: Request, token: Token, name: str, message_id: str,
                          properties: dict[str, Any]) -> None:
    try:
        await _record(request, token, name, message_id, properties)
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("%s of %s not recorded: %s", name, token.message_id, exc)
    except Exception:
        log.exception("%s of %s not recorded", name, token.message_id)


async def open_pixel(request: Request) -> Response:
    token = await _token(request, OPEN)
    word = CHANNEL_WORD.get(token.channel, "Email")
    machine = open_by_machine(request.headers.get("user-agent"),
                              request.headers.get("purpose") or request.headers.get("sec-purpose"))
    name = f"{word} Prefetched" if machine else f"{word} Opened"
    await _record_quietly(request, token, name, f"{token.message_id}:{name}", {})
    return Response(PIXEL, media_type="image/png", headers=NO_STORE)


async def click(request: Request) -> Response:
    return await _clicked(request, await _token(request, CLICK))


async def short_click(request: Request) -> Response:
    """A text message's short link: the click redirect its code stands for."""
    state: EdgeState = request.app.state.edge
    signed = await short_links.load(state.redis, request.path_params["code"])
    if signed is None:
        return error_response(404, "not_found", "no such link, or it has expired",
                              field="code")
    try:
        token = (await tokens_of(state)).verify(signed)
    except BadToken as exc:
        raise InputError("code", str(exc)) from None
    if token.kind != CLICK:
        raise InputError("code", "not a link")
    return await _clicked(request, token)


async def _clicked(request: Request, token: Token) -> Response:
    state: EdgeState = request.app.state.edge
    word = CHANNEL_WORD.get(token.channel, "Email")
    machine = click_by_machine(request.headers.get("user-agent"), request.method, token.sent_ms,
                               state.pipeline.clock.now_ms(),
                               request.headers.get("purpose") or request.headers.get("sec-purpose"))
    name = f"{word} Scanned" if machine else f"{word} Clicked"
    link = hashlib.sha256(token.url.encode()).hexdigest()[:12]
    await _record_quietly(request, token, name, f"{token.message_id}:{name}:{link}",
                          {"url": token.url})
    return RedirectResponse(token.url, status_code=302, headers=NO_STORE)


async def preferences_page(request: Request) -> Response:
    token = await _token(request, UNSUBSCRIBE)
    word = CHANNEL_WORD.get(token.channel, "Email").lower()
    given = await _consent_now(request, token)
    boxes = "".join(
        f'<label><input type="checkbox" name="{name}" value="on"'
        f'{" checked" if given.get(name) else ""}> {html.escape(label)}</label><br>'
        for name, label in PREFERENCES.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Your preferences</title>
<meta name="viewport" content="width=device-width"></head><body style="font-family:sans-serif;max-width:32em;margin:2em auto">
<h1>Your preferences</h1>
<form method="post"><input type="hidden" name="action" value="unsubscribe">
<button type="submit">Unsubscribe from {html.escape(word)}</button></form>
<h2>Or choose what we may send</h2>
<form method="post"><input type="hidden" name="action" value="preferences">{boxes}
<button type="submit">Save</button></form></body></html>"""
    return HTMLResponse(page, headers={**NO_STORE, "X-Frame-Options": "DENY"})


async def _consent_now(request: Request, token: Token) -> dict[str, bool]:
    """What the person allows now (their answers, else the site's defaults), so that the
    page shows it and saving it unchanged changes nothing."""
    state: EdgeState = request.app.state.edge
    layout = state.rulebook.active.layout
    reply = await state.store.read(token.profile_id, layout, state.pipeline.clock.now_ms())
    site = state.settings.sites.get(token.site)
    defaults = site.consent_defaults if site is not None else {}
    stored = profile_from(reply, layout)["consent"] if reply is not None else {}
    return consent.resolve(stored, defaults)


async def unsubscribe(request: Request) -> Response:
    """One-click (RFC 8058: a POST with List-Unsubscribe=One-Click), the page's button,
    or the page's choices: written as the consent the edge reads, with its source."""
    token = await _token(request, UNSUBSCRIBE)
    body = (await request.body())[:4096].decode("utf-8", "replace")
    form = dict(parse_qsl(body, keep_blank_values=True))
    if form.get("action") == "preferences":
        answers: dict[str, Any] = {name: form.get(name) == "on" for name in PREFERENCES}
        answers["source"] = "preference page"
        done = "Your preferences are saved."
    elif form.get("List-Unsubscribe") == "One-Click" or form.get("action") == "unsubscribe":
        channel = token.channel if token.channel in PREFERENCES else "email"
        answers = {channel: False, "source": "one-click unsubscribe"
                   if "List-Unsubscribe" in form else "unsubscribe link"}
        done = "You are unsubscribed."
    else:
        raise InputError("List-Unsubscribe", "expected List-Unsubscribe=One-Click, or the form")
    answer = hashlib.sha256(body.encode()).hexdigest()[:12]
    await _record(request, token, "Consent Updated", f"{token.message_id}:consent:{answer}",
                  answers, joined_to_message=False)
    return HTMLResponse(f"<!doctype html><p>{html.escape(done)}</p>", headers=NO_STORE)
