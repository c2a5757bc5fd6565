"""The delivery service: reads the outbox through its own consumer group and sends each
message through its channel's connector, at most once to the provider.

For each message:
1. the ledger (edge/store/deliveries.py) is claimed under the message id: a message
   already sent, failed or dead-lettered is not sent again, whoever redelivers it;
2. consent, address, suppression and quiet hours are checked again, on the profile
   as it is now (what held when the message was queued may have changed);
3. the connector sends, within the channel's rate limit and concurrency, and answers
   Sent, Retry or Failed;
4. the outcome is recorded in the ledger, a retry is scheduled (exponential backoff
   with jitter, or what the provider's Retry-After asked) as a durable timer, and a
   message tried too often, or interrupted where the provider cannot drop a repeat,
   goes to the dead-letter stream with its reason;
5. a status event (`Message Sent`, `Message Delivered`, `Message Bounced`,
   `Message Failed`) goes through the edge's own pipeline, under a message id made
   from the message's, so it joins the person, counts in their aggregates, reaches
   the journeys like any event, and is recorded once however often it is emitted;
6. only then is the outbox entry acknowledged (or the retry timer released): a
   worker killed at any point leaves the entry to be claimed again, and the
   ledger says what had already happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections import Counter
from typing import Any, Mapping

import msgspec
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from edge.connectors.base import Connector, Failed, Outgoing, Result, Retry, Sent
from edge.connectors.status import BOUNCED, DELIVERED, FAILED, SENT, person_event, status_event
from edge.ingest.channels import PUSH_TRAIT, PUSH_UNSUBSCRIBED
from edge.ingest.tracking import (OPEN, UNSUBSCRIBE, Token, Tokens, click_url, load_tokens,
                                  rewrite_links, shorten_links)
from edge.pipeline.delivery import person_for, profile_from
from edge.pipeline.handler import Pipeline, RequestInfo
from edge.pipeline.rulebook import Rulebook
from edge.runtime.config import Settings
from edge.runtime.metrics import Metrics
from edge.store import short_links, streams
from edge.store.deliveries import Claim, DeliveryLedger
from edge.store.profiles import ProfileStore
from edge.worker.consumer import StreamConsumer
from edge.worker.metrics import DELIVERY_STATS_KEY
from rules.journeys import next_allowed
from rules.outcomes import Kind

log = logging.getLogger("kairos.delivery")

DAY_MS = 86_400_000
SUPPRESSED_KEY = "kairos:delivery:suppressed"  # hash: sha256(channel:address) -> reason
INFO = RequestInfo(user_agent="kairos-delivery")


def address_key(channel: str, address: str) -> str:
    kind = "email" if channel == "email" else "phone" if channel in ("sms", "whatsapp") else channel
    return hashlib.sha256(f"{kind}:{address.strip().lower()}".encode()).hexdigest()


def backoff_ms(attempt: int, first_ms: int, most_ms: int, rng: random.Random) -> int:
    """The delay before attempt `attempt + 1`: doubling from `first_ms`, capped, with
    "full jitter" in its upper half so that retries of one outage spread out."""
    ceiling = min(most_ms, first_ms * 2 ** max(0, attempt - 1))
    return int(ceiling / 2 + rng.random() * ceiling / 2)


class DeliveryService:
    def __init__(self, settings: Settings, client: aioredis.Redis, profiles: ProfileStore,
                 rulebook: Rulebook, clock: Any, name: str,
                 connectors: Mapping[str, Connector], stopping: asyncio.Event | None = None,
                 rng: random.Random | None = None) -> None:
        delivery = settings.delivery
        self.settings = settings
        self.client = client
        self._counted: Counter[str] = Counter()  # outcomes since the last flush_counts
        self.profiles = profiles
        self.rulebook = rulebook
        self.clock = clock
        self.connectors = dict(connectors)
        self.gates = {channel: asyncio.Semaphore(max(1, c.concurrency))
                      for channel, c in self.connectors.items()}
        self.ledger = DeliveryLedger(client, ttl_ms=delivery.ledger_days * 86_400_000)
        self.consumer = StreamConsumer(client, streams.OUTBOX, delivery.group, name,
                                       delivery.visibility_ms, delivery.batch, start="0")
        self.pipeline = Pipeline(profiles, rulebook, Metrics(), clock)
        self.rng = rng or random.Random()
        self.stopping = stopping or asyncio.Event()  # the loops end once it is set
        self.tokens: Tokens | None = None  # signs tracking links, when there is a public URL
        self.site_id = next(iter(settings.sites), "")

    # -- the loops --------------------------------------------------------------------------

    async def prepare(self) -> None:
        await self.consumer.ensure_group()
        if self.settings.delivery.public_url:
            self.tokens = await load_tokens(self.client)

    async def outbox_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                entries = await self.consumer.read()
                if entries:
                    await self.handle_entries(entries)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("outbox: %s", exc)
                await asyncio.sleep(0.5)
            except Exception:  # unacknowledged: the entries come back after the visibility timeout
                log.exception("outbox: a batch failed")
                await asyncio.sleep(0.5)

    async def retries_loop(self, poll_s: float) -> None:
        while not self.stopping.is_set():
            try:
                if await self.fire_due_retries(self.clock.now_ms()) == 0:
                    await asyncio.sleep(poll_s)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("delivery retries: %s", exc)
                await asyncio.sleep(0.5)
            except Exception:  # the lease brings the retry back
                log.exception("delivery retries: a retry failed")
                await asyncio.sleep(0.5)

    async def handle_entries(self, entries: list[Any]) -> None:
        async def one(entry: Any) -> str | None:
            record = entry.record
            if not isinstance(record, streams.OutboundMessage):
                return entry.id  # not a message (or unreadable): nothing to deliver
            done = await self.deliver(record, "new")
            return entry.id if done else None

        handled = await asyncio.gather(*(one(e) for e in entries))
        await self.consumer.ack([entry_id for entry_id in handled if entry_id])
        await self.flush_counts()

    async def fire_due_retries(self, now_ms: int) -> int:
        delivery = self.settings.delivery
        claimed = await self.ledger.retries.claim(now_ms, delivery.batch, delivery.lease_ms,
                                                  wall_ms())

        async def one(timer: Any) -> None:
            message = await self.ledger.waiting_message(timer.member)
            if message is None or await self.deliver(message, "retry"):
                await self.ledger.retries.release(timer)

        await asyncio.gather(*(one(t) for t in claimed))
        await self.flush_counts()
        return len(claimed)

    # -- one message ------------------------------------------------------------------------

    async def deliver(self, message: streams.OutboundMessage, mode: str) -> bool:
        """Send `message` once, or learn that it was: True when its entry (or retry timer)
        may be let go, False to leave it for a later claim (another holder is sending)."""
        delivery = self.settings.delivery
        claim = await self.ledger.claim(message.message_id, mode, wall_ms(), delivery.lease_ms)
        if claim.status == "busy":
            return False
        if claim.status == "scheduled":
            return True
        if claim.status == "done":
            await self._status_again(message, claim.state)
            return True
        connector = self.connectors.get(message.channel)
        if claim.status == "interrupted":
            claim = await self.ledger.claim(message.message_id, "retake", wall_ms(),
                                            delivery.lease_ms)
            if claim.status != "go":
                return claim.status != "busy"
            if connector is None or not connector.dedupes:
                await self._dead(message, claim, "interrupted: a worker stopped while sending, "
                                                 "and this provider cannot drop a repeat")
                return True
        if connector is None:
            await self._dead(message, claim, f"no connector is configured for {message.channel}")
            return True
        now = self.clock.now_ms()
        prepared = await self._prepare(message, claim)
        if isinstance(prepared, (Failed, Retry)):
            await self._conclude(message, claim, prepared, now)
            return True
        gate = self.gates[message.channel]
        async with gate:
            await connector.limiter.acquire()
            try:
                result = await asyncio.wait_for(connector.send(prepared),
                                                delivery.lease_ms / 1000 * 0.8)
            except asyncio.TimeoutError:
                result = Retry("the connector took longer than the lease allows")
            except Exception as exc:  # a connector's bug ends this attempt, not the worker
                log.exception("%s connector failed", message.channel)
                result = Retry(f"connector error: {type(exc).__name__}")
        await self._conclude(message, claim, result, self.clock.now_ms())
        if isinstance(result, Failed) and result.gone and message.channel == "push":
            await self._forget_subscription(message, prepared.to)
        return True

    async def _prepare(self, message: streams.OutboundMessage, claim: Claim
                       ) -> Outgoing | Failed | Retry:
        """The send-time checks, and the message for its connector."""
        site_id = self.site_id
        site = self.settings.sites.get(site_id)
        if message.channel == "webhook":
            return Outgoing(message=message, site=site_id, to=message.link or "",
                            idempotency_key=message.message_id)
        active = self.rulebook.active
        now = self.clock.now_ms()
        reply = await self.profiles.read(message.profile_id, active.layout, now)
        if reply is None:
            return Failed("no_address: the person is not known (erased, or never seen)")
        profile = profile_from(reply, active.layout)
        traits = profile["traits"]
        zone = traits.get("timezone")
        zone = zone if isinstance(zone, str) else (site.timezone if site else "UTC")
        person = person_for(profile, zone, now, site.consent_defaults if site else {})
        checks = active.ruleset.arbiter.checks
        why = checks.closed(person, message.channel)
        if why is not None:
            if why.kind is Kind.QUIET_HOURS:
                after = next_allowed(why, person, checks, now)
                return Retry("quiet_hours", (after - now) if after else None)
            return Failed(f"{why.kind.value}: checked again at send time")
        address = address_of(message.channel, traits)
        if not address:
            return Failed("no_address")
        suppressed = await self.client.hget(SUPPRESSED_KEY, address_key(message.channel, address))
        if suppressed is not None:
            return Failed(f"suppressed: {suppressed.decode()}")
        first = traits.get("first_name")
        outgoing = Outgoing(message=message, site=site_id, to=address,
                            idempotency_key=message.message_id,
                            sender=site.email_from if site else "",
                            first_name=first if isinstance(first, str) else "")
        return await self._tracked(outgoing, now)

    async def _tracked(self, outgoing: Outgoing, now: int) -> Outgoing:
        """Links through signed redirects (with UTM; a text's through short links to
        them); for email also the open pixel and unsubscribe."""
        delivery = self.settings.delivery
        if self.tokens is None:
            return outgoing
        message, base = outgoing.message, delivery.public_url
        template = Token(kind=UNSUBSCRIBE, message_id=message.message_id,
                         profile_id=message.profile_id, channel=message.channel,
                         site=outgoing.site, journey=message.journey or "",
                         step=message.step or "", sent_ms=now)
        if message.channel != "email":
            if not delivery.track_clicks:
                return outgoing
            if message.channel == "push" and message.link:
                link = click_url(message.link, base, self.tokens, template, outgoing.site)
                return msgspec.structs.replace(
                    outgoing, message=msgspec.structs.replace(message, link=link))
            if message.channel in ("sms", "whatsapp"):
                body, codes = shorten_links(message.body, base, self.tokens, template,
                                            outgoing.site)
                await short_links.save(self.client, codes, delivery.short_link_days * DAY_MS)
                return msgspec.structs.replace(
                    outgoing, message=msgspec.structs.replace(message, body=body))
            return outgoing
        changes: dict[str, Any] = {
            "unsubscribe_url": f"{base}/u/{self.tokens.sign(template)}"}
        if delivery.track_opens:
            opened = msgspec.structs.replace(template, kind=OPEN)
            changes["open_pixel_url"] = f"{base}/m/{self.tokens.sign(opened)}.png"
        if delivery.track_clicks:
            body = rewrite_links(message.body, base, self.tokens, template, outgoing.site)
            changes["message"] = msgspec.structs.replace(message, body=body)
        return msgspec.structs.replace(outgoing, **changes)

    async def _conclude(self, message: streams.OutboundMessage, claim: Claim, result: Result,
                        now: int) -> None:
        delivery = self.settings.delivery
        if isinstance(result, Sent):
            if await self.ledger.finish(message, claim, "sent", now,
                                        provider_id=result.provider_id):
                for provider_id in {result.provider_id, result.reference} - {""}:
                    await self.ledger.remember_provider_id(message.channel, provider_id,
                                                           message.message_id)
                self._count(message.channel, "sent")
                await self._status(message, SENT, claim.attempt, provider_id=result.provider_id)
                if result.delivered:
                    await self._status(message, DELIVERED, claim.attempt,
                                       provider_id=result.provider_id)
            return
        if isinstance(result, Retry):
            quiet = result.reason == "quiet_hours"
            if claim.attempt >= delivery.max_attempts and not quiet:
                await self._dead(message, claim, f"gave up after {claim.attempt} attempts: "
                                                 f"{result.reason}")
                return
            wait = backoff_ms(claim.attempt, delivery.backoff_ms, delivery.max_backoff_ms,
                              self.rng)
            if result.after_ms is not None:
                wait = result.after_ms if quiet else max(wait, result.after_ms)
            if await self.ledger.schedule_retry(message, claim, now + wait, now, result.reason):
                self._count(message.channel, "deferred" if quiet else "retried")
            return
        if await self.ledger.finish(message, claim, "failed", now,
                                    reason=result.reason):
            if result.bounced:
                await self._suppress(message, result.reason)
            self._count(message.channel, "bounced" if result.bounced else "failed")
            await self._status(message, BOUNCED if result.bounced else FAILED, claim.attempt,
                               reason=result.reason)

    async def _dead(self, message: streams.OutboundMessage, claim: Claim, reason: str) -> None:
        now = self.clock.now_ms()
        if await self.ledger.finish(message, claim, "dead", now, reason=reason):
            await self.ledger.dead_letter(message, reason, claim.attempt, now)
            self._count(message.channel, "dead")
            await self._status(message, FAILED, claim.attempt, reason=reason, dead=True)

    async def _suppress(self, message: streams.OutboundMessage, reason: str) -> None:
        reply = await self.profiles.read(message.profile_id, self.rulebook.active.layout,
                                         self.clock.now_ms())
        if reply is None:
            return
        address = address_of(message.channel, profile_from(reply, self.rulebook.active.layout)
                           ["traits"])
        if address:
            await self.client.hset(SUPPRESSED_KEY, address_key(message.channel, address),
                                   f"{message.channel} bounced: {reason}"[:300])

    async def _forget_subscription(self, message: streams.OutboundMessage, sent_to: str) -> None:
        """The push service says the subscription is gone: remove it from the person,
        unless they have subscribed again since (a newer endpoint is kept)."""
        reply = await self.profiles.read(message.profile_id, self.rulebook.active.layout,
                                         self.clock.now_ms())
        if reply is None:
            return
        stored = profile_from(reply, self.rulebook.active.layout)["traits"].get(PUSH_TRAIT)
        try:
            endpoint = orjson.loads(sent_to)["endpoint"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            endpoint = None
        if not isinstance(stored, dict) or stored.get("endpoint") not in (endpoint, None):
            return
        made = person_event(self.settings, self.site_id, message.profile_id, PUSH_UNSUBSCRIBED,
                            f"{message.message_id}:{PUSH_UNSUBSCRIBED}",
                            {"reason": "the push service answered that the subscription "
                                       "is gone", "message_id": message.message_id},
                            self.clock.now_ms())
        if made is not None:
            await self.pipeline.handle(made[0], made[1], INFO, answered=False)

    def _count(self, channel: str, outcome: str) -> None:
        self._counted[f"{channel}:{outcome}"] += 1

    async def flush_counts(self) -> None:
        """The outcome counts since the last flush, for /metrics, in one round trip (a
        worker killed before it loses its last batch's counts, never a message)."""
        counted, self._counted = self._counted, Counter()
        if not counted:
            return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for field, n in counted.items():
                    pipe.hincrby(DELIVERY_STATS_KEY, field, n)
                await pipe.execute()
        except RedisError:
            self._counted.update(counted)  # kept for the next flush

    # -- status events ----------------------------------------------------------------------

    async def _status_again(self, message: streams.OutboundMessage, state: str) -> None:
        """A message found done: its status event again, in case the worker that finished
        it stopped before emitting it (the event's message id makes the repeat a no-op)."""
        record = await self.ledger.record(message.message_id)
        if record is None:
            return
        if state == "sent":
            await self._status(message, SENT, record.attempts, provider_id=record.provider_id)
        elif state in ("failed", "dead"):
            await self._status(message, FAILED, record.attempts, reason=record.reason,
                                dead=state == "dead")

    async def _status(self, message: streams.OutboundMessage, name: str, attempt: int,
                      provider_id: str = "", reason: str = "", dead: bool = False) -> None:
        made = status_event(self.settings, self.site_id, message, name, self.clock.now_ms(),
                            attempt, provider_id, reason, dead)
        if made is None:
            return
        incoming, caller = made
        try:
            await self.pipeline.handle(incoming, caller, INFO, answered=False)
        except (RedisError, OSError):
            raise
        except Exception:  # the delivery is recorded in the ledger; the event is its echo
            log.exception("status event %s of %s", name, message.message_id)

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.flush_counts()
        for connector in self.connectors.values():
            with contextlib.suppress(Exception):
                await connector.close()


def address_of(channel: str, traits: Mapping[str, Any]) -> str:
    """The person's address on `channel`, as the connectors send to it."""
    if channel == "email":
        value = traits.get("email")
    elif channel in ("sms", "whatsapp"):
        value = traits.get("phone")
    elif channel == "push":
        value = traits.get("push_subscription")
        if isinstance(value, dict):
            return orjson.dumps(value).decode()
    else:
        return ""
    return value.strip() if isinstance(value, str) else ""


def wall_ms() -> int:
    return time.time_ns() // 1_000_000
