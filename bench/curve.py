"""Latency against offered load: the edge's p50, p90, p99 and p99.9 from idle to overload.

Starts a local redis-server, preloads a population (bench/population.py),
starts the edge with the 200-rule corpus, measures its saturation throughput
with the closed loop, then offers fixed rates from a small fraction of that to
beyond it with the open loop (bench/loadgen.py: latency counted from each
request's scheduled time, so queueing shows). Each rate is run --repeat times,
in separate sweeps over all rates, and the median of each figure is kept:
on two shared cores one run near saturation can be several times slower than
the next. Runs during which other processes kept the machine busy are
recorded but left out of the median (see measured_point). Every run sends new messageIds, so none is answered as a cheap
duplicate.

Writes bench/results/<date>-latency-curve.json and a plot,
bench/results/<date>-latency-curve.png.

    python -m bench.curve [--population 10000] [--points 0.1,0.25,0.5,...] [--duration 3]
                          [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.http import CLOCK_TICKS, RESULTS, cpu_seconds, edge_command, load, stop, wait_up, write_config
from bench.population import load_and_measure
from bench.traffic import make_requests
from edge.store.embedded import EmbeddedRedis, free_port

DEFAULT_POINTS = "0.1,0.25,0.5,0.75,0.9,1.0,1.1,1.25,1.5"


def requests_file(path: Path, count: int, population: int, seed: int) -> str:
    path.write_bytes(orjson.dumps(make_requests(count, population=population, seed=seed)))
    return str(path)


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (every process, every core), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / CLOCK_TICKS  # minus idle and iowait


def measured_point(port: int, path: str, args: argparse.Namespace, edge_pid: int,
                   redis_pid: int) -> dict[str, Any]:
    """One open-loop run, with the CPU it cost and the CPU the neighbours took meanwhile.

    This machine is shared: a point where others kept the cores busy is slow
    for reasons of theirs, and `neighbour_cpu_share` says so.
    """
    def ours() -> float:
        loadgen = resource.getrusage(resource.RUSAGE_CHILDREN)  # the finished loadgen runs
        return cpu_seconds(edge_pid) + cpu_seconds(redis_pid) + loadgen.ru_utime + loadgen.ru_stime

    started, busy, own = time.monotonic(), machine_busy_seconds(), ours()
    point = load(port, path, "open", args)
    wall = time.monotonic() - started
    others = machine_busy_seconds() - busy - (ours() - own)
    point["neighbour_cpu_share"] = round(max(0.0, others) / (wall * (os.cpu_count() or 1)), 3)
    return point


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    config = write_config(tmp / "config", args.rules)
    with EmbeddedRedis(tmp / "redis", persistent=False) as server:
        population = load_and_measure(server.url, args.population, config, flush=True)
        port = free_port()
        process = subprocess.Popen(edge_command(port, args, config, server.url),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_up(port, process, "/readyz")
            # A first closed loop, thrown away: a cold edge (imports, caches, connections)
            # would set the saturation, and so every offered rate, too low.
            warm = requests_file(tmp / "warm.json", int((args.duration + args.warmup) * 20_000),
                                 args.population, seed=99)
            load(port, warm, "closed", args)
            closed = requests_file(tmp / "closed.json", int((args.duration + args.warmup) * 20_000),
                                   args.population, seed=100)
            saturation = load(port, closed, "closed", args)
            saturation.pop("sent", None)
            print(f"saturation: {saturation}", file=sys.stderr)
            fractions = [float(f) for f in args.points.split(",")]
            runs: list[list[dict[str, Any]]] = [[] for _ in fractions]
            # Sweeps rather than repeats in place: a slow spell of the machine then
            # touches one run of several points, not every run of one point.
            for sweep in range(args.repeat):
                for index, fraction in enumerate(fractions):
                    rate = max(1.0, round(fraction * saturation["rps"]))
                    count = int(rate * (args.duration + args.warmup)) + 1
                    # New messageIds every run: a repeat would be a cheap duplicate.
                    path = requests_file(tmp / "open.json", count, args.population,
                                         seed=1000 * (sweep + 1) + index)
                    run = measured_point(port, path,
                                         argparse.Namespace(**{**vars(args), "rate": rate}),
                                         process.pid, server.pid)
                    print(f"sweep {sweep + 1}, {fraction:.2f} x saturation: {run}", file=sys.stderr)
                    runs[index].append(run)
            points = [median_point(fraction, point_runs)
                      for fraction, point_runs in zip(fractions, runs)]
        finally:
            stop(process)
    return {"population": population, "saturation": saturation, "points": points}


BUSY_NEIGHBOURS = 0.1  # a run during which others used more of the machine is set aside


def median_point(fraction: float, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the runs of one offered rate, and the runs themselves.

    Runs during which neighbours kept more than a tenth of the machine busy are
    left out of the median, unless every run of the rate was such a run.
    """
    quiet = [run for run in runs if run["neighbour_cpu_share"] <= BUSY_NEIGHBOURS] or runs

    def median(key: str) -> float:
        values = sorted(run[key] for run in quiet)
        return values[len(values) // 2]

    return {"fraction_of_saturation": fraction, "offered_rps": runs[0]["offered_rps"],
            **{key: median(key) for key in ("rps", "p50_ms", "p90_ms", "p99_ms", "p999_ms")},
            "errors": sum(run["errors"] for run in quiet),
            "neighbour_cpu_share": max(run["neighbour_cpu_share"] for run in quiet),
            "runs_in_median": len(quiet), "runs": runs}


def plot(report: dict[str, Any], out: Path) -> None:
    """Percentiles against offered load (log latency axis), and achieved against offered."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    points = report["points"]
    offered = [p["offered_rps"] for p in points]
    saturation = report["saturation"]["rps"]
    figure, (latency, achieved) = plt.subplots(
        2, 1, figsize=(8, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    for key, label in (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"),
                       ("p999_ms", "p99.9")):
        latency.plot(offered, [p[key] for p in points], marker="o", label=label)
    for p in points:
        if p.get("neighbour_cpu_share", 0) > BUSY_NEIGHBOURS:
            # Other tenants held the cores during this point: its latency is partly theirs.
            latency.annotate(f"neighbours {p['neighbour_cpu_share']:.0%}", (p["offered_rps"], p["p999_ms"]),
                             xytext=(0, 6), textcoords="offset points", ha="center", fontsize=7,
                             color="grey")
    latency.set_yscale("log")
    latency.set_ylabel("latency (ms, from scheduled send)")
    latency.grid(True, which="both", alpha=0.3)
    for axis in (latency, achieved):
        axis.axvline(saturation, color="grey", linestyle="--", linewidth=1)
    latency.annotate(f"closed-loop saturation {saturation:,.0f} req/s", (saturation, 0.98),
                     xycoords=("data", "axes fraction"), xytext=(-4, -2), textcoords="offset points",
                     ha="right", va="top", fontsize=8,
                     color="grey")
    latency.legend()
    settings = report["settings"]
    latency.set_title(f"Kairos edge: latency against offered load\n"
                      f"{settings['rules']} rules, {settings['population']:,} profiles, "
                      f"{settings['workers']} workers, {report['machine']['cpus']} CPUs, "
                      f"{report['date']}", fontsize=10)
    achieved.plot(offered, offered, color="grey", linewidth=1, linestyle=":", label="offered")
    achieved.plot(offered, [p["rps"] for p in points], marker="o", color="black", label="answered")
    achieved.set_xlabel("offered load (req/s, open loop)")
    achieved.set_ylabel("req/s")
    achieved.grid(True, alpha=0.3)
    achieved.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--population", type=int, default=10_000)
    parser.add_argument("--points", default=DEFAULT_POINTS, help="fractions of the saturation rate")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per run")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per offered rate (in separate sweeps); the median is plotted")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--name", default="latency-curve")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kairos-curve-") as tmp:
        measured = measure(args, Path(tmp))
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "settings": {"workers": args.workers, "population": args.population, "rules": args.rules,
                     "duration_s": args.duration, "warmup_s": args.warmup, "repeat": args.repeat,
                     "concurrency": args.concurrency},
        **measured,
    }
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"{report['date']}-{args.name}"
    stem.with_suffix(".json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    plot(report, stem.with_suffix(".png"))
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
