"""`kairos import catalog FILE`: a JSON, JSON Lines or CSV feed (optionally gzipped) into Redis.

Rows are validated one by one and written in batches through CatalogStore,
so a feed of a million products streams through in bounded memory (except a
plain JSON document, which must be parsed whole). A bad row is reported and
skipped; a file that cannot be read at all stops the import. Rejections name
the row as a person finds it: "row N" (the Nth product of a JSON document) or
"line N" (of a CSV or JSON Lines file, the header being line 1).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

import orjson

from edge.catalog.products import CSV_ATTRIBUTE_PREFIX, Product, check_csv_columns, csv_row_to_raw
from edge.catalog.products import validate_product
from edge.store.catalog import CatalogStore
from edge.ingest.wire import InputError

FORMATS = (".json", ".jsonl", ".ndjson", ".csv")
SHOWN_REJECTIONS = 20


class FeedError(Exception):
    """The file cannot be read as a feed; nothing after this point is imported."""


@dataclass
class Summary:
    imported: int = 0
    rejected: int = 0
    rejections: list[str] = field(default_factory=list)  # the first SHOWN_REJECTIONS, as text
    price_drops: int = 0
    back_in_stock: int = 0
    error: str = ""  # the file stopped being readable here; what came before was imported

    def reject(self, where: str, field_name: str, reason: str) -> None:
        self.rejected += 1
        if len(self.rejections) < SHOWN_REJECTIONS:
            self.rejections.append(f"{where}: {field_name}: {reason}")


def feed_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if not suffixes or suffixes[-1] not in FORMATS:
        raise FeedError(f"{path}: expected a {', '.join(FORMATS)} file (optionally .gz)")
    return suffixes[-1]


class Feed:
    """Rows of one feed file, with how far through the file the reading is (0..1)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.format = feed_format(path)
        try:
            self.size = max(1, path.stat().st_size)
            self._raw: IO[bytes] = open(path, "rb")
        except OSError as exc:
            raise FeedError(f"{path}: {exc.strerror or exc}") from None
        self._binary: IO[bytes] = (gzip.GzipFile(fileobj=self._raw)
                                   if path.suffix.lower() == ".gz" else self._raw)
        self._items: list[Any] | None = None
        self._done = 0
        try:
            if self.format == ".json":
                self._items = self._load_json()
            elif self.format == ".csv":
                self._open_csv()
        except FeedError:
            self.close()
            raise

    def _open_csv(self) -> None:
        self._text = io.TextIOWrapper(self._binary, encoding="utf-8-sig", newline="")
        self._reader = csv.DictReader(self._text)
        try:
            check_csv_columns(self._reader.fieldnames)
        except InputError as exc:
            raise FeedError(f"{self.path}: {exc.field}: {exc.reason}") from None
        except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
            raise FeedError(f"{self.path}: {exc}") from None

    def close(self) -> None:
        self._raw.close()

    @property
    def fraction(self) -> float:
        if self._items is not None:
            return self._done / max(1, len(self._items))
        return min(1.0, self._raw.tell() / self.size)

    def rows(self) -> Iterator[tuple[str, Any]]:
        """(where, raw row) per product; raw is an InputError for a row that is not even a row."""
        try:
            if self.format == ".json":
                yield from self._json_rows()
            elif self.format == ".csv":
                yield from self._csv_rows()
            else:
                yield from self._jsonl_rows()
        except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
            raise FeedError(f"{self.path}: {exc}") from None

    def _load_json(self) -> list[Any]:
        try:
            document = orjson.loads(self._binary.read())
        except orjson.JSONDecodeError as exc:
            raise FeedError(f"{self.path}: not valid JSON: {exc}") from None
        except (OSError, EOFError) as exc:
            raise FeedError(f"{self.path}: {exc}") from None
        if isinstance(document, dict) and isinstance(document.get("products"), list):
            return document["products"]
        if isinstance(document, list):
            return document
        raise FeedError(f'{self.path}: expected a list of products or {{"products": [...]}}')

    def _json_rows(self) -> Iterator[tuple[str, Any]]:
        assert self._items is not None
        for index, item in enumerate(self._items):
            self._done = index + 1
            yield f"row {index + 1}", item

    def _jsonl_rows(self) -> Iterator[tuple[str, Any]]:
        for number, line in enumerate(self._binary, start=1):
            if not line.strip():
                continue
            try:
                yield f"line {number}", orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield f"line {number}", InputError("line", f"not valid JSON: {exc}")

    def _csv_rows(self) -> Iterator[tuple[str, Any]]:
        for row in self._reader:
            where = f"line {self._reader.line_num}"
            try:
                yield where, csv_row_to_raw(row)
            except InputError as exc:
                yield where, exc


