"""Shared fixtures: a real redis-server on a free port, and real edge servers over HTTP."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest
import redis

from edge.store.embedded import EmbeddedRedis
from tests.support import LiveEdge, write_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persistent=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def module_edge(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[LiveEdge]:
    """One edge with the test rules for a whole module, on an emptied Redis: for property
    tests, whose examples share it (each example uses people of its own)."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    with LiveEdge(write_config(tmp_path_factory.mktemp("config")), redis_server.url) as live:
        yield live


@pytest.fixture
def example_config(tmp_path: Path) -> Path:
    """A copy of the shipped example configuration, safe to edit."""
    target = tmp_path / "config"
    shutil.copytree(ROOT / "config", target)
    return target


@pytest.fixture
def edge(redis_url: str, tmp_path: Path) -> Iterator[LiveEdge]:
    """A real edge over HTTP with the test rules and a fake clock."""
    config = write_config(tmp_path / "config")
    with LiveEdge(config, redis_url) as live:
        yield live
