"""The benchmark's floor servers do what the report says they do: one script call per request."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Iterator

import httpx
import pytest
import redis

from edge.store.embedded import EmbeddedRedis, free_port


@pytest.fixture
def own_redis(tmp_path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own: the command counts below must be the floor's alone, not
    those of a worker another test may still be stopping on the shared one."""
    with EmbeddedRedis(tmp_path / "redis", persistent=False) as running:
        yield running


@pytest.mark.parametrize("kind", ["evalsha", "pipelined"])
def test_each_request_makes_one_script_call(kind: str, own_redis: EmbeddedRedis) -> None:
    redis_url = own_redis.url
    redis_client = redis.Redis.from_url(redis_url)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.floor", kind, str(port), "1", redis_url],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/v1/page"
        deadline = time.monotonic() + 20
        while True:
            try:
                first = httpx.post(url, json={"anonymousId": "a1", "messageId": "m1"}, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "floor did not start"
                time.sleep(0.1)
        redis_client.config_resetstat()
        second = httpx.post(url, json={"anonymousId": "a1", "messageId": "m2"}, timeout=5)
        assert first.status_code == second.status_code == 200
        assert second.json() == {"success": True, "fields": 4}  # n and ls, as HGETALL pairs
        assert redis_client.hgetall("{f:a1}") == {b"n": b"2", b"ls": b"m2"}
        assert redis_client.info("commandstats")["cmdstat_evalsha"]["calls"] == 1
    finally:
        redis_client.close()
        server.terminate()
        server.wait(timeout=20)
