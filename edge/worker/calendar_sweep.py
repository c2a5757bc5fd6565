"""Calendar entries: people indexed under their dates, enrolled by a daily sweep per zone.

A date-entry journey (birthday, registration anniversary, name day, a date trait
plus or minus an offset) never holds a timer per person a year ahead. When a
person's traits change (an identify), the worker indexes them under the date keys
the journey finds in their profile, in their time zone (edge/worker/calendar_index.py).
Once a zone's local date begins, the sweep reads that day's people and enrols each
with the date as the run key, so a person enters once per date however often the
sweep runs; the journey's first step usually waits until a local hour.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rules.journeys import JourneyBook, calendar_keys, celebrated_on

if TYPE_CHECKING:
    from edge.worker.service import Worker


# Traits a date entry reads, besides a date trait's own: the dates, the first name and
# what picks its calendar, and the zone the day begins in.
DATE_TRAITS = frozenset({"birthday", "created_at", "createdAt", "first_name", "firstName",
                         "country", "locale", "timezone"})


def dates_may_change(book: JourneyBook, event: Mapping[str, Any]) -> bool:
    """Whether an event sets a trait some date-entry journey reads: an identify's traits,
    or `context.traits` of any call."""
    if not book.dated:
        return False
    context = event.get("context")
    given = [event.get("traits"), context.get("traits") if isinstance(context, dict) else None]
    names = {name for traits in given if isinstance(traits, dict) for name in traits}
    if not names:
        return False
    wanted = DATE_TRAITS | {j.entry.trait for j in book.dated if j.entry.trait}
    return not names.isdisjoint(wanted)


async def index_person(worker: "Worker", profile_id: str, site: str) -> None:
    """Index (or re-index) a person under every date-entry journey's dates."""
    runner = worker.runner
    book = worker.journeys.book
    if not book.dated:
        return
    facts = await runner.facts(profile_id, site, worker.clock.now_ms())
    if facts is None:
        return
    for journey in book.dated:
        keys = calendar_keys(journey, facts.profile, worker.name_days)
        await worker.calendar.index(profile_id, journey.id, facts.zone, keys)


async def sweep_due(worker: "Worker") -> int:
    """Enrol the people of every local date that has begun since the last sweep of their
    zone; the sweep is marked done only after every enrolment was committed."""
    book = worker.journeys.book
    if not book.dated:
        return 0
    enrolled = 0
    now = worker.clock.now_ms()
    for zone, day in await worker.calendar.due_sweeps(now):
        for journey in book.dated:
            if journey.id in worker.runner.paused():
                continue
            async for batch in worker.calendar.members(zone, journey.id, day):
                for profile_id in batch:
                    facts = await worker.runner.facts(profile_id, "", now)
                    if facts is None:
                        continue
                    # the index may hold a date the person no longer has (a crash mid-update)
                    if not celebrated_on(journey, facts.profile, worker.name_days, day):
                        continue
                    status = await worker.runner.enroll(profile_id, journey.id, key=day,
                                                        idempotency=day)
                    enrolled += status == "ok"
        await worker.runner.flush()  # the runs' timers before the day counts as swept
        await worker.calendar.mark_swept(zone, day)
    return enrolled
