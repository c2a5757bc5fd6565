"""The clock, injected wherever time matters so tests can drive it."""

from __future__ import annotations

import time


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:  # 2026-01-01T00:00:00Z
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        self._now += ms

    def set(self, ms: int) -> None:
        self._now = ms


class FileClock:
    """A clock read from a file holding epoch milliseconds: how tests and simulations
    move the time of a worker running in another process. Falls back to the system
    clock while the file is missing or unreadable. The file is read at most once a
    millisecond: a worker asks the time several times per step."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._read_at = -1
        self._now = 0

    def now_ms(self) -> int:
        moment = time.monotonic_ns() // 1_000_000
        if moment != self._read_at:
            self._read_at = moment
            try:
                with open(self.path, encoding="ascii") as file:
                    self._now = int(file.read().strip())
            except (OSError, ValueError):
                self._now = time.time_ns() // 1_000_000
        return self._now
