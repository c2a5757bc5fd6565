"""Reading a file of events for `kairos import events`: CSV or JSON Lines, optionally gzipped.

The reader only turns each row into the JSON body the HTTP API would have received
for it; checking that body is left to the importer, which runs it through the
same decoding and `normalize` as ingest. So a row of either format is one event in
Segment's layout, and a row that is not even a row (bad UTF-8, an unreadable CSV
record) comes back as an `InputError` for that row, never as a stop of the file.

JSON Lines: one Segment event per line (`type`, `event`, `userId`/`anonymousId`,
`properties`, `traits`, `context`, `timestamp`, `messageId`, ...); blank lines are
skipped.

CSV: a header row, then one event per row. The columns are the event's top-level
fields (`TOP_LEVEL_COLUMNS`), whose cells are taken as text, and dotted columns
under `properties.`, `traits.` and `context.` whose names build nested objects
(`context.device.id` is `{"context": {"device": {"id": ...}}}`). In those:

- an empty cell is absent (it sets nothing, so one file can hold rows of several
  kinds of event);
- a cell written as a plain decimal number is that number: an optional minus,
  digits without a leading zero (0 itself is fine), optionally a point and more
  digits (`12`, `-3`, `0.5`, `19.99`). Anything else stays text as written:
  `007` and `01234` (codes whose zeros matter), `+1`, `1e3`, `1,5`, ` 12`,
  `true`. A whole number beyond 64 bits stays text, keeping every digit.

Rows are named as a person finds them: "line N" of the file, the header being
line 1 (for a CSV record spanning lines, the line it ends on).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

import orjson

from edge.ingest.wire import LARGEST_INT, SMALLEST_INT, InputError

FORMATS = ("csv", "jsonl")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# Segment's top-level fields a CSV may carry, as text
TOP_LEVEL_COLUMNS = ("type", "event", "name", "category", "userId", "anonymousId",
                     "previousId", "groupId", "timestamp", "messageId")
NESTED_PREFIXES = ("properties", "traits", "context")
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+")


class EventFileError(Exception):
    """The file cannot be read as events; nothing after this point is imported."""


@dataclass(frozen=True, slots=True)
class Row:
    """One row of the file: the event's JSON body, or why it is not one."""

    line: int
    body: bytes | None  # None when `error` says why there is no body
    error: InputError | None
    source: Any  # the row as written, for the rejects file: a line's text, a CSV row's cells


def file_format(path: Path, given: str | None = None) -> str:
    """`csv` or `jsonl`: the one given, else the file's extension (before any `.gz`)."""
    if given is not None:
        if given not in FORMATS:
            raise EventFileError(f"--format: expected one of {', '.join(FORMATS)}")
        return given
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    found = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if found is None:
        raise EventFileError(f"{path}: expected a .csv, .jsonl or .ndjson file (optionally .gz), "
                             f"or say which with --format csv|jsonl")
    return found


def cell_value(text: str) -> str | int | float:
    """A nested column's cell: a number where it is written as a plain decimal number."""
    if _INTEGER.fullmatch(text):
        number = int(text)
        return number if SMALLEST_INT <= number <= LARGEST_INT else text
    if _DECIMAL.fullmatch(text):
        return float(text)
    return text


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    path: tuple[str, ...]  # ("userId",) or ("properties", "address", "city")

    @property
    def nested(self) -> bool:
        return len(self.path) > 1


