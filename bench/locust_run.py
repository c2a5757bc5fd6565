"""Locust, headless, against a local edge: realistic traffic, measured for a fixed time.

Starts a local redis-server, preloads a population (bench/population.py),
starts the edge with the 200-rule corpus and runs bench/locustfile.py with
locust --headless for --duration seconds. Writes the locust stats summary
(per request kind: requests, failures, req/s, p50/p90/p99/p99.9) with the CPU
that locust and the edge spent per request to
bench/results/<date>-locust.json.

    python -m bench.locust_run [--users 100] [--duration 30] [--population 10000]

--target bare points locust at the bare Starlette floor server instead, with no
think time (--think 0): the server then costs almost nothing, so the rate
reached is locust's own ceiling on this machine.

Any argument after `--` goes to locust as is (say, -- --kairos-pos-weight 0).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.http import RESULTS, cpu_seconds, edge_command, stop, wait_up, write_config
from bench.population import load_and_measure
from edge.store.embedded import EmbeddedRedis, free_port

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"


def percentile(histogram: dict[str, int], total: int, q: float) -> float | None:
    """Locust keeps response times as a histogram of rounded milliseconds."""
    if not total:
        return None
    wanted = q * total
    seen = 0
    for ms, count in sorted(((float(k), v) for k, v in histogram.items())):
        seen += count
        if seen >= wanted:
            return ms
    return None


def summarize(entries: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Per request name, and all together: counts, rates and percentiles."""
    combined: dict[str, int] = {}
    by_name: dict[str, Any] = {}
    for entry in entries:
        total = entry["num_requests"]
        histogram = entry["response_times"]
        for ms, count in histogram.items():
            combined[ms] = combined.get(ms, 0) + count
        by_name[f"{entry['method']} {entry['name']}"] = row(total, entry["num_failures"], histogram,
                                                           seconds)
    total = sum(e["num_requests"] for e in entries)
    failures = sum(e["num_failures"] for e in entries)
    # A POS batch is one request carrying many events ("batch of 100 ...").
    events = sum(e["num_requests"] * batch_size(e["name"]) for e in entries)
    return {"total": row(total, failures, combined, seconds) | {"events": events,
                                                               "events_per_s": round(events / seconds, 1)},
            "requests": by_name}


def batch_size(name: str) -> int:
    if name.startswith("batch of "):
        return int(name.split()[2])
    return 1


def row(total: int, failures: int, histogram: dict[str, int], seconds: float) -> dict[str, Any]:
    return {"requests": total, "failures": failures, "rps": round(total / seconds, 1),
            "p50_ms": percentile(histogram, total, 0.50), "p90_ms": percentile(histogram, total, 0.90),
            "p99_ms": percentile(histogram, total, 0.99),
            "p999_ms": percentile(histogram, total, 0.999)}


def run_locust(host: str, args: argparse.Namespace, extra: list[str], tmp: Path,
               server_pid: int) -> dict[str, Any]:
    stats = tmp / "stats"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
               "--host", host, "-u", str(args.users), "-r", str(args.spawn_rate),
               "-t", f"{args.duration}s", "--stop-timeout", "5", "--json-file", str(stats),
               # Statistics from when every user is running: not the cold start and the ramp.
               "--reset-stats",
               "--loglevel", "WARNING", "--kairos-population", str(args.population)]
    if args.think is not None:
        command += ["--kairos-think-min", str(args.think), "--kairos-think-max", str(args.think)]
    process = subprocess.Popen(command + extra, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    started = time.perf_counter()
    # The CPU both sides spend, read just before locust exits (its children go with it).
    server_before = cpu_seconds(server_pid)
    locust_cpu = server_cpu = 0.0
    while process.poll() is None:
        locust_cpu = max(locust_cpu, cpu_seconds(process.pid))
        server_cpu = cpu_seconds(server_pid) - server_before
        time.sleep(0.5)
    output = process.stdout.read() if process.stdout else ""
    if process.returncode not in (0, 1):  # 1: some requests failed, still a result
        raise RuntimeError(f"locust failed ({process.returncode}):\n{output}")
    elapsed = time.perf_counter() - started
    entries = orjson.loads((tmp / "stats.json").read_bytes())
    # The time the statistics cover: from their reset (all users spawned) to the last request.
    measured = (max(e["last_request_timestamp"] for e in entries)
                - min(e["start_time"] for e in entries)) if entries else args.duration
    summary = summarize(entries, measured)
    summary["measured_seconds"] = round(measured, 1)
    sent = summary["total"]["requests"] or 1
    summary["locust_cpu_us_per_request"] = round(locust_cpu / sent * 1e6, 1)
    summary["server_cpu_us_per_request"] = round(server_cpu / sent * 1e6, 1)
    summary["wall_seconds"] = round(elapsed, 1)
    print(output[-3000:], file=sys.stderr)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--spawn-rate", type=float, default=20)
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--population", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--target", choices=["edge", "bare"], default="edge")
    parser.add_argument("--think", type=float, default=None,
                        help="seconds between a visitor's events (default: the locustfile's 0.5-3)")
    parser.add_argument("--name", default="locust")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    if args.target == "bare" and not any(a.startswith("--kairos-pos-weight") for a in extra):
        extra += ["--kairos-pos-weight", "0"]  # the bare server's answer to a batch means nothing

    with tempfile.TemporaryDirectory(prefix="kairos-locust-") as tmp_name:
        tmp = Path(tmp_name)
        config = write_config(tmp / "config", args.rules)
        with EmbeddedRedis(tmp / "redis", persistent=False) as redis_server:
            population = None
            port = free_port()
            if args.target == "edge":
                population = load_and_measure(redis_server.url, args.population, config, flush=True)
                command = edge_command(port, args, config, redis_server.url)
                ready = "/readyz"
            else:
                command = [sys.executable, "-m", "bench.floor", "bare", str(port), str(args.workers),
                           redis_server.url]
                ready = "/healthz"
            server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True)
            try:
                wait_up(port, server, ready)
                summary = run_locust(f"http://127.0.0.1:{port}", args, extra, tmp, server.pid)
            finally:
                stop(server)

    report = {
        "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "settings": {"target": args.target, "users": args.users, "duration_s": args.duration,
                     "population": args.population, "workers": args.workers, "rules": args.rules,
                     "think_s": args.think, "locust_args": extra},
        **summary,
        "population_load": population,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{report['date']}-{args.name}.json"
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
