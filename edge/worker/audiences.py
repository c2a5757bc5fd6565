"""Ad-audience exports: a segment's consented members, hashed, sent as what changed.

`export_audience` compares the segment's members now (with the consent the
audience asks for, and an email or a phone to match on) with what the last export
sent, and sends the people who joined (or whose identifiers changed) as adds and
the people who left (or withdrew consent, or were erased) as removes: to a folder
as the platform's request bodies, or to the platform's API. `kairos export
audience` runs it once; the worker's audience loop runs each configured audience
every `every_s` seconds, one worker at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import LockError

from edge.connectors.http import HttpClient, Unreachable
from edge.connectors.audiences import Destination, Member, Request, member_of, requests_for
from edge.ingest import consent
from edge.pipeline.delivery import decode_state
from edge.runtime.config import AudienceSettings, Settings
from edge.store import audiences as store

log = logging.getLogger("kairos.audiences")

BASE_URLS = {"google": "https://datamanager.googleapis.com", "meta": "https://graph.facebook.com"}
RETRIES = 4  # a 429 or 5xx answer is asked again this many times, backing off


class ExportFailed(Exception):
    """The platform refused a request: what was sent before it is recorded."""


@dataclass
class ExportReport:
    name: str
    members: int = 0  # consented members with an identifier, now
    added: int = 0
    removed: int = 0
    requests: int = 0
    written: list[str] = field(default_factory=list)  # files, for `to: file`

    def as_dict(self) -> dict[str, Any]:
        return {"audience": self.name, "members": self.members, "added": self.added,
                "removed": self.removed, "requests": self.requests, "files": self.written}


Send = Callable[[Request], Awaitable[str | None]]  # a request out; the file it wrote, if any


async def export_audience(client: aioredis.Redis, settings: Settings, name: str,
                          audience: AudienceSettings, send: Send, *, full: bool = False,
                          dry_run: bool = False, batch: int | None = None) -> ExportReport:
    """Send what changed since the last export of `name` (everything, with `full`);
    `dry_run` sends and records nothing, only counts."""
    report = ExportReport(name)
    site = settings.sites.get(audience.site) or next(iter(settings.sites.values()), None)
    defaults = site.consent_defaults if site is not None else {}
    current: dict[str, Member] = {}
    async for found in store.segment_members(client, audience.segment):
        allowed = consent.resolve(decode_state(found.delivery_state)["consent"], defaults)
        if not all(allowed.get(needed) for needed in audience.consent):
            continue
        member = member_of(found.profile_id, found.traits, audience.format,
                           audience.default_region)
        if member is not None:
            current[member.profile_id] = member
    report.members = len(current)
    previous = {profile_id: Member.from_stored(profile_id, text)
                for profile_id, text in (await store.exported(client, name)).items()}
    adds, removes = changes(previous, current, full)
    destination = Destination(audience.audience_id, audience.account_type, audience.account_id)
    limit = {"batch": batch} if batch else {}
    for operation, members in (("remove", removes), ("add", adds)):
        for request in requests_for(audience.format, operation, members, destination,
                                    audience.api_version, **limit):
            report.requests += 1
            if operation == "add":
                report.added += len(request.profile_ids)
            else:
                report.removed += len(request.profile_ids)
            if dry_run:
                continue
            written = await send(request)
            if written:
                report.written.append(written)
            await _record(client, name, request, current)
    return report


def changes(previous: dict[str, Member], current: dict[str, Member], full: bool = False
            ) -> tuple[list[Member], list[Member]]:
    """(adds, removes): who joined or changed, and the identifiers no longer anyone's."""
    adds = [member for profile_id, member in current.items()
            if full or previous.get(profile_id) != member]
    removes = []
    for profile_id, before in previous.items():
        now = current.get(profile_id)
        gone = before.hashes if now is None else tuple(
            pair for pair in before.hashes if pair not in now.hashes)
        if gone:
            removes.append(Member(profile_id, gone))
    return adds, removes