def csv_columns(header: list[str] | None) -> list[Column]:
    """The header's columns, checked: every name known, no name twice, and no column
    both a value and an object (`properties.size` beside `properties.size.eu`)."""
    if not header:
        raise InputError("header", "empty file: expected a header row naming the columns")
    columns: list[Column] = []
    seen: set[tuple[str, ...]] = set()
    for name in header:
        path = tuple(name.split("."))
        if len(path) == 1:
            if name not in TOP_LEVEL_COLUMNS:
                hint = (f"; a nested field needs a name below it ({name}.<name>)"
                        if name in NESTED_PREFIXES else "")
                raise InputError(name, "unknown column: expected one of "
                                 f"{', '.join(TOP_LEVEL_COLUMNS)}, or a column under "
                                 f"{', '.join(p + '.' for p in NESTED_PREFIXES)}{hint}")
        elif path[0] not in NESTED_PREFIXES:
            raise InputError(name, "unknown column: dotted names go under "
                             + ", ".join(p + "." for p in NESTED_PREFIXES))
        elif not all(path):
            raise InputError(name, "a dotted name with an empty part")
        if path in seen:
            raise InputError(name, "the column appears twice")
        seen.add(path)
        columns.append(Column(name, path))
    for column in columns:
        for depth in range(2, len(column.path)):
            if column.path[:depth] in seen:
                raise InputError(column.name, f"{'.'.join(column.path[:depth])} is a column "
                                 "too: a field is either a value or an object")
    return columns


def csv_row_to_event(columns: list[Column], cells: list[str]) -> dict[str, Any]:
    """One CSV row as the event object it stands for (see the module's rules)."""
    event: dict[str, Any] = {}
    for column, text in zip(columns, cells):
        if text == "":
            continue
        if not column.nested:
            event[column.name] = text
            continue
        parent = event
        for part in column.path[:-1]:
            parent = parent.setdefault(part, {})
        parent[column.path[-1]] = cell_value(text)
    return event


class EventFile:
    """The rows of one file of events, and how far through the file the reading is."""

    def __init__(self, path: Path, given_format: str | None = None) -> None:
        self.path = path
        self.format = file_format(path, given_format)
        try:
            self.size = path.stat().st_size
            self._raw: IO[bytes] = open(path, "rb")
        except OSError as exc:
            raise EventFileError(f"{path}: {exc.strerror or exc}") from None
        self._binary: IO[bytes] = (gzip.GzipFile(fileobj=self._raw)
                                   if path.suffix.lower() == ".gz" else self._raw)
        self._columns: list[Column] = []
        if self.format == "csv":
            try:
                self._open_csv()
            except EventFileError:
                self.close()
                raise

    def _open_csv(self) -> None:
        self._text = io.TextIOWrapper(self._binary, encoding="utf-8-sig", newline="")
        self._reader = csv.reader(self._text)
        try:
            header = next(self._reader, None)
            self._columns = csv_columns(header)
        except InputError as exc:
            raise EventFileError(f"{self.path}: {exc.field}: {exc.reason}") from None
        except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
            raise EventFileError(f"{self.path}: {exc}") from None

    def close(self) -> None:
        self._raw.close()

    @property
    def position(self) -> int:
        """Bytes of the file (as stored, compressed or not) read so far."""
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return self.size

    def rows(self) -> Iterator[Row]:
        try:
            if self.format == "csv":
                yield from self._csv_rows()
            else:
                yield from self._jsonl_rows()
        except (csv.Error, OSError, EOFError) as exc:
            raise EventFileError(f"{self.path}: {exc}") from None

    def _jsonl_rows(self) -> Iterator[Row]:
        for number, line in enumerate(self._binary, start=1):
            if not line.strip():
                continue
            try:
                source = line.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                yield Row(number, None, InputError("row", f"not UTF-8 text: {exc.reason}"),
                          line.decode("utf-8", "replace").rstrip("\r\n"))
                continue
            yield Row(number, line, None, source)

    def _csv_rows(self) -> Iterator[Row]:
        columns, reader = self._columns, self._reader
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                # the decoder's buffer is lost with the error: nothing after it can be read
                raise EventFileError(f"{self.path}: after line {reader.line_num}: not UTF-8 "
                                     f"text ({exc.reason})") from None
            if not cells:
                continue  # a blank line
            line = reader.line_num
            source = {column.name: text for column, text in zip(columns, cells) if text != ""}
            if len(cells) > len(columns):
                yield Row(line, None, InputError(
                    "row", f"{len(cells)} cells, but the header names {len(columns)} columns"),
                    source)
                continue
            yield Row(line, orjson.dumps(csv_row_to_event(columns, cells)), None, source)
