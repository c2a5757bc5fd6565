"""The automation worker as a child of `kairos serve`, so one command runs both.

The child is started from a thread that lives until stop(): on Linux the child's
death signal (armed with --end-with-parent, see edge/runtime/lifetime.py) is tied to
the thread that started it, so a serve killed with -9 takes its worker along. A
worker that ends by itself is started again after 0.5 s, doubling up to 8 s.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading

log = logging.getLogger("kairos.worker")


class WorkerProcess:
    def __init__(self, config_dir: str, redis_url: str, log_level: str = "info") -> None:
        self.command = [sys.executable, "-m", "edge.cli", "worker", "--config", config_dir,
                        "--redis", redis_url, "--log-level", log_level,
                        "--end-with-parent", str(os.getpid())]
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="kairos-worker", daemon=True)
        self._thread.start()

    def _supervise(self) -> None:
        wait = 0.5
        while not self._stopping.is_set():
            self._process = subprocess.Popen(self.command)
            code = self._process.wait()
            if self._stopping.is_set():
                return
            log.warning("the automation worker ended (exit status %s); starting it again in %.1f s",
                        code, wait)
            self._stopping.wait(wait)
            wait = min(wait * 2, 8.0)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._thread is not None:
            self._thread.join(timeout_s)
