"""Destinations: other systems (a CRM, a warehouse, an ad platform's server API) kept in
step with the events, in near real time.

Each configured destination has a forwarder in every worker, reading the event
stream through the destination's own consumer group: the events it asks for (by
name or type, and a condition on the event in the rules' language) are POSTed in
batches as `{"type": "events", "timestamp", "data": {"events": [...]}}`, signed as
webhooks are (Standard Webhooks; `webhook-id` names the batch's first and last
stream entries), and acknowledged once the destination answered 2xx. Timeouts, 5xx
and 429 are retried with backoff (a 429's Retry-After honoured) up to
`max_attempts`; a batch refused with another 4xx, or past its attempts, goes to the
dead letters with the reason, and the forwarder goes on. A worker killed mid-batch
leaves the batch pending in the group; another worker (or the same, restarted) takes
it over after the visibility timeout: at least once, and each event carries its
`messageId` for the receiver to drop repeats.

An erased person is sent as `{"type": "profile.deleted", "data": {"profile_id",
"identifiers"}}`, one request each, from the erasure stream (edge/store/destinations.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import orjson
import redis.asyncio as aioredis

from edge.connectors.http import HttpClient, Unreachable
from edge.connectors.webhook import Signer
from edge.runtime.config import DestinationSettings, WebhookEndpoint
from edge.store import destinations as store
from edge.store import streams
from edge.worker.consumer import Entry, StreamConsumer
from rules.expression import compile_expression
from rules.reference import Environment, truthy

log = logging.getLogger("kairos.destinations")

RETRY_AFTER_MAX_S = 300.0


class Stopping(Exception):
    """The worker is stopping: what is being sent stays pending for the next worker."""


class Forwarder:
    def __init__(self, name: str, settings: DestinationSettings, stream: str,
                 client: aioredis.Redis, http: HttpClient, consumer: str,
                 visibility_ms: int, environ: Mapping[str, str],
                 stopping: asyncio.Event) -> None:
        self.name = name
        self.settings = settings
        self.client = client
        self.http = http
        self.stopping = stopping
        group = store.group_of(name)
        self.events = StreamConsumer(client, stream, group, consumer, visibility_ms,
                                     settings.batch, block_ms=500, start="$")
        # erasures recorded before this destination's group existed are sent too: a
        # deletion request for data it never had costs it nothing
        self.erasures = StreamConsumer(client, store.ERASURES, group, consumer, visibility_ms,
                                       settings.batch, block_ms=None, start="0",
                                       decode=store.decode_erasure) \
            if settings.erasures else None
        endpoint = WebhookEndpoint(settings.url, settings.secret_env,
                                   settings.previous_secret_env)
        self.signer = Signer([environ[variable] for variable in
                              (endpoint.secret_env, endpoint.previous_secret_env)
                              if variable and environ.get(variable)])
        self.erasure_groups: tuple[str, ...] = ()  # every destination's that reads erasures
        self.names = frozenset(settings.events)
        self.condition = compile_expression(settings.when) if settings.when else None

    async def prepare(self) -> None:
        await self.events.ensure_group()
        if self.erasures is not None:
            await self.erasures.ensure_group()

    def wants(self, record: Any) -> bool:
        if not isinstance(record, streams.Event):
            return False
        event = record.event
        kind = event.get("type")
        if self.names and (event.get("event") if kind == "track" else kind) not in self.names:
            return False
        if self.condition is None:
            return True
        try:
            return truthy(self.condition(Environment(event=event)))
        except Exception:  # a condition over an odd event is false, never a crash
            return False

    async def run(self) -> None:
        while not self.stopping.is_set():
            try:
                if self.erasures is not None:
                    await self.forward_erasures()
                entries = await self.events.read()
                if entries:
                    await self.forward(entries)
            except Stopping:
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the batch stays pending and comes back after the visibility timeout
                log.warning("destination %s: %r", self.name, exc)
                await asyncio.sleep(0.5)

    async def forward(self, entries: list[Entry]) -> None:
        chosen = [entry for entry in entries if self.wants(entry.record)]
        if chosen:
            events = [{"profile_id": entry.record.profile_id, **entry.record.event}
                      for entry in chosen]
            batch_id = f"{self.name}:{chosen[0].id}:{chosen[-1].id}"
            problem = await self.send(batch_id, "events", {"events": events})
            if problem is None:
                await store.count(self.client, self.name, "forwarded", len(chosen))
            else:
                log.warning("destination %s: batch %s dead-lettered: %s", self.name, batch_id,
                            problem)
                await store.dead_letter(self.client, self.name, problem,
                                        [entry.id for entry in chosen],
                                        [event.get("messageId") or "" for event in events])
                await store.count(self.client, self.name, "dead", len(chosen))
        await self.events.ack([entry.id for entry in entries])

    async def forward_erasures(self) -> None:
        assert self.erasures is not None
        entries = await self.erasures.read()
        for entry in entries:
            erasure = entry.record
            if erasure is not None:
                problem = await self.send(f"{self.name}:erasure:{entry.id}", "profile.deleted",
                                          {"profile_id": erasure.profile_id,
                                           "identifiers": list(erasure.identifiers)})
                if problem is None:
                    await store.count(self.client, self.name, "erasures")
                else:
                    await store.dead_letter(self.client, self.name, problem, [entry.id],
                                            [erasure.profile_id])
            await self.erasures.ack([entry.id])
        if entries:
            await store.trim_erasures(self.client, self.erasure_groups)

    async def send(self, message_id: str, kind: str, data: dict[str, Any]) -> str | None:
        """POST one signed request, retried while the destination may take it later:
        None once it answered 2xx, else why it will not (for the dead letters)."""
        settings = self.settings
        body = orjson.dumps({"type": kind, "timestamp": _now_iso(), "data": data})
        problem = ""
        for attempt in range(settings.max_attempts):
            delay = min(settings.backoff_ms * 2 ** attempt, settings.max_backoff_ms) / 1000
            delay *= random.uniform(0.5, 1.0)  # jitter: workers that failed together spread out
            try:
                answer = await self.http.post(
                    settings.url, body=body, timeout_ms=settings.timeout_ms,
                    headers=self.signer.headers(message_id, body, datetime.now(timezone.utc)))
            except Unreachable as exc:
                problem = exc.reason
            else:
                status = answer.status
                if status < 300:
                    return None
                problem = f"{status} {answer.text[:200]}"
                if 400 <= status < 500 and status not in (408, 429):
                    return problem  # asking again would be refused again
                if status == 429:
                    delay = _retry_after(answer.headers.get("retry-after"), delay)
            if attempt + 1 < settings.max_attempts:
                await self._pause(delay)
        return f"{problem} (after {settings.max_attempts} attempts)"

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except asyncio.TimeoutError:
            return
        raise Stopping


def _retry_after(value: str | None, fallback: float) -> float:
    try:
        return min(max(float(value), 0.0), RETRY_AFTER_MAX_S) if value else fallback
    except ValueError:
        return fallback


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def forwarders(settings: Any, client: aioredis.Redis, http: HttpClient, consumer: str,
               environ: Mapping[str, str], stopping: asyncio.Event) -> list[Forwarder]:
    """One forwarder per configured destination."""
    made = [Forwarder(name, destination, settings.stream.key, client, http, consumer,
                      settings.automation.visibility_ms, environ, stopping)
            for name, destination in settings.destinations.items()]
    groups = tuple(store.group_of(f.name) for f in made if f.erasures is not None)
    for forwarder in made:
        forwarder.erasure_groups = groups
    return made