async def _record(client: aioredis.Redis, name: str, request: Request,
                  current: dict[str, Member]) -> None:
    """What the answered request changed, into the export's state."""
    ids = request.profile_ids
    if request.operation == "add":
        await store.record_added(client, name, {pid: current[pid].stored() for pid in ids})
        return
    # a person who only lost an identifier stays exported with those they keep (the add
    # that follows records them again)
    await store.record_removed(client, name, [pid for pid in ids if pid not in current])


# -- where the requests go ---------------------------------------------------------------------

def file_sender(folder: Path, name: str, now_ms: int) -> Send:
    """Each request's body into `folder`, named by the audience, the export's time, its
    operation and its number: what a person uploads, or another tool sends."""
    counter = iter(range(1, 1_000_000))

    async def send(request: Request) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}-{now_ms}-{next(counter):04d}-{request.operation}.json"
        partial = path.with_suffix(".partial")
        partial.write_bytes(orjson.dumps({"method": request.method, "path": request.path,
                                          "body": request.body}, option=orjson.OPT_INDENT_2))
        partial.replace(path)  # a reader never sees half a file
        return str(path)

    return send


def api_sender(http: HttpClient, audience: AudienceSettings, token: str) -> Send:
    """Each request to the platform's API; a 429 or 5xx is asked again with backoff (its
    Retry-After when it gives one), any other refusal stops the export."""
    base = (audience.base_url or BASE_URLS[audience.format]).rstrip("/")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def send(request: Request) -> None:
        content = orjson.dumps(request.body)
        for attempt in range(RETRIES + 1):
            try:
                answer = await http.request(request.method, base + request.path,
                                            body=content, headers=headers,
                                            timeout_ms=audience.timeout_ms)
            except Unreachable as exc:
                if attempt == RETRIES:
                    raise ExportFailed(f"{request.method} {request.path}: {exc.reason}") from exc
                await asyncio.sleep(2 ** attempt)
                continue
            if answer.status < 300:
                return
            if answer.status != 429 and answer.status < 500 or attempt == RETRIES:
                raise ExportFailed(f"{request.method} {request.path}: {answer.status} "
                                   f"{answer.text[:300]}")
            await asyncio.sleep(_retry_after(answer.headers.get("retry-after"), 2 ** attempt))

    return send


def _retry_after(value: str | None, fallback: float) -> float:
    try:
        return min(max(float(value), 0.0), 300.0) if value else fallback
    except ValueError:
        return fallback


def sender_for(settings: Settings, name: str, audience: AudienceSettings, now_ms: int,
               http: HttpClient | None, environ: dict[str, str]) -> Send:
    if audience.to == "api":
        assert http is not None
        return api_sender(http, audience, environ.get(audience.token_env, ""))
    folder = Path(audience.folder)
    if not folder.is_absolute():
        folder = Path(settings.config_dir) / folder
    return file_sender(folder, name, now_ms)


# -- the worker's schedule ---------------------------------------------------------------------

async def export_due(client: aioredis.Redis, settings: Settings, now_ms: int,
                     http: HttpClient, environ: dict[str, str]) -> list[ExportReport]:
    """Export each scheduled audience whose time has come, unless another worker is at it."""
    reports = []
    last = await store.last_exports(client)
    for name, audience in settings.audiences.items():
        if audience.every_s <= 0 or now_ms < last.get(name, 0) + audience.every_s * 1000:
            continue
        lock = store.export_lock(client, name, lease_s=max(60.0, audience.timeout_ms / 100))
        if not await lock.acquire():
            continue
        try:
            send = sender_for(settings, name, audience, now_ms, http, environ)
            report = await export_audience(client, settings, name, audience, send)
            await store.mark_exported(client, name, now_ms)
            log.info("audience %s: %d members, %d added, %d removed", name, report.members,
                     report.added, report.removed)
            reports.append(report)
        except ExportFailed as exc:  # tried again at the next turn; what was sent is kept
            log.warning("audience %s: %s", name, exc)
        finally:
            with contextlib.suppress(LockError):  # expired meanwhile: nothing to release
                await lock.release()
    return reports
