"""Auto-pipelining: script calls made within one event-loop tick go out as one pipeline.

redis.asyncio spends most of its per-call CPU on connection checkout and
response bookkeeping. When many requests are in flight, their EVALSHA calls
arrive within the same loop tick; sending them as one pipeline pays that cost
once per batch instead of once per call, and keeps one script call per event.
"""

from __future__ import annotations

import asyncio
from typing import Any, Sequence

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from edge.store.scripts import ALL, Script

Call = tuple[Script, Sequence[str | bytes], Sequence[Any], "asyncio.Future[Any]"]


class ScriptBatcher:
    def __init__(self, client: aioredis.Redis, max_batch: int = 256) -> None:
        self.client = client
        self.max_batch = max_batch
        self._pending: list[Call] = []
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def load_scripts(self) -> None:
        for script in ALL:
            await self.client.script_load(script.source)

    def call(self, script: Script, keys: Sequence[str | bytes], args: Sequence[Any]) -> "asyncio.Future[Any]":
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, future))
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[Call]) -> None:
        try:
            results = await self._execute(batch)
            missing = [i for i, r in enumerate(results) if _is_noscript(r)]
            if missing:
                await self.load_scripts()
                retried = await self._execute([batch[i] for i in missing])
                for i, result in zip(missing, retried):
                    results[i] = result
        except BaseException as exc:  # connection lost, cancelled: every caller hears of it
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else ConnectionError(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for (*_, future), result in zip(batch, results):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _execute(self, batch: list[Call]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for script, keys, args, _ in batch:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        return await pipe.execute(raise_on_error=False)


def _is_noscript(result: Any) -> bool:
    return isinstance(result, NoScriptError) or (
        isinstance(result, ResponseError) and str(result).startswith("NOSCRIPT")
    )
