"""The benchmark's traffic is the same in every run and every process."""

from __future__ import annotations

import os
import subprocess
import sys

PRINT_TRAFFIC = "from bench.traffic import make_requests; print(make_requests(300))"


def traffic_with_hash_seed(seed: str) -> str:
    environment = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.run([sys.executable, "-c", PRINT_TRAFFIC], env=environment, check=True,
                          capture_output=True, text=True).stdout


def test_traffic_does_not_depend_on_the_process() -> None:
    # str hashes are salted per process: nothing in the traffic may depend on them
    first, second = traffic_with_hash_seed("1"), traffic_with_hash_seed("2")
    assert first == second
    assert '"category"' in first
