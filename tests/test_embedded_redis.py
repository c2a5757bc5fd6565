"""The embedded Redis ends with the edge, serves one data folder once, and keeps what it acknowledged.

`kairos serve` runs as a subprocess, as an operator runs it; the process tree is
read from /proc, so these tests are Linux-only (where PR_SET_PDEATHSIG does the
work; the watchdog fallback for other systems is exercised here too).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import redis

from edge.store import streams
from edge.store.embedded import LOCK_FILE, PORT_FILE, DataDirInUse, EmbeddedRedis, free_port
from tests.support import SECRET_KEY, basic, write_config
from tests.test_cli import KAIROS, start_serve, stop, wait_ready

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")


def _stat(pid: int) -> tuple[str, str, int, int] | None:
    """(command name, state, parent pid, start time) of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return name, fields[0], int(fields[1]), int(fields[19])


def alive(pid: int) -> bool:
    # A zombie has ended: it waits only for a parent (here perhaps an init that never reaps) to collect it.
    stat = _stat(pid)
    return stat is not None and stat[1] != "Z"


def children(pid: int, name: str | None = None) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat and stat[2] == pid and stat[1] != "Z" and name in (None, stat[0]):
                found.append(int(entry.name))
    return found


def redis_child(pid: int) -> int:
    found = children(pid, "redis-server")
    assert len(found) == 1, f"process {pid} has redis-server children {found}"
    return found[0]


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return not alive(pid)


class Strays:
    """Processes a test expects to end: whichever outlives a failing test is killed, not left running."""

    def __init__(self) -> None:
        self._started: dict[int, int] = {}

    def add(self, *pids: int) -> None:
        for pid in pids:
            stat = _stat(pid)
            if stat:
                self._started[pid] = stat[3]

    def kill(self) -> None:
        for pid, started in self._started.items():
            stat = _stat(pid)
            if stat and stat[1] != "Z" and stat[3] == started:  # the same process, not a reused pid
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def strays() -> Iterator[Strays]:
    left = Strays()
    yield left
    left.kill()


