"""Complaints and late bounces that arrive as mail: feedback reports (RFC 5965) and
delivery status notifications (RFC 3464) read into what they report, then, posted to
/v1/callbacks/email, joined to the message through its Message-ID: the address is
suppressed, the status event recorded, and the next email to it is not sent."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.connectors.email_reports import BOUNCE, COMPLAINT, NotAReport, Report, read_report
from tests.automation_support import SharedClock, ThreadWorker, wait_until
from tests.channel_servers import SmtpCatcher
from tests.support import READ_ONLY_KEY, SECRET_KEY, LiveEdge, basic
from tests.test_delivery import (delivery_config, hook_secrets, ledger_state, person, queue,  # noqa: F401 - hook_secrets: a fixture used by name
                                 statuses)

ORIGINAL_ID = "<3f2a9c@shop.test>"
BARE_ID = "3f2a9c@shop.test"  # as a report names it: without the angle brackets


def feedback_report(feedback_type: str, message_id: str = ORIGINAL_ID,
                    original: str = "message/rfc822") -> bytes:
    """A report laid out as RFC 5965's example: text, the feedback fields, the original."""
    return f"""From: <abuse@mailbox.example>
To: <fbl@shop.test>
Subject: FW: Your cart misses you
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
     boundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.1 on Thu, 8 Mar 2026 14:00:00 EDT.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: {feedback_type}
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <shop@shop.test>
Arrival-Date: Thu, 8 Mar 2026 14:00:00 EDT
Source-IP: 192.0.2.1

--part1_13d.2e68ed54_boundary
Content-Type: {original}
Content-Disposition: inline

From: Test shop <shop@shop.test>
To: <someone@mailbox.example>
Subject: Your cart misses you
Message-ID: {message_id}
Date: Thu, 8 Mar 2026 13:59:00 -0000

--part1_13d.2e68ed54_boundary--
""".replace("\n", "\r\n").encode()


def delivery_status(action: str, status: str, message_id: str = ORIGINAL_ID) -> bytes:
    """A notification laid out as RFC 3464's: text, per-message and per-recipient fields,
    the original's headers."""
    return f"""From: Mail Delivery System <MAILER-DAEMON@relay.example>
To: <bounces@shop.test>
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

--B1
Content-Type: text/plain

Your message could not be delivered.

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.example
Arrival-Date: Thu, 8 Mar 2026 14:00:00 +0000

Final-Recipient: rfc822; gone@mailbox.example
Action: {action}
Status: {status}
Diagnostic-Code: smtp; 550 5.1.1 <gone@mailbox.example>:
 Recipient address rejected: User unknown

--B1
Content-Type: text/rfc822-headers

From: Test shop <shop@shop.test>
Message-ID: {message_id}
Subject: Your cart misses you

--B1--
""".replace("\n", "\r\n").encode()


@pytest.mark.parametrize(("raw", "expected"), [
    (feedback_report("abuse"), Report(COMPLAINT, BARE_ID, "abuse")),
    (feedback_report("fraud", original="text/rfc822-headers"),
     Report(COMPLAINT, BARE_ID, "fraud")),
    (feedback_report("not-spam"), Report(None, BARE_ID, "not-spam")),
    (delivery_status("failed", "5.1.1"), Report(BOUNCE, BARE_ID, "5.1.1 smtp; 550 5.1.1 "
     "<gone@mailbox.example>: Recipient address rejected: User unknown")),
    (delivery_status("delayed", "4.4.1"), Report(None, BARE_ID, "not a permanent failure")),
])
def test_a_report_says_what_it_reports_and_about_which_message(raw, expected):
    assert read_report(raw) == expected


