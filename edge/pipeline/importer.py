"""`kairos import events FILE`: another system's history through the edge's own pipeline.

A CRM's traits, a loyalty system's points, a shop till's purchases or a ticket desk's
cases arrive as a file of events (edge/ingest/event_file.py reads CSV and JSON Lines).
Each row becomes the body the HTTP API would have received and takes ingest's own
path: the same decoder (`wire.event_decoder`, behind the same size and nesting guards
as a request body) and the same `normalize`, as a server with a secret key of the
chosen site; then the rows that passed go through `Pipeline.handle_each`, which is what
`/v1/batch` runs, so profiles, joined identities, traits, carts and aggregates end up
exactly as if the events had been posted. A row that fails is reported with its line,
the field and the reason, and the rest go on.

History, not the present:

- Time is the event's own `timestamp` (or `originalTimestamp`). `sentAt` is dropped:
  it measures a device's clock against the moment of arrival, and against an arrival
  months later it would move the event to today. A time without a zone offset is
  refused rather than read in whatever zone the importing machine is in; a row
  without any time happens now (a CRM's current traits, say).
- Windowed aggregates bucket by that time in the event script (`store/event.lua`: an
  event counts at `now` iff its bucket is within the window ending at `now`), so an
  imported order of last year adds nothing to "spend in the last 30 days" today, and
  one of yesterday does; first and last seen, and visits, follow the event times too.
- Imported events are marked (`normalize(..., imported=True)`, `streams.IMPORTED` on
  the stream entry). The pipeline delivers nothing for them: no slot, message, push
  or outbox message, only the rules that set traits or tags. The automation worker
  runs no journey for them (no entry, exit, goal or wait; edge/worker/runner.py).
  They stay on the stream for the other readers (destinations, archives).
- Only the importer marks events: a request cannot, because what the automation does
  with a person's events is the marketer's choice (an unsubscribe must end a journey),
  not the sender's.

Re-importing is idempotent as retries are: the event script drops a messageId seen
on that profile within `profiles.dedupe_window_hours`, among its newest
`profiles.dedupe_max_ids`. A row without a messageId gets one made from its content
(`import-` and a digest of the decoded event), so importing the same file twice
counts it once, and two rows alike in every field count once.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import msgspec
import orjson
import redis.asyncio as aioredis

from edge.ingest.auth import Caller
from edge.ingest.event_file import EventFile, EventFileError, Row
from edge.ingest.normalize import Incoming, normalize
from edge.ingest.wire import Event, InputError, check_nesting, encoder, event_decoder
from edge.ingest.wire import field_from_validation_error
from edge.pipeline.handler import Pipeline, RequestInfo
from edge.pipeline.rulebook import Rulebook
from edge.runtime.config import Limits, Settings
from edge.runtime.metrics import Metrics
from edge.store.catalog import CatalogStore
from edge.store.profiles import ProfileStore

SHOWN_REJECTIONS = 20
MESSAGE_ID_PREFIX = "import-"
# what the importer may do: the scope ingest requires of a secret key
IMPORT_SCOPES = frozenset({"ingest"})


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    field: str
    reason: str
    source: Any  # the row as written

    def text(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass
class Report:
    read: int = 0  # rows (lines that hold something)
    imported: int = 0
    duplicates: int = 0  # rows whose messageId the profile has seen already
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)  # the first SHOWN_REJECTIONS
    error: str = ""  # the file stopped being readable here; the rows before it were imported

    def reject(self, rejection: Rejection) -> None:
        self.rejected += 1
        if len(self.rejections) < SHOWN_REJECTIONS:
            self.rejections.append(rejection)


Progress = Callable[[int, Report], None]  # (bytes of the file read, the report so far)


def importer_caller(settings: Settings, site_id: str) -> Caller:
    """The importer speaks for the site as its own server does, with a secret key: its
    identities are trusted and contact details join profiles."""
    return Caller("secret", site_id, settings.sites[site_id], IMPORT_SCOPES)


def decode_row(body: bytes, limits: Limits) -> Event:
    """A row's event by ingest's own checks of a request body: size, nesting, schema."""
    if len(body) > limits.max_body_bytes:
        raise InputError("row", f"larger than {limits.max_body_bytes} bytes "
                                "(limits.max_body_bytes)")
    check_nesting(body, limits.max_depth)
    try:
        return event_decoder.decode(body)
    except msgspec.ValidationError as exc:
        where, reason = field_from_validation_error(str(exc))
        raise InputError("row" if where == "body" else where, reason) from None
    except msgspec.DecodeError as exc:
        raise InputError("row", f"not valid JSON: {exc}") from None


def as_history(event: Event) -> Event:
    """The event as a record of the past: its own time, and an id to recognise it by."""
    for name in ("timestamp", "originalTimestamp"):
        moment: datetime | None = getattr(event, name)
        if moment is not None and moment.tzinfo is None:
            raise InputError(name, "no time zone: write it with Z or an offset, "
                                   "as in 2025-03-01T09:30:00+01:00")
    event.sentAt = None
    if event.messageId is None:
        digest = hashlib.sha256(encoder.encode(event)).hexdigest()[:32]
        event.messageId = MESSAGE_ID_PREFIX + digest
    return event


def accept(row: Row, caller: Caller, limits: Limits, received_ms: int) -> Incoming:
    """One row, checked as ingest checks an event, or the InputError that names why not."""
    if row.error is not None:
        raise row.error
    assert row.body is not None
    event = as_history(decode_row(row.body, limits))
    return normalize(event, caller, limits, received_ms, imported=True)


async def import_events(source: EventFile, pipeline: Pipeline, caller: Caller, limits: Limits,
                        batch_size: int = 500, progress: Progress | None = None,
                        rejects: IO[bytes] | None = None) -> Report:
    """Every row of `source` through the pipeline, `batch_size` rows at a time, each
    person's in file order. `rejects`: where every rejected row goes, one JSON object
    a line (line, field, reason, row)."""
    report = Report()
    batch: list[Incoming] = []
    request = RequestInfo()

    async def flush() -> None:
        duplicates = await pipeline.handle_each(batch, caller, request)
        report.imported += len(batch) - duplicates
        report.duplicates += duplicates
        batch.clear()
        if progress is not None:
            progress(source.position, report)

    received_ms = pipeline.clock.now_ms()
    try:
        for row in source.rows():
            report.read += 1
            try:
                batch.append(accept(row, caller, limits, received_ms))
            except InputError as exc:
                rejection = Rejection(row.line, exc.field, exc.reason, row.source)
                report.reject(rejection)
                if rejects is not None:
                    rejects.write(orjson.dumps({"line": row.line, "field": exc.field,
                                                "reason": exc.reason, "row": row.source}) + b"\n")
                continue
            if len(batch) >= batch_size:
                await flush()
                received_ms = pipeline.clock.now_ms()
    except EventFileError as exc:
        report.error = str(exc)
    if batch:
        await flush()
    if progress is not None:
        progress(source.position, report)
    return report


@contextlib.asynccontextmanager
async def pipeline_on(settings: Settings, redis_url: str, clock: Any) -> AsyncIterator[Pipeline]:
    """The edge's pipeline against the Redis at `redis_url`, as `kairos serve` builds it.
    Raises rules.RulesInvalid for rules that do not load, RedisError or OSError for a
    Redis that does not answer."""
    rulebook = Rulebook(settings.rules_dir, settings.scenarios_dir)
    client = aioredis.from_url(redis_url, decode_responses=False)
    store = ProfileStore(client, settings, redis_url)
    try:
        await store.batcher.load_scripts()
        await store.register_aggregates(rulebook.active.layout)
        yield Pipeline(store, rulebook, Metrics(), clock, CatalogStore(client, settings, clock))
    finally:
        store.batcher.close()
        await client.aclose()


def print_report(report: Report, path: str, out: IO[str], rejects_path: str | None = None) -> None:
    already = f", {report.duplicates} already imported" if report.duplicates else ""
    print(f"read {report.read} row(s) from {path}: imported {report.imported}{already}, "
          f"rejected {report.rejected}", file=out)
    if report.rejected:
        print("rejected rows:", file=out)
        for rejection in report.rejections:
            print(f"  {rejection.text()}", file=out)
        more = report.rejected - len(report.rejections)
        if more:
            where = f" (every one in {rejects_path})" if rejects_path else " (--rejects FILE lists them all)"
            print(f"  … and {more} more{where}", file=out)
        elif rejects_path:
            print(f"  (also in {rejects_path})", file=out)
    if report.error:
        print(f"stopped: {report.error}", file=out)
