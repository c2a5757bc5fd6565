"""One email as MIME: multipart/alternative, a plain-text part made from the HTML, the
HTML with its styles inlined (css-inline: many clients drop <style>), a stable
Message-ID made from the message id (the same on every retry, so a receiver that
drops repeats can), and one-click unsubscribe (RFC 8058).

The body arrives rendered by the sandboxed content templates, which escape every
value they insert, so it is HTML; a body without tags is shown as paragraphs.

The message is written as bytes here rather than through `email.message.EmailMessage`:
its header registry parses back every header it is given and refolds it on output,
about 4 ms a message, more than the rest of a delivery together (bench/channels.py).
The format needed is small: ASCII headers (RFC 2047 encoded words where a value is
not ASCII, no line breaks inside a value), two base64 parts, and a boundary that
cannot occur in base64 (it holds "_").
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr
from html.parser import HTMLParser

import css_inline
import msgspec

from edge.connectors.base import Outgoing

LAYOUT = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title><style>
body {{ margin: 0; padding: 0; background: #f4f4f5; }}
.mail {{ max-width: 600px; margin: 0 auto; padding: 24px; background: #ffffff;
  font-family: Helvetica, Arial, sans-serif; font-size: 16px; line-height: 1.5; color: #18181b; }}
.foot {{ max-width: 600px; margin: 0 auto; padding: 12px 24px; font-family: Helvetica, Arial,
  sans-serif; font-size: 12px; color: #71717a; }}
a {{ color: #2563eb; }}
</style></head><body><div class="mail">{body}</div>{foot}{pixel}</body></html>"""

TAG = re.compile(r"<[a-zA-Z/!]")
INLINER = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)


def message_id_header(message_id: str, sender_address: str) -> str:
    domain = sender_address.rpartition("@")[2] or "kairos.invalid"
    return f"<{hashlib.sha256(message_id.encode()).hexdigest()[:32]}@{domain}>"


def html_body(outgoing: Outgoing) -> str:
    body = outgoing.message.body
    if not TAG.search(body):  # plain text: paragraphs, escaped
        body = "".join(f"<p>{html.escape(part)}</p>" for part in body.split("\n\n") if part)
    foot = ""
    if outgoing.unsubscribe_url:
        foot = (f'<div class="foot"><a href="{html.escape(outgoing.unsubscribe_url)}">'
                "Unsubscribe</a></div>")
    pixel = ""
    if outgoing.open_pixel_url:
        pixel = (f'<img src="{html.escape(outgoing.open_pixel_url)}" width="1" height="1" '
                 'alt="" style="display:block;border:0">')
    page = LAYOUT.format(title=html.escape(outgoing.message.title or ""), body=body, foot=foot,
                         pixel=pixel)
    return INLINER.inline(page)


class _Text(HTMLParser):
    """The text a reader sees: block ends as line breaks, a link as `text (url)`."""

    BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[str | None] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "title", "head"):
            self.skip += 1
        elif tag == "a":
            self.links.append(dict(attrs).get("href"))
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title", "head"):
            self.skip = max(0, self.skip - 1)
        elif tag == "a" and self.links:
            href = self.links.pop()
            if href:
                self.parts.append(f" ({href})")
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def text_of(markup: str) -> str:
    reader = _Text()
    reader.feed(markup)
    reader.close()
    lines = [" ".join(line.split()) for line in "".join(reader.parts).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


class Mail(msgspec.Struct, frozen=True):
    envelope_from: str  # the sender's bare address, for MAIL FROM
    envelope_to: str  # the recipient's, for RCPT TO
    message_id: str  # as in the header, without the angle brackets
    data: bytes  # the whole message, CRLF line ends, 7-bit


def header_value(value: str) -> str:
    """A header's value on one line of ASCII: line breaks (a way to add headers) become
    spaces, and the blanks around it go (a reader's parser drops them too); anything not
    ASCII, or too long for one line, becomes encoded words."""
    value = " ".join(value.splitlines()).strip()
    if value.isascii() and len(value) < 900:
        return value
    return Header(value, "utf-8").encode(linesep="\r\n")


def parsed_address(value: str) -> tuple[str, str]:
    """(the header's value, the bare address) of `Name <address>` or a bare address."""
    name, address = parseaddr(" ".join(value.splitlines()))
    return (formataddr((name, address), charset="utf-8") if name else address), address


def _part(content_type: str, text: str) -> bytes:
    encoded = base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n")
    return (f'Content-Type: {content_type}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n").encode() + encoded


def build(outgoing: Outgoing) -> Mail:
    markup = html_body(outgoing)
    text = text_of(markup.replace(outgoing.open_pixel_url, "")
                   if outgoing.open_pixel_url else markup)
    sender, sender_address = parsed_address(outgoing.sender)
    recipient, recipient_address = parsed_address(outgoing.to)
    message_id = message_id_header(outgoing.idempotency_key, sender_address)
    headers = [("From", sender),
               ("To", recipient),
               ("Subject", header_value(outgoing.message.title or "")),
               ("Date", formatdate(outgoing.message.timestamp / 1000, usegmt=True)),
               ("Message-ID", message_id)]
    if outgoing.unsubscribe_url:
        headers += [("List-Unsubscribe", f"<{header_value(outgoing.unsubscribe_url)}>"),
                    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]
    boundary = "=_" + secrets.token_hex(16)
    headers += [("MIME-Version", "1.0"),
                ("Content-Type", f'multipart/alternative; boundary="{boundary}"')]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers).encode()
    separator = f"\r\n--{boundary}\r\n".encode()
    data = b"".join((head, b"\r\nThis is a message in MIME format.", separator,
                     _part("text/plain", text), separator, _part("text/html", markup),
                     f"\r\n--{boundary}--\r\n".encode()))
    return Mail(envelope_from=sender_address, envelope_to=recipient_address,
                message_id=message_id.strip("<>"), data=data)