@pytest.mark.parametrize("raw", [
    b"Subject: hello\r\n\r\nnot a report",
    b"Content-Type: multipart/report; report-type=disposition-notification; boundary=x\r\n"
    b"\r\n--x\r\nContent-Type: text/plain\r\n\r\nread\r\n--x\r\n"
    b"Content-Type: text/plain\r\n\r\nmore\r\n--x--\r\n",
    feedback_report("").replace(b"Feedback-Type: \r\n", b""),
])
def test_what_is_not_a_report_is_refused(raw):
    with pytest.raises(NotAReport):
        read_report(raw)


@contextlib.contextmanager
def mail_world(tmp_path: Path, redis_url: str) -> Iterator[tuple[LiveEdge, SmtpCatcher]]:
    """An SMTP server, an edge whose secret key may report on mail, and a worker."""
    clock = SharedClock(tmp_path / "clock")
    with SmtpCatcher() as smtp:
        config = delivery_config(tmp_path / "config", smtp.port)
        settings = config / "kairos.yaml"
        settings.write_text(settings.read_text().replace(
            "scopes: [ingest, profiles:read, profiles:delete, admin, metrics]",
            "scopes: [ingest, profiles:read, profiles:delete, admin, metrics, delivery:report]"))
        with LiveEdge(config, redis_url, clock=clock) as edge, \
                ThreadWorker(config, redis_url, clock):
            yield edge, smtp


def test_a_complaint_suppresses_the_address_and_is_recorded(tmp_path, redis_url, redis_client):
    with mail_world(tmp_path, redis_url) as (edge, smtp):
        person(edge, "fee")
        queue(redis_client, "user:fee", "m-1")
        wait_until(lambda: smtp.messages, what="the email")
        # recorded as sent, and so findable by its Message-ID
        wait_until(lambda: "Message Sent" in statuses(redis_client, "m-1"), what="the status")
        sent_id = smtp.messages[0]["Message-ID"]

        def post(raw: bytes, key: str = SECRET_KEY):
            return edge.http.post("/v1/callbacks/email", content=raw, headers={
                **basic(key), "Content-Type": "message/rfc822"})

        assert post(feedback_report("abuse", sent_id), READ_ONLY_KEY).status_code == 403
        refused = post(b"Subject: hi\r\n\r\nhello")
        assert refused.status_code == 400 and refused.json()["field"] == "body"
        unknown = post(feedback_report("abuse", "<other@elsewhere.example>"))
        assert unknown.json() == {"kind": "complaint", "message_id":
                                  "other@elsewhere.example", "reason": "abuse",
                                  "matched": False}
        answer = post(feedback_report("abuse", sent_id))
        assert answer.status_code == 200 and answer.json()["matched"] is True
        wait_until(lambda: "Message Complained" in statuses(redis_client, "m-1"),
                   what="the complaint's status event")
        queue(redis_client, "user:fee", "m-2")
        wait_until(lambda: ledger_state(redis_client, "m-2") == "failed", what="suppression")
        reason = redis_client.hget("kairos:delivery:{m-2}", "r").decode()
        assert reason == "suppressed: email complaint: abuse"
    assert len(smtp.messages) == 1


def test_a_late_bounce_suppresses_the_address(tmp_path, redis_url, redis_client):
    with mail_world(tmp_path, redis_url) as (edge, smtp):
        person(edge, "gil")
        queue(redis_client, "user:gil", "m-3")
        wait_until(lambda: "Message Sent" in statuses(redis_client, "m-3"), what="the email")
        answer = edge.http.post(
            "/v1/callbacks/email", headers={**basic(SECRET_KEY)},
            content=delivery_status("failed", "5.1.1", smtp.messages[0]["Message-ID"]))
        assert answer.json()["kind"] == "bounce" and answer.json()["matched"] is True
        wait_until(lambda: "Message Bounced" in statuses(redis_client, "m-3"),
                   what="the bounce's status event")
        queue(redis_client, "user:gil", "m-4")
        wait_until(lambda: ledger_state(redis_client, "m-4") == "failed", what="suppression")
    assert len(smtp.messages) == 1
