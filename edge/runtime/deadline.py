"""A fixed deadline for many concurrent requests, kept with one timer.

asyncio.timeout arms and disarms a timer of the event loop for every request:
about 8 µs of each event's CPU in measurements here. Every request of one
route gets the same deadline, so the requests expire in the order they began:
a queue of them, swept by one timer that runs at most once per `resolution`,
does the same work for about a microsecond each. A request that outlives its
deadline is cancelled and raises TimeoutError from the `async with`, as with
asyncio.timeout; it ends up to `resolution` later than asyncio's would.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from types import TracebackType


class Deadline:
    """`async with deadline:` bounds the block to `seconds`; the same object serves every
    request on its event loop (one loop per worker)."""

    def __init__(self, seconds: float, resolution: float = 0.01) -> None:
        self.seconds = seconds
        self.resolution = resolution
        self._waiting: deque[_Watch] = deque()  # oldest first, so soonest to expire first
        self._sweep: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __call__(self) -> _Watch:
        return _Watch(self)

    def _watch(self, watch: _Watch, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            # A new event loop (a restarted app in one process): what the old one
            # left behind, and its timer, are gone with it.
            self._loop, self._sweep = loop, None
            self._waiting.clear()
        self._waiting.append(watch)
        if self._sweep is None:
            self._schedule(loop, watch.expires)

    def _schedule(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        # Rounded up to a multiple of the resolution: every request expiring in the
        # same span is handled by one sweep.
        at = max(math.ceil(when / self.resolution) * self.resolution, when)
        self._sweep = loop.call_at(at, self._run_sweep, loop)

    def _run_sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweep = None
        waiting, now = self._waiting, loop.time()
        while waiting:
            watch = waiting[0]
            if watch.task is not None and watch.expires > now:
                self._schedule(loop, watch.expires)
                return
            waiting.popleft()
            if watch.task is not None:  # still running past its deadline
                watch.expired = True
                watch.task.cancel()


class _Watch:
    """One request under a Deadline: the async context manager of `async with`."""

    __slots__ = ("deadline", "task", "expires", "expired", "cancelling")

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.task: asyncio.Task | None = None
        self.expires = 0.0
        self.expired = False
        self.cancelling = 0

    async def __aenter__(self) -> _Watch:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline must be used inside a task")
        loop = asyncio.get_running_loop()
        self.task, self.cancelling = task, task.cancelling()
        self.expires = loop.time() + self.deadline.seconds
        self.deadline._watch(self, loop)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        task, self.task = self.task, None  # finished: the next sweep drops it
        if self.expired and task is not None:
            # Our cancellation is taken back; it becomes TimeoutError unless someone
            # else cancelled the task as well (then theirs goes on), as asyncio.timeout
            # decides it.
            if task.uncancel() <= self.cancelling and kind is asyncio.CancelledError:
                raise TimeoutError from error
