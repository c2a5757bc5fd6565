"""The MIME an email is written as, read back by the standard library's parser: what a
receiver sees, whatever the subject, the names and the body hold."""

from __future__ import annotations

import email
import email.policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.connectors.base import Outgoing
from edge.connectors.email_message import build
from edge.store.streams import OutboundMessage


def outgoing(title: str = "Hello", body: str = "<p>Hi</p>", sender: str = "Shop <news@shop.test>",
             to: str = "ana@example.com", unsubscribe_url: str = "") -> Outgoing:
    message = OutboundMessage(profile_id="p1", message_id="m1", timestamp=1_780_000_000_000,
                              rule="r", channel="email", title=title, body=body)
    return Outgoing(message=message, site="shop", to=to, idempotency_key="m1", sender=sender,
                    unsubscribe_url=unsubscribe_url)


def parsed(mail_bytes: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(mail_bytes, policy=email.policy.default)


# (subject given, subject the receiver reads)
SUBJECTS = [
    ("Your cart", "Your cart"),
    ("Line one\nBcc: victim@example.com", "Line one Bcc: victim@example.com"),
    ("Carriage\r\nX-Evil: 1", "Carriage X-Evil: 1"),
    ("Všechno nejlepší, Žofie!", "Všechno nejlepší, Žofie!"),
    ("Zażółć gęślą jaźń 🎁", "Zażółć gęślą jaźń 🎁"),
    ("", ""),
]


@pytest.mark.parametrize("given_subject, read_subject", SUBJECTS)
def test_a_subject_stays_one_header_and_reads_back(given_subject: str, read_subject: str) -> None:
    message = parsed(build(outgoing(title=given_subject)).data)
    assert message["Subject"] == read_subject
    assert message["Bcc"] is None and message["X-Evil"] is None


# (From given, display name read, address read)
SENDERS = [
    ("Shop <news@shop.test>", "Shop", "news@shop.test"),
    ("Kočičí obchod <news@shop.test>", "Kočičí obchod", "news@shop.test"),
    ('"Smith, Ltd." <news@shop.test>', "Smith, Ltd.", "news@shop.test"),
    ("news@shop.test", "", "news@shop.test"),
]


@pytest.mark.parametrize("sender, name, address", SENDERS)
def test_the_sender_reads_back_with_its_name(sender: str, name: str, address: str) -> None:
    mail = build(outgoing(sender=sender))
    sender_header = parsed(mail.data)["From"]
    assert sender_header.addresses[0].display_name == name
    assert sender_header.addresses[0].addr_spec == address
    assert mail.envelope_from == address
    assert mail.message_id.endswith("@shop.test")


def test_the_message_id_is_the_same_on_every_retry_and_differs_per_message() -> None:
    first, again = build(outgoing()), build(outgoing())
    assert first.message_id == again.message_id
    other = Outgoing(message=outgoing().message, site="shop", to="ana@example.com",
                     idempotency_key="m2", sender="news@shop.test")
    assert build(other).message_id != first.message_id
    assert parsed(first.data)["Message-ID"] == f"<{first.message_id}>"


def test_one_click_unsubscribe_is_offered_when_there_is_a_link() -> None:
    url = "https://edge.test/v1/unsubscribe?t=abc.def"
    message = parsed(build(outgoing(unsubscribe_url=url)).data)
    assert message["List-Unsubscribe"] == f"<{url}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed(build(outgoing()).data)["List-Unsubscribe"] is None


@settings(max_examples=150, deadline=None)
@given(title=st.text(max_size=300), body=st.text(max_size=2000))
def test_any_subject_and_body_give_seven_bit_short_lines_that_read_back(title: str,
                                                                        body: str) -> None:
    mail = build(outgoing(title=title, body=body))
    assert mail.data.isascii()
    assert all(len(line) <= 998 for line in mail.data.split(b"\r\n"))
    message = parsed(mail.data)
    assert message["Subject"] == " ".join(title.splitlines()).strip()
    plain, markup = (part.get_content() for part in message.iter_parts())
    assert message.get_content_type() == "multipart/alternative"
    # Control characters are no text a reader sees; the HTML parser drops them.
    words = [word for word in body.split()
             if word.isprintable() and "<" not in word and "&" not in word]
    for word in words[:5]:  # what was written is what the HTML part carries, escaped or not
        assert word in markup or word.replace(">", "&gt;") in markup
    assert plain.endswith("\n")
