"""HTTP benchmark: the edge against a floor server, side by side, in one run.

Starts a local redis-server (the embedded one), then one target at a time
(bare Starlette, the floor with one EVALSHA per request through redis.asyncio,
and the edge with the realistic 200-rule corpus), each with the same number of
uvicorn workers, and drives each with the same realistic event mix:

- closed loop (saturation): req/s, p50, p99;
- open loop at a fixed rate (default 2,000 req/s): p50, p99 without
  coordinated omission.

Prints JSON and writes bench/results/<date>-http.json.

    python -m bench.http [--workers 2] [--duration 8] [--rate 2000]
"""

from __future__ import annotations

import argparse
import base64
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import redis

from bench.traffic import make_requests
from edge.store.embedded import EmbeddedRedis, free_port

RESULTS = Path(__file__).resolve().parent / "results"
SECRET = "bench-secret"

SETTINGS = f"""
sites:
  bench:
    write_keys: [bench-public]
    origins: ["https://shop.example"]
    user_hash_secret: bench
    timezone: Europe/Prague
secret_keys:
  {SECRET}:
    site: bench
    scopes: [ingest, profiles:read, admin]
rules: rules
"""


def write_config(root: Path, n_rules: int) -> Path:
    from bench.rule_corpus import make_corpus

    (root / "rules").mkdir(parents=True)
    (root / "kairos.yaml").write_text(SETTINGS)
    for name, text in make_corpus(n_rules, seed=1):
        (root / "rules" / Path(name).name).write_text(text)
    return root


def wait_up(port: int, process: subprocess.Popen, path: str = "/healthz", timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stdout.read() if process.stdout else ''}")
        try:
            httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def load(port: int, requests_file: str, mode: str, args: argparse.Namespace) -> dict:
    auth = "Basic " + base64.b64encode(f"{SECRET}:".encode()).decode()
    command = [sys.executable, "-m", "bench.loadgen", "--port", str(port), "--requests-file",
               requests_file, "--auth", auth, "--mode", mode, "--duration", str(args.duration),
               "--warmup", str(args.warmup)]
    if mode == "closed":
        command += ["--concurrency", str(args.concurrency)]
    else:
        command += ["--rate", str(args.rate), "--concurrency", "64"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return orjson.loads(out)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and all its descendants (Linux /proc)."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(child) for child in children)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def run_target(name: str, command: list[str], port: int, requests_file: str,
               args: argparse.Namespace, redis_url: str, ready_path: str, redis_pid: int) -> dict:
    redis.Redis.from_url(redis_url).flushall()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        wait_up(port, process, ready_path)
        # CPU per request is steadier than throughput on a shared machine: it does
        # not depend on how much of the CPU the other tenants leave us.
        before = cpu_seconds(process.pid), cpu_seconds(redis_pid)
        saturation = load(port, requests_file, "closed", args)
        after = cpu_seconds(process.pid), cpu_seconds(redis_pid)
        sent = saturation.pop("sent")
        saturation["server_cpu_us_per_request"] = round((after[0] - before[0]) / sent * 1e6, 1)
        saturation["redis_cpu_us_per_request"] = round((after[1] - before[1]) / sent * 1e6, 1)
        result = {"saturation": saturation}
        redis.Redis.from_url(redis_url).flushall()
        result["fixed_rate"] = load(port, requests_file, "open", args)
    finally:
        stop(process)
    print(f"{name}: {result}", file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--targets", default="bare,floor,edge")
    parser.add_argument("--name", default="http")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kairos-bench-") as tmp:
        tmp_path = Path(tmp)
        config = write_config(tmp_path / "config", args.rules) if "edge" in args.targets else None
        requests_file = str(tmp_path / "requests.json")
        n = int((args.duration + args.warmup) * 20_000)
        Path(requests_file).write_bytes(orjson.dumps(make_requests(n)))
        with EmbeddedRedis(tmp_path / "redis", persistent=False) as server:
            results: dict[str, dict] = {}
            for target in args.targets.split(","):
                port = free_port()
                if target == "edge":
                    command = [sys.executable, "-m", "edge.cli", "serve", "--port", str(port),
                               "--workers", str(args.workers), "--config", str(config),
                               "--redis", server.url, "--log-level", "warning"]
                    ready = "/readyz"
                else:
                    kind = "bare" if target == "bare" else "evalsha"
                    command = [sys.executable, "-m", "bench.floor", kind, str(port),
                               str(args.workers), server.url]
                    ready = "/healthz"
                results[target] = run_target(target, command, port, requests_file, args, server.url,
                                             ready, server.pid)

    report = {
        "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "settings": {"workers": args.workers, "duration_s": args.duration,
                     "concurrency": args.concurrency, "fixed_rate_rps": args.rate, "rules": args.rules},
        "results": results,
    }
    if "edge" in results and "floor" in results:
        report["edge_vs_floor_throughput"] = round(
            results["edge"]["saturation"]["rps"] / results["floor"]["saturation"]["rps"], 3)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{report['date']}-{args.name}.json"
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
