"""Signed tracking tokens: the open pixel, click redirects, one-click unsubscribe and
the preference page of a sent message.

A token carries everything its route needs (the message, the person, the channel,
for a click the destination) and an HMAC over it, so a redirect goes only where
the token says: no free parameter can turn it into an open redirect, and no one
can unsubscribe or read the preferences of a person whose token they were not
sent. The paths are short first-party ones (`/go/`, `/m/`, `/u/`) that blocker
lists do not match the way they match "track", "pixel" or "open".

The signing key comes from KAIROS_TRACKING_SECRET; without it (a laptop, the demo)
a random key is made once and kept in Redis, so the edge and its workers share it
and it never appears in a configuration file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from typing import Any, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

SECRET_ENV = "KAIROS_TRACKING_SECRET"
SECRET_KEY = "kairos:secrets:tracking"
SIGNATURE_BYTES = 16
OPEN, CLICK, UNSUBSCRIBE = "o", "c", "u"
# a link in a text message: http(s) up to a blank or a closing mark; a final full
# stop, comma or closing bracket belongs to the sentence, not the link
TEXT_LINK = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")
SHORT_CODE_BYTES = 9  # 72 bits, 12 characters: unguessable, and short in a text
HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)


class Token(msgspec.Struct, frozen=True, omit_defaults=True):
    kind: str  # o (open), c (click), u (unsubscribe and preferences)
    message_id: str
    profile_id: str
    channel: str
    site: str = ""
    url: str = ""  # a click's destination
    journey: str = ""
    step: str = ""
    sent_ms: int = 0  # when the message went out: a click seconds later is a scanner's


class BadToken(Exception):
    """The token is malformed or its signature does not match."""


class Tokens:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the tracking key must have at least 16 bytes")
        self._key = key

    def sign(self, token: Token) -> str:
        body = msgspec.json.encode(token)
        mac = hmac.new(self._key, body, hashlib.sha256).digest()[:SIGNATURE_BYTES]
        return f"{_b64(body)}.{_b64(mac)}"

    def short_code(self, signed: str) -> str:
        """The code a short link names `signed` (a token) by: the same on every attempt
        at the message, and not to be guessed without the key."""
        mac = hmac.new(self._key, b"short:" + signed.encode(), hashlib.sha256).digest()
        return _b64(mac[:SHORT_CODE_BYTES])

    def verify(self, text: str) -> Token:
        body_text, dot, mac_text = text.partition(".")
        if not dot:
            raise BadToken("malformed")
        try:
            body, mac = _unb64(body_text), _unb64(mac_text)
        except ValueError:
            raise BadToken("malformed") from None
        expected = hmac.new(self._key, body, hashlib.sha256).digest()[:SIGNATURE_BYTES]
        if not hmac.compare_digest(mac, expected):
            raise BadToken("bad signature")
        try:
            return msgspec.json.decode(body, type=Token)
        except msgspec.ValidationError:
            raise BadToken("malformed") from None


async def load_tokens(client: Any, environ: Mapping[str, str] = os.environ) -> Tokens:
    """The process's signer: from the environment, else the key kept in Redis (made by
    whichever process asks first)."""
    configured = environ.get(SECRET_ENV)
    if configured:
        return Tokens(configured.encode())
    await client.set(SECRET_KEY, secrets.token_hex(32), nx=True)
    stored = await client.get(SECRET_KEY)
    return Tokens(stored if isinstance(stored, bytes) else str(stored).encode())


def with_utm(url: str, source: str, medium: str, campaign: str) -> str:
    """The link with utm_source, utm_medium and utm_campaign added, unless it has UTM
    parameters of its own (the marketer's choice wins)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name.startswith("utm_") for name, _ in query):
        return url
    query += [("utm_source", source), ("utm_medium", medium), ("utm_campaign", campaign)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def click_url(url: str, base_url: str, tokens: Tokens, template: Token, source: str) -> str:
    """The signed redirect to `url` (UTM added), for the message `template` describes."""
    destination = with_utm(url, source, template.channel, template.journey or "kairos")
    return f"{base_url}/go/{tokens.sign(msgspec.structs.replace(template, kind=CLICK, url=destination))}"


def rewrite_links(markup: str, base_url: str, tokens: Tokens, template: Token,
                  source: str) -> str:
    """Every http(s) link of the HTML through a signed click redirect, with UTM added."""
    def replace(found: re.Match[str]) -> str:
        signed = click_url(found.group(3).replace("&amp;", "&"), base_url, tokens, template,
                           source)
        return f"{found.group(1)}{found.group(2)}{signed}{found.group(2)}"

    return HREF.sub(replace, markup)



def shorten_links(text: str, base_url: str, tokens: Tokens, template: Token,
                  source: str) -> tuple[str, dict[str, str]]:
    """Every http(s) link of a text through a short link (`/s/<code>`) to a signed click
    redirect, with UTM added: the text, and each code with the token it stands for (to
    be stored before the text is sent). A signed redirect would be a few hundred
    characters, several SMS parts for one link."""
    codes: dict[str, str] = {}

    def replace(found: re.Match[str]) -> str:
        destination = with_utm(found.group(0), source, template.channel,
                               template.journey or "kairos")
        signed = tokens.sign(msgspec.structs.replace(template, kind=CLICK, url=destination))
        code = tokens.short_code(signed)
        codes[code] = signed
        return f"{base_url}/s/{code}"

    return TEXT_LINK.sub(replace, text), codes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
