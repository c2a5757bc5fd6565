"""`kairos worker`: the automation worker's loops around the journey runner.

- the event loop reads the event stream through the consumer group (several workers
  share it) and hands each person's events, in order, to the runner; entries are
  acknowledged only once handled;
- the timer loop claims due timers with a lease (edge/store/timers.py) and releases
  each once its stimulus is committed: a worker killed mid-step leaves its leases to
  expire, and another worker fires them again;
- the calendar loop sweeps each time zone once its local date begins, enrolling the
  people whose birthday, anniversary or name day it is;
- journey files are reloaded when they change; every loaded version's text is kept
  in Redis for the runs that entered it;
- the counters are flushed to Redis once a second, where the edge's /metrics reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import defaultdict
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.maint_notifications import MaintNotificationsConfig

from edge.pipeline.journeybook import Journeys
from edge.pipeline.rulebook import Rulebook
from edge.runtime.config import Settings
from edge.store import streams
from edge.store.catalog import CatalogStore
from edge.store.journeys import JourneyStore, parse_member
from edge.store.profiles import ProfileStore
from edge.store.timers import Timer, TimerStore
from edge.worker import audiences, calendar_sweep, destinations
from edge.worker.calendar_index import CalendarIndex
from rules.calendars import NameDays
from edge.worker.consumer import StreamConsumer, entry_time_ms
from edge.connectors import build_connectors
from edge.connectors.http import HttpClient
from edge.worker.delivery import DeliveryService
from edge.worker.inbox import serve_inbox
from edge.worker.metrics import LAG_KEY, STATS_KEY
from edge.worker.runner import JourneyRunner

log = logging.getLogger("kairos.worker")

CONCURRENT_PEOPLE = 64  # people whose events are handled at once within a batch
REDIS_CONNECTIONS = 100  # per client; more requests wait for one
POOL_WAIT_S = 20.0  # a request waiting longer than this for a connection fails
# claimed batches of timers being fired at once: the next is claimed and read while
# one is computed, and one person's timers in two batches are kept apart by the
# commits' version check
TIMER_BATCHES_IN_FLIGHT = 2
LOOPS_STOP_S = 3.0  # how long a stop waits for the loops to finish what they are doing
AUDIENCE_CHECK_S = 1.0  # how often the audience schedule is looked at


def worker_client(redis_url: str) -> aioredis.Redis:
    """A client whose pool waits for a free connection rather than failing: a batch of
    messages or people in flight at once can ask for more than the pool holds."""
    pool = aioredis.BlockingConnectionPool.from_url(
        redis_url, max_connections=REDIS_CONNECTIONS, timeout=POOL_WAIT_S,
        decode_responses=False, health_check_interval=30,
        maint_notifications_config=MaintNotificationsConfig(enabled=False))
    return aioredis.Redis.from_pool(pool)


class Worker:
    def __init__(self, settings: Settings, redis_url: str, clock: Any,
                 consumer_name: str | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.client = worker_client(redis_url)
        self.name = consumer_name or f"{socket.gethostname()}-{os.getpid()}"
        automation = settings.automation
        self.rulebook = Rulebook(settings.rules_dir, settings.scenarios_dir)
        self.journeys = Journeys(settings.journeys_dir, self.rulebook)
        self.profiles = ProfileStore(self.client, settings, redis_url)
        self.journey_store = JourneyStore(self.client)
        self.timers = TimerStore(self.client, shards=automation.timer_shards)
        self.calendar = CalendarIndex(self.client)
        self.name_days = load_name_days(settings)
        self._paused: frozenset[str] = frozenset()
        self.runner = JourneyRunner(settings, self.profiles, self.journey_store, self.timers,
                                    self.rulebook, lambda: self.journeys.book, clock,
                                    lambda: self._paused, CatalogStore(self.client, settings, clock))
        self.consumer = StreamConsumer(self.client, settings.stream.key, automation.group,
                                       self.name, automation.visibility_ms, automation.batch,
                                       start="$" if automation.start == "new" else "0")
        self.stream_lag_ms = 0
        self.timer_lag_ms = 0
        self._flushed: dict[str, int] = defaultdict(int)
        self.stopping = asyncio.Event()
        # Delivery runs where a connector is configured: without one the outbox stays as
        # it is, for a worker that has them (or for a later configuration) to deliver.
        # Its own connections: two blocking stream reads cancelled together on one pool
        # can leave both waiting for a connection that is never given back.
        self.delivery_client = worker_client(redis_url)
        connectors = build_connectors(settings, self.delivery_client) \
            if settings.delivery.enabled else {}
        # Event forwarding, with connections of its own for the same reason.
        self.destinations_client = worker_client(redis_url) if settings.destinations else None
        self.destinations_http = HttpClient() if settings.destinations else None
        self.forwarders = destinations.forwarders(
            settings, self.destinations_client, self.destinations_http, self.name, os.environ,
            self.stopping) if self.destinations_client is not None else []
        self.delivery = DeliveryService(settings, self.delivery_client, self.profiles,
                                        self.rulebook, clock, self.name, connectors,
                                        self.stopping) \
            if connectors else None

    async def run(self) -> None:
        if not await self._prepare():
            await self._close()
            return
        # Every loop ends by itself once stopping is set (a stream read blocks for a short
        # while only); cancelling is the fallback. A blocking read cancelled mid-way can
        # leave its connection waiting for a reply that never comes, and redis-py may
        # turn a cancellation during a reconnect into a connection error the loop survives.
        loops = [self.events_loop(), self.timers_loop(), self.calendar_loop(),
                 self.reload_loop(), self.flush_loop()]
        loops += [forwarder.run() for forwarder in self.forwarders]
        if any(audience.every_s > 0 for audience in self.settings.audiences.values()):
            loops.append(self.audiences_loop())
        if self.delivery is not None:
            loops += [self.delivery.outbox_loop(),
                      self.delivery.retries_loop(self.settings.automation.poll_ms / 1000)]
        tasks = [asyncio.create_task(loop) for loop in loops]
        demo = self.settings.demo
        inbox = await serve_inbox(self.delivery_client, demo.inbox_port) \
            if demo.enabled and demo.inbox_port else None
        try:
            await self.stopping.wait()
            await asyncio.wait(tasks, timeout=LOOPS_STOP_S)
        finally:
            if inbox is not None:
                inbox.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # the last counters, if Redis still answers: a stop must not wait on a Redis
            # that is going away with the edge
            with contextlib.suppress(RedisError, OSError, asyncio.TimeoutError):
                await asyncio.wait_for(self._flush(), 1.0)
            with contextlib.suppress(RedisError, OSError, asyncio.TimeoutError):
                await asyncio.wait_for(self._close(), 1.0)

    async def _close(self) -> None:
        if self.delivery is not None:
            await self.delivery.close()
        if self.destinations_http is not None:
            await self.destinations_http.close()
            await self.destinations_client.aclose()
        await self.delivery_client.aclose()
        await self.client.aclose()
        self.profiles.batcher.close()

    def stop(self) -> None:
        self.stopping.set()

    async def _prepare(self) -> bool:
        """Ready to work once Redis answers; False when asked to stop before that."""
        while not self.stopping.is_set():
            try:
                await self.profiles.batcher.load_scripts()
                await self.consumer.ensure_group()
                if self.delivery is not None:
                    await self.delivery.prepare()
                for forwarder in self.forwarders:
                    await forwarder.prepare()
                await self.journey_store.remember_documents(self.journeys.documents())
                self.journeys.add_versions(await self.journey_store.documents())
                self._paused = await self.journey_store.paused()
                log.info("worker %s: %d journey(s), group %s on %s", self.name,
                         len(self.journeys.loaded), self.consumer.group, self.consumer.stream)
                return True
            except (RedisError, OSError) as exc:
                log.warning("worker waits for Redis: %s", exc)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 1.0)
        return False

    # -- the loops ---------------------------------------------------------------------------
    async def events_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                entries = await self.consumer.read()
                if entries:
                    await self.handle_entries(entries)
                    # entry ids carry Redis's wall clock, whatever clock the journeys run on
                    self.stream_lag_ms = max(0, time.time_ns() // 1_000_000
                                             - entry_time_ms(entries[-1].id))
                else:
                    self.stream_lag_ms = 0
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("event stream: %s", exc)
                await asyncio.sleep(0.5)
            except Exception:  # unacknowledged, the batch comes back after the visibility timeout
                log.exception("event stream: a batch failed")
                await asyncio.sleep(0.5)

    async def handle_entries(self, entries: list[Any]) -> None:
        """Each person's events in stream order; people side by side."""
        by_person: dict[str, list[Any]] = defaultdict(list)
        catalog: list[streams.CatalogChange] = []
        for entry in entries:
            record = entry.record
            if isinstance(record, (streams.Event, streams.Enrollment, streams.SegmentChange)) \
                    and record.profile_id:
                by_person[record.profile_id].append(record)
            elif isinstance(record, streams.CatalogChange):
                catalog.append(record)
            elif record is None:
                self.runner.counters.skipped += 1
        people = list(by_person)
        stored = dict(zip(people, await self.journey_store.read_many(people))) if people else {}
        gate = asyncio.Semaphore(CONCURRENT_PEOPLE)

        async def person(profile_id: str) -> None:
            async with gate:
                first = stored[profile_id]
                for index, record in enumerate(by_person[profile_id]):
                    if isinstance(record, streams.Enrollment):
                        await self.runner.enroll(record.profile_id, record.journey, record.key,
                                                 record.idempotency_key, record.data)
                        continue
                    if isinstance(record, streams.SegmentChange):
                        await self.runner.on_segments(record)
                        continue
                    # the first event reads the state prefetched for the batch; later ones
                    # of the same person read it again, after the first one's commit
                    await self.runner.on_event(record, first if index == 0 else None)
                    if calendar_sweep.dates_may_change(self.journeys.book, record.event):
                        await calendar_sweep.index_person(self, profile_id,
                                                          record.event.get("site") or "")

        await asyncio.gather(*(person(p) for p in people))
        for change in catalog:  # after the batch's views were recorded
            await self.runner.on_catalog(change)
        await self.runner.flush()  # timers and counts before the events are acknowledged
        await self.consumer.ack([entry.id for entry in entries])

    async def timers_loop(self) -> None:
        """Claims due timers and fires them, a claimed batch being fired while the next
        is claimed and read: the worker computes while Redis answers."""
        automation = self.settings.automation
        firing: set[asyncio.Task[None]] = set()
        try:
            while not self.stopping.is_set():
                try:
                    if len(firing) >= TIMER_BATCHES_IN_FLIGHT:
                        done, firing = await asyncio.wait(firing,
                                                          return_when=asyncio.FIRST_COMPLETED)
                        if [task for task in done if not task.cancelled() and task.exception()]:
                            await asyncio.sleep(0.5)  # logged where they failed
                    claimed = await self.claim_due_timers(self.clock.now_ms())
                    if claimed:
                        firing.add(asyncio.create_task(self._fire_logged(claimed)))
                    if len(claimed) < automation.batch:
                        await asyncio.sleep(automation.poll_ms / 1000)
                except asyncio.CancelledError:
                    raise
                except (RedisError, OSError) as exc:
                    log.warning("timers: %s", exc)
                    await asyncio.sleep(0.5)
            if firing:
                done, firing = await asyncio.wait(firing)
                for task in done:  # logged where they failed: read so none is left unread
                    if not task.cancelled():
                        task.exception()
        finally:
            for task in firing:
                task.cancel()

    async def _fire_logged(self, claimed: list[Timer]) -> None:
        try:
            await self.fire_claimed(claimed)
        except (RedisError, OSError) as exc:
            log.warning("timers: %s", exc)
            raise
        except Exception:  # a bug must not stop the loop: the lease brings the timer back
            log.exception("timers: a timer failed")
            raise

    async def fire_due_timers(self, now: int) -> int:
        """One claim of the timers due by `now` (at most a batch), each fired and released
        in due order: how many were claimed. `kairos simulate` calls it at each moment of
        its clock, so a simulated run wakes through the same code as a live one."""
        claimed = await self.claim_due_timers(now)
        if claimed:
            await self.fire_claimed(claimed)
        return len(claimed)

    async def claim_due_timers(self, now: int) -> list[Timer]:
        automation = self.settings.automation
        claimed = await self.timers.claim(now, automation.batch, automation.timer_lease_ms,
                                          time.time_ns() // 1_000_000)
        self.timer_lag_ms = max((now - t.due_ms for t in claimed), default=0)
        return claimed

    async def fire_claimed(self, claimed: list[Timer]) -> None:
        """Fire each claimed timer, one person's in due order and people side by side, then
        release them once what they changed is written."""
        by_person: dict[str, list[Any]] = defaultdict(list)
        for timer in claimed:  # in due order
            by_person[parse_member(timer.member)[0]].append(timer)
        people = list(by_person)
        stored = dict(zip(people, await self.journey_store.read_many(people)))
        gate = asyncio.Semaphore(CONCURRENT_PEOPLE)

        async def person(profile_id: str) -> None:
            async with gate:
                for index, timer in enumerate(by_person[profile_id]):
                    await self.runner.on_timer(timer.member,
                                               stored[profile_id] if index == 0 else None)

        await asyncio.gather(*(person(p) for p in people))
        await self.runner.flush()  # the next timers are written before the leases go
        await self.timers.release_many(claimed)

    async def calendar_loop(self) -> None:
        await self._repeat("calendar sweep", lambda: calendar_sweep.sweep_due(self),
                           self.settings.automation.poll_ms / 1000)

    async def audiences_loop(self) -> None:
        """The scheduled ad-audience exports (edge/worker/audiences.py)."""
        http = HttpClient()
        try:
            await self._repeat("audience export", lambda: audiences.export_due(
                self.client, self.settings, self.clock.now_ms(), http, dict(os.environ)),
                AUDIENCE_CHECK_S)
        finally:
            await http.close()

    async def _repeat(self, what: str, work: Any, interval_s: float) -> None:
        """`work()` every `interval_s` until the worker stops; a failure is logged and
        the next turn tries again."""
        while not self.stopping.is_set():
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("%s: %s", what, exc)
            except Exception:
                log.exception("%s failed", what)
            await asyncio.sleep(interval_s)

    async def reload_loop(self) -> None:
        seen = self.journeys.fingerprint()
        rules_seen = self.rulebook.fingerprint()
        while not self.stopping.is_set():
            await asyncio.sleep(1.0)
            try:
                if self.rulebook.fingerprint() != rules_seen:
                    rules_seen = self.rulebook.fingerprint()
                    self.rulebook.reload()
                current = self.journeys.fingerprint()
                if current != seen:
                    seen = current
                    if not self.journeys.reload():
                        log.info("journeys reloaded: %d journey(s)", len(self.journeys.loaded))
                    await self.journey_store.remember_documents(self.journeys.documents())
                    self.journeys.add_versions(await self.journey_store.documents())
                self._paused = await self.journey_store.paused()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("journey reload: %s", exc)

    async def flush_loop(self) -> None:
        while not self.stopping.is_set():
            await asyncio.sleep(1.0)
            try:
                await self._flush()
            except (RedisError, OSError):
                pass

    async def _flush(self) -> None:
        counters = self.runner.counters
        totals = {"events": counters.events, "timers": counters.timers, "sends": counters.sends,
                  "deferred": counters.deferred, "commits": counters.commits,
                  "conflicts": counters.conflicts, "duplicates": counters.duplicates,
                  "skipped": counters.skipped}
        async with self.client.pipeline(transaction=False) as pipe:
            for name, total in totals.items():
                delta = total - self._flushed[name]
                if delta:
                    pipe.hincrby(STATS_KEY, name, delta)
                    self._flushed[name] = total
            pipe.hset(LAG_KEY, self.name,
                      f"{self.stream_lag_ms},{self.timer_lag_ms},{self.clock_ms()}")
            await pipe.execute()

    def clock_ms(self) -> int:
        return self.clock.now_ms()


def load_name_days(settings: Settings) -> NameDays:
    """The name-day calendars under config/namedays/ (one `<country>.tsv` each)."""
    folder = settings.namedays_dir
    files = sorted(folder.glob("*.tsv")) if folder.is_dir() else []
    return NameDays([(path.stem, path.read_text(encoding="utf-8")) for path in files])
