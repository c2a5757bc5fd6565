"""Erasing a person from the automation half: their timers, calendar entries and views.

`ProfileStore.erase` deletes the person's own keys (journey runs included); what
refers to them from shared keys (a timer shard, a zone's calendar index, a product's
viewers) is removed here, before those keys go, while the runs still name the timers.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from edge.runtime.config import Settings
from edge.store import keys as K
from edge.store.journeys import JourneyStore, timer_member
from edge.store.timers import TimerStore
from edge.worker.calendar_index import CalendarIndex
from edge.worker.runner import INACTIVE_KEY
from rules.journeys import JourneyBook, run_field


async def forget(client: aioredis.Redis, settings: Settings, book: JourneyBook,
                 profile_ids: set[str]) -> int:
    """Remove every shared reference to these profiles; how many were removed."""
    journeys = JourneyStore(client)
    timers = TimerStore(client, shards=settings.automation.timer_shards)
    calendar = CalendarIndex(client)
    removed = 0
    for profile_id in profile_ids:
        stored = await journeys.read(profile_id)
        members = [timer_member(profile_id, name) for name in stored.state.runs]
        members += [timer_member(profile_id, run_field(journey_id, INACTIVE_KEY))
                    for journey_id in book.current]
        for member in members:
            await timers.cancel(profile_id, member)
        removed += len(stored.state.runs)
        removed += await calendar.forget(profile_id)
        for product in await client.lrange(K.profile_key(profile_id) + ":rp", 0, -1):
            removed += await client.zrem(journeys.viewers_key(product.decode()), profile_id)
    return removed
