"""The hot path's Redis connection: one write per loop tick, replies in order, reconnects."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from edge.store.batcher import ScriptBatcher
from edge.store.embedded import EmbeddedRedis
from edge.store.pipelined import PipelinedConnection
from edge.store.scripts import DROP_POINTER


def test_concurrent_commands_get_their_own_replies(redis_url: str) -> None:
    async def main() -> list[object]:
        connection = PipelinedConnection(redis_url)
        try:
            await connection.execute("DEL", "pipelined:n")
            replies = await asyncio.gather(
                *(connection.execute("INCR", "pipelined:n") for _ in range(200)),
                connection.execute("NOSUCHCOMMAND"), return_exceptions=True)
            return replies
        finally:
            connection.close()

    replies = asyncio.run(main())
    assert replies[:200] == list(range(1, 201))
    assert isinstance(replies[200], ResponseError)  # only the failing caller gets the error


def test_a_restarted_redis_is_reconnected(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", persistent=False)
    server.start()

    async def main() -> tuple[object, object]:
        connection = PipelinedConnection(server.url)
        try:
            assert await connection.execute("PING") == b"PONG"
            server.stop()
            with pytest.raises((RedisConnectionError, OSError)):
                await connection.execute("PING")
            server.start()
            return await connection.execute("SET", "k", "v"), await connection.execute("GET", "k")
        finally:
            connection.close()

    try:
        assert asyncio.run(main()) == (b"OK", b"v")
    finally:
        server.stop()


def test_scripts_flushed_from_redis_are_loaded_again(redis_url: str) -> None:
    async def main() -> object:
        batcher = ScriptBatcher(redis_url)
        try:
            await batcher.command("SCRIPT", "FLUSH")
            # DROP_POINTER deletes a pointer that names the given profile; none here.
            return await batcher.call(DROP_POINTER, ["{p:nobody}"], ["somebody"])
        finally:
            batcher.close()

    assert asyncio.run(main()) == 0
