"""Reports about sent email that arrive as email: complaints and late bounces.

A mailbox provider's feedback loop sends a complaint ("this is spam") as an Abuse
Reporting Format report (RFC 5965: `multipart/report; report-type=feedback-report`),
and a relay that accepted a message but could not deliver it later sends a delivery
status notification (RFC 3464: `report-type=delivery-status`). Both carry the
original message, or its headers, as the last part, and so its `Message-ID`, which
the SMTP connector made from our message id (edge/connectors/email_message.py).

`read_report` turns such a message into a `Report`: a complaint (any feedback type
but `not-spam`), a bounce (a recipient whose action is `failed` with a permanent
5.x.x status), or nothing we act on (a delay, a success, a not-spam report).
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import Message

COMPLAINT, BOUNCE = "complaint", "bounce"


class NotAReport(ValueError):
    """The message is neither a feedback report nor a delivery status notification."""


@dataclass(frozen=True, slots=True)
class Report:
    kind: str | None  # complaint | bounce | None: nothing to act on
    message_id: str  # the original's Message-ID without its <>, "" when the report lacks it
    reason: str  # the feedback type, or the status and diagnostic


def read_report(raw: bytes) -> Report:
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    if message.get_content_type() != "multipart/report":
        raise NotAReport("expected a multipart/report message (RFC 5965 or RFC 3464)")
    report_type = (message.get_param("report-type") or "").lower()
    parts = message.get_payload()
    if not isinstance(parts, list) or len(parts) < 2:
        raise NotAReport("a report has a human-readable part and a machine-readable part")
    original = _original_message_id(parts[-1]) if len(parts) >= 3 else ""
    if report_type == "feedback-report":
        fields = _fields(_part(parts, "message/feedback-report"))
        feedback = fields[0].get("feedback-type", "").strip().lower() if fields else ""
        if not feedback:
            raise NotAReport("the feedback report has no Feedback-Type")
        return Report(None if feedback == "not-spam" else COMPLAINT, original, feedback)
    if report_type == "delivery-status":
        groups = _fields(_part(parts, "message/delivery-status"))
        if len(groups) < 2:
            raise NotAReport("the delivery status names no recipient")
        for recipient in groups[1:]:
            action = recipient.get("action", "").strip().lower()
            status = recipient.get("status", "").strip()
            if action == "failed" and status.startswith("5."):
                diagnostic = recipient.get("diagnostic-code", "").strip()
                return Report(BOUNCE, original, f"{status} {diagnostic}".strip()[:300])
        return Report(None, original, "not a permanent failure")
    raise NotAReport(f"report-type {report_type or 'missing'}: expected feedback-report or "
                     "delivery-status")


def _part(parts: list[Message], content_type: str) -> Message | None:
    return next((part for part in parts if part.get_content_type() == content_type), None)


def _fields(part: Message | None) -> list[dict[str, str]]:
    """The header groups of a machine-readable part (blank lines between groups), names
    lowercased. The parser hands some types over as sub-messages, others as text."""
    if part is None:
        return []
    payload = part.get_payload()
    if isinstance(payload, list):  # message/delivery-status: one Message per group
        return [{name.lower(): " ".join(str(value).split()) for name, value in group.items()}
                for group in payload]
    text = part.get_payload(decode=True) or b""
    groups: list[dict[str, str]] = [{}]
    name = ""
    for line in text.decode("utf-8", "replace").splitlines():
        if not line.strip():
            if groups[-1]:
                groups.append({})
            continue
        if line[0] in " \t" and name:  # a folded line continues the field
            groups[-1][name] += " " + line.strip()
            continue
        name, _, value = line.partition(":")
        name = name.strip().lower()
        groups[-1][name] = value.strip()
    return [group for group in groups if group]


def _original_message_id(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list) and payload:  # message/rfc822
        headers: Message = payload[0]
    else:  # text/rfc822-headers
        text = part.get_payload(decode=True) or b""
        headers = email.message_from_bytes(text, policy=email.policy.compat32)
    return "".join((headers.get("Message-ID") or "").split()).removeprefix("<").removesuffix(">")
