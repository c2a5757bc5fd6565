"""HTTP benchmark: the edge against a floor server, side by side, in one run.

Starts every target at once, each with its own redis-server (the embedded
one): bare Starlette, the floor with one EVALSHA per request through
redis.asyncio, the same floor through the edge's own pipelining Redis layer,
and the edge with the realistic 200-rule corpus, all with --workers uvicorn
workers; and the edge with one worker too. Each is driven with the same
realistic event mix:

- closed loop (saturation): req/s, p50, p99, and CPU per request of the server
  and of its Redis, in --rounds rounds that take turns between the targets
  (bare, floor, edge, bare, ...), so that a slow spell of this shared machine
  falls on all of them rather than on whichever ran then; the round with the
  median req/s is reported, with every round's figures;
- open loop at a fixed rate (default 2,000 req/s): p50, p99 without
  coordinated omission.

With --baseline DIR the edge of another checkout (a worktree of an earlier
commit: `git worktree add DIR COMMIT`) runs beside this one as the target
"baseline", on the same rules and traffic, so a change is measured against what
it replaces in one run.

With --population 10000,1000000 the edge runs on a Redis preloaded with each
many realistic profiles (bench/population.py), the traffic's visitors drawn
from them, in alternating saturation rounds: the edge at 10k and at 1M
profiles side by side in one run.

Prints JSON and writes bench/results/<date>-http.json.

    python -m bench.http [--workers 2] [--duration 8] [--rate 2000] [--population 10000,1000000]
                         [--baseline DIR]
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

from bench.population import load_and_measure
from bench.traffic import make_requests
from edge.store.embedded import EmbeddedRedis, free_port

RESULTS = Path(__file__).resolve().parent / "results"
# target name -> the bench.floor server it runs; "edge" is the edge with --workers,
# "edge@N" the edge with N workers.
FLOOR_KINDS = {"bare": "bare", "floor": "evalsha", "pipelined": "pipelined"}
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


def run_targets(targets: list[str], args: argparse.Namespace, config: Path | None,
                tmp_path: Path) -> dict[str, dict]:
    """Every target at once, measured in saturation rounds that take turns between them."""
    servers: dict[str, EmbeddedRedis] = {}
    running: dict[str, tuple[subprocess.Popen, int]] = {}
    rounds: dict[str, list[dict]] = {target: [] for target in targets}
    results: dict[str, dict] = {}
    n = int((args.duration + args.warmup) * 20_000)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        for target in targets:
            server = servers[target] = EmbeddedRedis(tmp_path / f"redis-{target}", persistent=False)
            server.start()
            port = free_port()
            target_env = env
            if target.startswith("edge"):
                workers = int(target[5:]) if target.startswith("edge@") else args.workers
                command = edge_command(port, args, config, server.url, workers)
                ready = "/readyz"
            elif target == "baseline":
                command = edge_command(port, args, config, server.url)
                ready = "/readyz"
                # The other checkout's packages come first on the path, ahead of this one's.
                baseline = str(Path(args.baseline).resolve())
                target_env = {**env, "PYTHONPATH": baseline}
            else:
                command = [sys.executable, "-m", "bench.floor", FLOOR_KINDS[target], str(port),
                           str(args.workers), server.url]
                ready = "/healthz"
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, env=target_env,
                                       cwd=args.baseline if target == "baseline" else None)
            running[target] = (process, port)
            wait_up(port, process, ready)
        requests_file = tmp_path / "requests.json"
        for round_index in range(args.rounds):
            # New messageIds every round: a repeat would be answered as a cheap duplicate.
            requests_file.write_bytes(orjson.dumps(make_requests(n, seed=100 + round_index)))
            for target in targets:
                process, port = running[target]
                rounds[target].append(saturation_round(process.pid, port, servers[target].pid,
                                                       str(requests_file), args))
                print(f"{target} round {round_index + 1}: {rounds[target][-1]}", file=sys.stderr)
        requests_file.write_bytes(orjson.dumps(make_requests(n, seed=999)))
        for target in targets:
            results[target] = {"saturation": median_round(rounds[target]),
                               "fixed_rate": load(running[target][1], str(requests_file), "open",
                                                  args)}
            print(f"{target}: {results[target]}", file=sys.stderr)
    finally:
        for process, _port in running.values():
            stop(process)
        for server in servers.values():
            server.stop()
    return results


def size_label(size: int) -> str:
    """10000 -> "10k", 1000000 -> "1M"."""
    for unit, suffix in ((1_000_000, "M"), (1_000, "k")):
        if size >= unit and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def edge_command(port: int, args: argparse.Namespace, config: Path, redis_url: str,
                 workers: int | None = None) -> list[str]:
    return [sys.executable, "-m", "edge.cli", "serve", "--port", str(port),
            "--workers", str(workers or args.workers), "--config", str(config),
            "--redis", redis_url, "--log-level", "warning",
            "--no-worker"]  # the edge alone: the automation worker is measured apart


def run_populations(args: argparse.Namespace, config: Path, tmp_path: Path) -> tuple[dict, dict]:
    """The edge on each population size, measured in alternating rounds.

    Every size gets its own redis-server, preloaded once, and its own edge; the
    closed-loop rounds then alternate between them (10k, 1M, 10k, 1M, ...), so
    a neighbour's load on this shared machine falls on both sides alike
    instead of on whichever happened to run second.
    """
    sizes = [int(s) for s in args.population.split(",")]
    labels = [size_label(size) for size in sizes]
    n = int((args.duration + args.warmup) * 20_000)
    loads: dict[str, dict] = {}
    servers: dict[str, EmbeddedRedis] = {}
    edges: dict[str, tuple[subprocess.Popen, int]] = {}
    rounds: dict[str, list[dict]] = {label: [] for label in labels}
    results: dict[str, dict] = {}
    try:
        for size, label in zip(sizes, labels):
            server = servers[label] = EmbeddedRedis(tmp_path / f"redis-{label}", persistent=False)
            server.start()
            loads[label] = load_and_measure(server.url, size, config, flush=True)
            print(f"population {label}: {loads[label]}", file=sys.stderr)
        for label in labels:
            port = free_port()
            process = subprocess.Popen(edge_command(port, args, config, servers[label].url),
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            edges[label] = (process, port)
            wait_up(port, process, "/readyz")
        for round_index in range(args.rounds):
            for size, label in zip(sizes, labels):
                # New messageIds every round: a repeat would be answered as a cheap duplicate.
                requests_file = tmp_path / "requests-closed.json"
                requests_file.write_bytes(orjson.dumps(
                    make_requests(n, population=size, seed=1000 + round_index)))
                process, port = edges[label]
                rounds[label].append(saturation_round(process.pid, port, servers[label].pid,
                                                      str(requests_file), args))
                print(f"edge@{label} round {round_index + 1}: {rounds[label][-1]}", file=sys.stderr)
        for size, label in zip(sizes, labels):
            requests_file = tmp_path / "requests-open.json"
            requests_file.write_bytes(orjson.dumps(make_requests(n, population=size, seed=999)))
            results[f"edge@{label}"] = {"saturation": median_round(rounds[label]),
                                        "fixed_rate": load(edges[label][1], str(requests_file),
                                                           "open", args)}
    finally:
        for process, _port in edges.values():
            stop(process)
        for server in servers.values():
            server.stop()
    return results, loads


def saturation_round(server_pid: int, port: int, redis_pid: int, requests_file: str,
                     args: argparse.Namespace) -> dict:
    before = cpu_seconds(server_pid), cpu_seconds(redis_pid)
    result = load(port, requests_file, "closed", args)
    after = cpu_seconds(server_pid), cpu_seconds(redis_pid)
    sent = result.pop("sent")
    result["server_cpu_us_per_request"] = round((after[0] - before[0]) / sent * 1e6, 1)
    result["redis_cpu_us_per_request"] = round((after[1] - before[1]) / sent * 1e6, 1)
    return result


def median_round(rounds: list[dict]) -> dict:
    """The round with the median throughput, plus every round's req/s and CPU figures."""
    ordered = sorted(rounds, key=lambda r: r["rps"])
    return {**ordered[len(ordered) // 2],
            "rounds_rps": [r["rps"] for r in rounds],
            "rounds_server_cpu_us": [r["server_cpu_us_per_request"] for r in rounds],
            "rounds_redis_cpu_us": [r["redis_cpu_us_per_request"] for r in rounds]}


def add_ratio(report: dict, top: dict, bottom: dict, name: str) -> None:
    """Saturation throughput of `top` over `bottom`: of the median rounds, and round by
    round (each round against the other's round next to it: pairs that saw about the
    same machine, the steadier comparison)."""
    top, bottom = top["saturation"], bottom["saturation"]
    report[f"{name}_throughput"] = round(top["rps"] / bottom["rps"], 3)
    paired = sorted(t / b for t, b in zip(top["rounds_rps"], bottom["rounds_rps"]))
    report[f"{name}_by_round"] = [round(ratio, 3) for ratio in paired]
    report[f"{name}_median_of_rounds"] = round(paired[len(paired) // 2], 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--targets", default=None,
                        help="default: bare,floor,pipelined,edge and, with more than one worker, "
                             "edge@1 (the edge with one worker)")
    parser.add_argument("--name", default="http")
    parser.add_argument("--population", default="",
                        help="profile counts, e.g. 10000,1000000: run the edge on each count of "
                             "preloaded profiles (instead of the plain edge run), with traffic "
                             "over those visitors")
    parser.add_argument("--baseline", default=None,
                        help="a checkout of an earlier commit whose edge runs beside this one")
    parser.add_argument("--rounds", type=int, default=3,
                        help="saturation rounds per target (or per population count), taking turns")
    args = parser.parse_args()
    if args.targets is None:
        args.targets = "bare,floor,pipelined,edge" + (",edge@1" if args.workers > 1 else "")
    if args.baseline and "baseline" not in args.targets.split(","):
        args.targets += ",baseline"

    with tempfile.TemporaryDirectory(prefix="kairos-bench-") as tmp:
        tmp_path = Path(tmp)
        wants_edge = "edge" in args.targets or "baseline" in args.targets or args.population
        config = write_config(tmp_path / "config", args.rules) if wants_edge else None
        targets = [t for t in args.targets.split(",") if not (t == "edge" and args.population)]
        results: dict[str, dict] = run_targets(targets, args, config, tmp_path) if targets else {}
        populations: dict[str, dict] = {}
        if args.population:
            by_size, populations = run_populations(args, config, tmp_path)
            results |= by_size

    report = {
        "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "settings": {"workers": args.workers, "duration_s": args.duration,
                     "concurrency": args.concurrency, "fixed_rate_rps": args.rate, "rules": args.rules,
                     "rounds": args.rounds},
        "results": results,
    }
    if populations:
        # Load time, memory per profile and keys per profile, for the 200-rule corpus's aggregates.
        report["population"] = populations
        edges = [name for name in results if name.startswith("edge@")]
        if len(edges) >= 2:
            first, last = results[edges[0]]["saturation"], results[edges[-1]]["saturation"]
            ratio = f"{edges[-1][5:]}_vs_{edges[0][5:]}"
            report[f"throughput_{ratio}"] = round(last["rps"] / first["rps"], 3)
            # CPU per request hardly depends on what the neighbours do: the steadier comparison.
            for side in ("server", "redis"):
                key = f"{side}_cpu_us_per_request"
                report[f"{side}_cpu_{ratio}"] = round(last[key] / first[key], 3)
    for floor_name in ("floor", "pipelined"):
        if "edge" in results and floor_name in results:
            add_ratio(report, results["edge"], results[floor_name],
                      "edge_vs_floor" if floor_name == "floor" else "edge_vs_pipelined_floor")
    if "edge" in results and "baseline" in results:
        add_ratio(report, results["edge"], results["baseline"], "edge_vs_baseline")
        # CPU per request, worker and Redis together: what a change saves of the edge's work.
        mine, theirs = results["edge"]["saturation"], results["baseline"]["saturation"]
        report["edge_vs_baseline_cpu_per_request"] = round(
            (mine["server_cpu_us_per_request"] + mine["redis_cpu_us_per_request"])
            / (theirs["server_cpu_us_per_request"] + theirs["redis_cpu_us_per_request"]), 3)
    if "edge" in results and "edge@1" in results:
        add_ratio(report, results["edge"], results["edge@1"], f"edge_{args.workers}_workers_vs_1")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{report['date']}-{args.name}.json"
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
