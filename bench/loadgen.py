"""A small, fast HTTP/1.1 load generator for the benchmarks.

Why not locust here: locust spends ~1 ms of CPU per request in Python, so on a
2-core machine it saturates long before the edge does. This generator sends
pre-built raw requests over keep-alive connections with asyncio (uvloop when
available), spending a few µs per request, so the server is what gets measured.

Two modes:
- closed loop: C connections, each sends its next request when the previous
  answer arrives; measures saturation throughput.
- open loop: requests are scheduled at a fixed rate and latency is measured
  from the scheduled time, so a slow server cannot hide its queueing
  (no coordinated omission).

Run as a module; prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import orjson


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> "Connection":
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        if length:
            await self.reader.readexactly(length)
        return status


async def open_connections(host: str, port: int, count: int) -> list[Connection]:
    """Open connections a little apart: uvicorn's workers share one listening socket,
    and connections opened in a burst tend to be accepted by one worker only."""
    connections = []
    for _ in range(count):
        connections.append(await Connection.open(host, port))
        await asyncio.sleep(0.005)
    return connections


def build_requests(path_bodies: list[tuple[str, bytes]], auth: str, host: str) -> list[bytes]:
    out = []
    for path, body in path_bodies:
        out.append(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    return out


async def closed_loop(host: str, port: int, requests: list[bytes], concurrency: int,
                      duration: float, warmup: float) -> dict:
    connections = await open_connections(host, port, concurrency)
    latencies: list[float] = []
    errors = 0
    counter = 0
    measuring = False
    stop_at = time.perf_counter() + warmup + duration

    async def worker(conn: Connection) -> None:
        nonlocal counter, errors
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            request = requests[counter % len(requests)]
            counter += 1
            status = await conn.exchange(request)
            if measuring:
                latencies.append(time.perf_counter() - now)
                if status != 200:
                    errors += 1

    async def flip() -> float:
        nonlocal measuring
        await asyncio.sleep(warmup)
        measuring = True
        return time.perf_counter()

    flipper = asyncio.create_task(flip())
    await asyncio.gather(*(worker(c) for c in connections))
    elapsed = time.perf_counter() - await flipper
    for conn in connections:
        conn.writer.close()
    return summarize(latencies, errors, elapsed) | {"sent": counter}


async def open_loop(host: str, port: int, requests: list[bytes], rate: float, duration: float,
                    connections: int, warmup: float) -> dict:
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for conn in await open_connections(host, port, connections):
        idle.put_nowait(conn)
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    total = int(rate * (warmup + duration))
    warm_count = int(rate * warmup)
    tasks = []

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        conn = await idle.get()
        try:
            status = await conn.exchange(requests[i % len(requests)])
        finally:
            idle.put_nowait(conn)
        if i >= warm_count:
            latencies.append(time.perf_counter() - scheduled)
            if status != 200:
                errors += 1

    for i in range(total):
        scheduled = started + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started - warmup
    return summarize(latencies, errors, elapsed) | {"offered_rps": rate}


def summarize(latencies: list[float], errors: int, elapsed: float) -> dict:
    latencies.sort()
    ms = 1000.0
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(percentile(latencies, 0.50) * ms, 3),
        "p90_ms": round(percentile(latencies, 0.90) * ms, 3),
        "p99_ms": round(percentile(latencies, 0.99) * ms, 3),
        "p999_ms": round(percentile(latencies, 0.999) * ms, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--requests-file", required=True, help="JSON list of [path, body]")
    parser.add_argument("--auth", required=True)
    parser.add_argument("--mode", choices=["closed", "open"], default="closed")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    with open(args.requests_file, "rb") as fh:
        pairs = [(p, b.encode()) for p, b in orjson.loads(fh.read())]
    requests = build_requests(pairs, args.auth, f"{args.host}:{args.port}")
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    if args.mode == "closed":
        result = asyncio.run(closed_loop(args.host, args.port, requests, args.concurrency,
                                         args.duration, args.warmup))
    else:
        result = asyncio.run(open_loop(args.host, args.port, requests, args.rate, args.duration,
                                       args.concurrency, args.warmup))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
