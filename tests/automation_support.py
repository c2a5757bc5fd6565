"""Test helpers for the automation half: a clock shared with worker processes, a worker
in a background thread or in its own process, and readers of the outbox."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import redis

from edge.runtime.config import load_settings
from edge.store import streams
from edge.worker.service import Worker

ROOT = Path(__file__).resolve().parent.parent


class SharedClock:
    """A fake clock that worker processes read too: the time is kept in a file
    (edge.runtime.clock.FileClock reads it, `kairos worker --clock-file`)."""

    def __init__(self, path: Path, start_ms: int = 1_767_225_600_000) -> None:  # 2026-01-01Z
        self.path = path
        self.set(start_ms)

    def now_ms(self) -> int:
        return self._now

    def set(self, ms: int) -> None:
        self._now = ms
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(str(ms))
        os.replace(temporary, self.path)  # readers never see a half-written number

    def advance(self, ms: int) -> None:
        self.set(self._now + ms)


class ThreadWorker:
    """`kairos worker` in a background thread of the test process."""

    def __init__(self, config_dir: Path, redis_url: str, clock: Any, name: str = "w1") -> None:
        self.worker = Worker(load_settings(config_dir), redis_url, clock, name)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._started.set()
            await self.worker.run()
        asyncio.run(main())

    def __enter__(self) -> "ThreadWorker":
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.worker.stop)
        self._thread.join(15)
        # a worker left running would go on consuming what later tests write
        assert not self._thread.is_alive(), "the worker thread did not stop within 15 s"


class ProcessWorker:
    """`kairos worker` as a real process, reading the time from a SharedClock's file."""

    def __init__(self, config_dir: Path, redis_url: str, clock: SharedClock, name: str) -> None:
        self.command = [sys.executable, "-m", "edge.cli", "worker", "--config", str(config_dir),
                        "--redis", redis_url, "--clock-file", str(clock.path), "--name", name,
                        "--log-level", "warning"]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "ProcessWorker":
        self.process = subprocess.Popen(self.command, cwd=ROOT)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def outbox(client: redis.Redis) -> list[streams.OutboundMessage]:
    return [record for _, fields in client.xrange(streams.OUTBOX)
            if isinstance(record := streams.decode(fields), streams.OutboundMessage)]


def wait_until(check: Callable[[], Any], timeout_s: float = 10.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def settled(client: redis.Redis, group: str = "kairos-automation",
            stream: str = "kairos:events") -> bool:
    """Every event appended so far was delivered to the group and acknowledged."""
    try:
        info = {_text(g["name"]): g for g in client.xinfo_groups(stream)}
    except redis.ResponseError:
        return False
    found = info.get(group)
    if found is None:
        return False
    last = client.xrevrange(stream, count=1)
    last_id = last[0][0] if last else b"0-0"
    return found["pending"] == 0 and _text(found["last-delivered-id"]) == _text(last_id)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