class ProgressBar:
    """A one-line bar on a terminal; on a log file, a line every tenth of the way."""

    def __init__(self, stream: IO[str], label: str, width: int = 30) -> None:
        self.stream = stream
        self.label = label
        self.width = width
        self.interactive = stream.isatty()
        self._shown = -1
        self._last_draw = 0.0

    def update(self, fraction: float, summary: Summary, final: bool = False) -> None:
        percent = int(fraction * 100)
        if self.interactive:
            now = time.monotonic()
            if not final and (percent == self._shown or now - self._last_draw < 0.1):
                return
            filled = int(fraction * self.width)
            bar = "█" * filled + "░" * (self.width - filled)
            self.stream.write(f"\r{self.label} {bar} {percent:3d}%  {summary.imported:,} imported, "
                              f"{summary.rejected:,} rejected")
            if final:
                self.stream.write("\n")
            self._last_draw = now
        elif percent // 10 > self._shown // 10 or (final and self._shown < 100):
            self.stream.write(f"{self.label}: {percent}% ({summary.imported:,} imported, "
                              f"{summary.rejected:,} rejected)\n")
        else:
            return
        self._shown = percent
        self.stream.flush()


async def import_feed(feed: Feed, store: CatalogStore, batch_size: int = 500,
                      progress: ProgressBar | None = None) -> Summary:
    summary = Summary()
    batch: list[Product] = []

    async def flush() -> None:
        result = await store.put(batch)
        summary.imported += result.written
        summary.price_drops += len(result.price_drops)
        summary.back_in_stock += len(result.back_in_stock)
        batch.clear()
        if progress is not None:
            progress.update(feed.fraction, summary)

    try:
        for where, raw in feed.rows():
            try:
                if isinstance(raw, InputError):
                    raise raw
                batch.append(validate_product(raw))
            except InputError as exc:
                summary.reject(where, _column(exc.field, feed.format), exc.reason)
                continue
            if len(batch) >= batch_size:
                await flush()
    except FeedError as exc:
        summary.error = str(exc)
    if batch:
        await flush()
    if progress is not None:
        progress.update(1.0, summary, final=True)
    return summary


def _column(field_name: str, feed_format: str) -> str:
    """Name an attribute the way the CSV's author wrote it: attr.<name>."""
    if feed_format == ".csv" and field_name.startswith("attributes."):
        return CSV_ATTRIBUTE_PREFIX + field_name[len("attributes."):]
    return field_name


def print_summary(summary: Summary, path: Path, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    events = []
    if summary.price_drops:
        events.append(f"{summary.price_drops} price drop(s)")
    if summary.back_in_stock:
        events.append(f"{summary.back_in_stock} back in stock")
    tail = f" ({', '.join(events)} announced)" if events else ""
    print(f"imported {summary.imported} product(s) from {os.fspath(path)}{tail}", file=out)
    if summary.rejected:
        print(f"rejected {summary.rejected} row(s):", file=out)
        for line in summary.rejections:
            print(f"  {line}", file=out)
        if summary.rejected > len(summary.rejections):
            print(f"  … and {summary.rejected - len(summary.rejections)} more", file=out)
    if summary.error:
        print(f"stopped: {summary.error}", file=out)
