"""A worker process ends with the supervisor that started it.

`kairos serve --workers N` runs N uvicorn workers under one supervisor. Killed
outright (SIGKILL runs none of its cleanup), the supervisor cannot stop them, and
orphaned workers would keep the port, answering 503 without their Redis, so the
next `kairos serve` could not start. On Linux the kernel sends a worker SIGTERM
when its parent dies (PR_SET_PDEATHSIG), which uvicorn answers with a graceful
shutdown; elsewhere there is no such signal and the operator stops strays.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def end_with_parent(parent_pid: int) -> bool:
    """Arms SIGTERM for when `parent_pid` dies; False where the kernel cannot."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGTERM)) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent_pid:  # it died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)
    return True