def serve(tmp_path: Path, data: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    config = tmp_path / "config"
    if not config.exists():
        write_config(config)
    port = free_port()
    process = start_serve(config, data, port, *extra)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
    except BaseException:
        process.kill()
        process.communicate()
        raise
    return process, url


def embedded_client(data: Path) -> redis.Redis:
    port = int((data / "redis" / PORT_FILE).read_text())
    return redis.Redis(port=port, decode_responses=True)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_redis_ends_with_serve(tmp_path, sig, strays):
    data = tmp_path / "var"
    process, _ = serve(tmp_path, data)
    try:
        server = redis_child(process.pid)
        strays.add(server)
        process.send_signal(sig)
        assert gone_within(server, 2.0), f"redis-server {server} outlived serve ({sig.name})"
        process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    if sig != signal.SIGKILL:
        assert process.returncode == 0  # a requested stop, cleaned up
        assert not (data / "redis" / PORT_FILE).exists()


def test_redis_and_workers_end_with_the_supervisor_of_several_workers(tmp_path, strays):
    process, _ = serve(tmp_path, tmp_path / "var", "--workers", "2")
    workers = Strays()
    try:
        server = redis_child(process.pid)  # not a worker's: they come and go under the supervisor
        strays.add(server)
        found = [pid for pid in children(process.pid) if pid != server]
        workers.add(*found)
        process.kill()
        assert gone_within(server, 2.0), f"redis-server {server} outlived the supervisor"
        # Orphaned workers would hold the port and answer 503 without their Redis.
        for pid in found:
            assert gone_within(pid, 5.0), f"process {pid} outlived the supervisor"
    finally:
        process.kill()
        workers.kill()  # if the test failed: they hold serve's output pipe open
        process.communicate(timeout=20)


def test_a_second_serve_on_the_same_data_folder_refuses(tmp_path):
    data = tmp_path / "var"
    first, url = serve(tmp_path, data)
    try:
        server = redis_child(first.pid)
        second = subprocess.run(
            [*KAIROS, "serve", "--port", str(free_port()), "--config", str(tmp_path / "config"),
             "--data-dir", str(data)], capture_output=True, text=True, timeout=30)
        assert second.returncode != 0
        assert str((data / "redis").resolve()) in second.stderr
        assert f"process {first.pid}" in second.stderr
        assert f"redis-server is process {server}" in second.stderr
        assert "Traceback" not in second.stderr
        assert alive(server) and redis_child(first.pid) == server
        assert embedded_client(data).ping()  # the port file still names the first server
    finally:
        stop(first)


def test_acknowledged_writes_survive_kill_9_of_the_edge_and_a_restart(tmp_path, strays):
    data = tmp_path / "var"
    process, _ = serve(tmp_path, data)
    try:
        client = embedded_client(data)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        client.hset("{p:kept}", mapping={"visits": "3", "first": "Pia"})
        for i in range(200):
            client.rpush("kept:list", i)
        client.close()
        time.sleep(1.1)  # past the everysec fsync, the documented bound
        server = redis_child(process.pid)
        strays.add(server)
        process.kill()
        process.communicate()
        assert gone_within(server, 2.0)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # The killed edge left its lock file behind, but not the lock: the restart is not refused.
    assert (data / "redis" / LOCK_FILE).exists()
    process, _ = serve(tmp_path, data)
    try:
        client = embedded_client(data)
        assert client.hgetall("{p:kept}") == {"visits": "3", "first": "Pia"}
        assert client.lrange("kept:list", 0, -1) == [str(i) for i in range(200)]
        client.close()
    finally:
        stop(process)


def test_a_killed_embedded_redis_is_restarted_and_ingest_recovers_by_itself(tmp_path, strays):
    """kill -9 of the embedded Redis: ingest answers 503 while it is down, then 200 again,
    /readyz recovers, and what was acknowledged before is still there; no one steps in."""
    data = tmp_path / "var"
    process, url = serve(tmp_path, data)
    auth = basic(SECRET_KEY)
    try:
        def track(n: int) -> int:
            event = {"userId": "kept", "event": "Tick", "messageId": f"tick-{n}"}
            return httpx.post(f"{url}/v1/track", json=event, headers=auth, timeout=5).status_code

        assert track(0) == 200
        first = redis_child(process.pid)
        strays.add(first)
        os.kill(first, signal.SIGKILL)
        assert gone_within(first, 2.0)
        statuses = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and statuses[-1:] != [200]:
            statuses.append(track(len(statuses) + 1))
            time.sleep(0.02)
        assert statuses[0] == 503 and statuses[-1] == 200, statuses
        assert set(statuses) == {503, 200}, statuses
        # No request meets a connection the old server held: each is checked out afresh.
        for _ in range(5):
            assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        second = redis_child(process.pid)
        strays.add(second)
        assert second != first
        assert httpx.get(f"{url}/v1/profiles/user:kept", headers=auth, timeout=5).status_code == 200
        client = embedded_client(data)
        ticks = [record.message_id for record in map(streams.decode, (
            fields for _id, fields in client.xrange("kairos:events"))) if record.name == "Tick"]
        # the one acknowledged before the kill, and the one acknowledged after the restart
        assert ticks == ["tick-0", f"tick-{len(statuses)}"], ticks
        client.close()
    finally:
        output = stop(process)
    assert "the embedded Redis ended (exit code -9); restarting it" in output, output
    assert "the embedded Redis is back" in output, output
    assert gone_within(second, 2.0)  # the restarted server ends with serve too


def test_a_write_is_in_the_append_only_file_before_redis_answers(tmp_path):
    # Even with Redis itself killed, no wait: what it acknowledged was written (fsync bounds only a machine crash).
    with EmbeddedRedis(tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        client.set("acked", "yes")
        client.close()
        os.kill(server.pid, signal.SIGKILL)
    with EmbeddedRedis(tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        assert client.get("acked") == b"yes"
        client.close()


def test_one_embedded_redis_per_data_folder(tmp_path):
    first = EmbeddedRedis(tmp_path, persistent=False)
    with first:
        client = redis.Redis.from_url(first.url)
        assert client.config_get("appendonly") == {"appendonly": "no"}  # the test suite's fast path
        client.close()
        with pytest.raises(DataDirInUse) as refused:
            EmbeddedRedis(tmp_path, persistent=False).start()
        assert str(tmp_path.resolve()) in str(refused.value)
        assert f"process {os.getpid()}" in str(refused.value)
        assert alive(first.pid)
    with EmbeddedRedis(tmp_path, persistent=False) as second:  # released by stop
        assert redis.Redis.from_url(second.url).ping()


WATCHED = """
import sys, time
from edge.store import embedded
embedded.LEASH = "watchdog"
server = embedded.EmbeddedRedis(sys.argv[1], persistent=False)
server.start()
print(server.pid, flush=True)
time.sleep(60)
"""


def test_the_watchdog_fallback_stops_redis_when_the_edge_dies(tmp_path, strays):
    edge = subprocess.Popen([sys.executable, "-c", WATCHED, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        leash = int(edge.stdout.readline())
        assert _stat(leash)[2] == edge.pid
        server = redis_child(leash)  # the watchdog stays between the edge and Redis
        strays.add(leash, server)
        edge.kill()
        assert gone_within(server, 2.0), "redis-server outlived the edge under the watchdog"
        assert gone_within(leash, 2.0)
        with EmbeddedRedis(tmp_path, persistent=False):  # and the folder is free again
            pass
    finally:
        edge.kill()
        edge.communicate()


def worker_children(pid: int) -> list[int]:
    return [child for child in children(pid)
            if b"\x00worker\x00" in Path(f"/proc/{child}/cmdline").read_bytes()]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=lambda s: s.name)
def test_serve_runs_the_automation_worker_beside_the_edge_and_it_ends_with_serve(tmp_path, sig, strays):
    data = tmp_path / "var"
    process, _ = serve(tmp_path, data)
    try:
        workers = worker_children(process.pid)
        assert len(workers) == 1, f"serve {process.pid} has worker children {workers}"
        strays.add(*workers)
        client = embedded_client(data)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the worker joins the consumer group on the stream
            groups = client.xinfo_groups("kairos:events") if client.exists("kairos:events") else []
            if groups and groups[0]["name"] == "kairos-automation":
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the worker never joined the consumer group")
        client.close()
        process.send_signal(sig)
        assert gone_within(workers[0], 5.0), f"the worker {workers[0]} outlived serve ({sig.name})"
        process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
