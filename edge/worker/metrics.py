"""The automation workers' figures for /metrics, read from Redis at scrape time.

Workers run in their own processes (any number, on any host), so the edge cannot
read their counters from memory: each worker adds its counts to one Redis hash
about once a second, and its lag to another; the stream's pending count and the
timers' backlog are read from the stream and the timer shards themselves.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from edge.runtime.config import Settings
from edge.store import destinations
from edge.store.deliveries import DEAD_LETTERS, retry_timers
from edge.store.streams import OUTBOX
from edge.store.timers import TimerStore

STATS_KEY = "kairos:worker:stats"   # hash: counter -> total, over every worker
LAG_KEY = "kairos:worker:lag"       # hash: worker -> "stream lag ms,timer lag ms,time ms"
DELIVERY_STATS_KEY = "kairos:delivery:stats"  # hash: "<channel>:<outcome>" -> count

COUNTERS = {
    "events": "events the automation workers handled",
    "timers": "timers fired",
    "sends": "journey sends committed to the outbox",
    "deferred": "journey sends held back by quiet hours or a cap (deferred, not dropped)",
    "commits": "journey state changes committed",
    "conflicts": "commits lost to a concurrent change of the same person (computed again)",
    "duplicates": "stimuli found applied already (redelivered events or timers)",
    "skipped": "stream entries that could not be read",
}
LIVE_S = 10  # a worker that reported within this many seconds counts as running


async def render(client: aioredis.Redis, settings: Settings, now_ms: int) -> str:
    stats = {k.decode(): int(v) for k, v in (await client.hgetall(STATS_KEY)).items()}
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    for key, help_text in COUNTERS.items():
        metric(f"kairos_automation_{key}_total", "counter", help_text, [("", stats.get(key, 0))])

    wall_ms = time.time_ns() // 1_000_000
    workers = []
    for name, value in (await client.hgetall(LAG_KEY)).items():
        stream_lag, timer_lag, reported = (int(part) for part in value.decode().split(","))
        if wall_ms - reported <= LIVE_S * 1000 or now_ms - reported <= LIVE_S * 1000:
            workers.append((name.decode(), stream_lag, timer_lag))
    metric("kairos_automation_workers", "gauge", "automation workers that reported lately",
           [("", len(workers))])
    metric("kairos_automation_stream_lag_seconds", "gauge",
           "age of the newest event a worker took from the stream when it took it",
           [(f'{{worker="{name}"}}', lag / 1000) for name, lag, _ in workers])
    metric("kairos_automation_timer_lag_seconds", "gauge",
           "how late the latest timers a worker fired were",
           [(f'{{worker="{name}"}}', lag / 1000) for name, _, lag in workers])

    pending = 0
    try:
        summary = await client.xpending(settings.stream.key, settings.automation.group)
        pending = int(summary["pending"]) if summary else 0
    except ResponseError:  # no group yet: no worker ever ran
        pass
    metric("kairos_automation_stream_pending", "gauge",
           "events delivered to a worker and not yet acknowledged", [("", pending)])

    counts = await TimerStore(client, shards=settings.automation.timer_shards).counts(now_ms)
    metric("kairos_automation_timers_pending", "gauge", "timers scheduled", [("", counts.pending)])
    metric("kairos_automation_timers_leased", "gauge", "timers being fired now",
           [("", counts.leased)])
    metric("kairos_automation_timers_overdue", "gauge", "timers due and not fired yet",
           [("", counts.overdue)])
    oldest = counts.oldest_overdue_ms
    metric("kairos_automation_timers_overdue_seconds", "gauge",
           "how long the oldest overdue timer has been due",
           [("", (now_ms - oldest) / 1000 if oldest is not None else 0)])

    outcomes = []
    for field, value in sorted((await client.hgetall(DELIVERY_STATS_KEY)).items()):
        channel, _, outcome = field.decode().partition(":")
        outcomes.append((f'{{channel="{channel}",outcome="{outcome}"}}', int(value)))
    metric("kairos_delivery_messages_total", "counter",
           "messages by how their attempt ended: sent, retried, deferred, failed, bounced, dead",
           outcomes)
    outbox_pending = 0
    try:
        summary = await client.xpending(OUTBOX, settings.delivery.group)
        outbox_pending = int(summary["pending"]) if summary else 0
    except ResponseError:  # no delivery worker ever ran
        pass
    metric("kairos_delivery_outbox_pending", "gauge",
           "outbox messages taken by a delivery worker and not yet acknowledged",
           [("", outbox_pending)])
    retries = await retry_timers(client).counts(now_ms)
    metric("kairos_delivery_retries_pending", "gauge", "messages waiting for a retry",
           [("", retries.pending)])
    metric("kairos_delivery_dead_letters", "gauge", "messages in the dead-letter stream",
           [("", await client.xlen(DEAD_LETTERS))])

    if settings.destinations:
        counted = {k.decode(): int(v) for k, v in
                   (await client.hgetall(destinations.STATS)).items()}
        lags, pendings = [], []
        for name in settings.destinations:
            found = await destinations.group_lag(client, settings.stream.key,
                                                 destinations.group_of(name), wall_ms)
            if found is not None:
                pendings.append((f'{{destination="{name}"}}', found[0]))
                lags.append((f'{{destination="{name}"}}', found[1]))
        metric("kairos_destination_lag_seconds", "gauge",
               "age of the oldest event a destination has not been sent yet", lags)
        metric("kairos_destination_pending", "gauge",
               "events taken for a destination and not yet acknowledged by it", pendings)
        for what, help_text in (("forwarded", "events a destination acknowledged"),
                                ("dead", "events dead-lettered for a destination"),
                                ("erasures", "erasures a destination acknowledged")):
            metric(f"kairos_destination_{what}_total", "counter", help_text,
                   [(f'{{destination="{name}"}}', counted.get(f"{name}:{what}", 0))
                    for name in settings.destinations])
    return "\n".join(lines) + "\n"
