"""Channel connectors: one provider format each, behind one interface (base.py)."""

from __future__ import annotations

import os
from typing import Mapping

import redis.asyncio as aioredis

from edge.connectors.base import Connector
from edge.runtime.config import Settings


def build_connectors(settings: Settings, client: aioredis.Redis,
                     environ: Mapping[str, str] = os.environ) -> dict[str, Connector]:
    """The connectors the configuration sets up, by channel."""
    from edge.connectors.sms import SmsConnector
    from edge.connectors.smtp import EmailConnector
    from edge.connectors.webhook import WebhookConnector
    from edge.connectors.webpush import WebPushConnector
    from edge.connectors.whatsapp import WhatsAppConnector

    delivery = settings.delivery
    found: dict[str, Connector] = {}
    if delivery.email is not None:
        found["email"] = EmailConnector(delivery.email, environ)
    if delivery.webhooks.endpoints:
        found["webhook"] = WebhookConnector(delivery.webhooks, client, environ)
    if delivery.sms is not None:
        found["sms"] = SmsConnector(delivery.sms, environ)
    if delivery.whatsapp is not None:
        found["whatsapp"] = WhatsAppConnector(delivery.whatsapp, client, environ)
    if delivery.push is not None:
        found["push"] = WebPushConnector(delivery.push, environ)
    return found
