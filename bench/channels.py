"""Channels benchmark: messages per second one `kairos worker` process delivers through
each connector to local servers, side by side in one run.

For each case: a fresh Redis; --people profiles (an email address, consent) made
through the real edge (`kairos serve --no-worker`, /v1/batch identify); --messages
outbox messages appended; then one `kairos worker` starts and we time it from its
first delivered message to the last (`kairos:delivery:stats`), with its CPU.
Each message goes through the whole path: ledger claim, the profile read again for
consent and address, suppression, the connector, the ledger's outcome, the status
event through the edge's pipeline, the acknowledgement.

- email: SMTP to an aiosmtpd server in its own process (multipart MIME, inlined CSS,
  tracking links signed), with a pool of 1 and of 8 connections;
- webhook: Standard Webhooks signatures, to a Starlette receiver in its own process;
- sms: the Twilio-compatible Messages API (form-encoded, Basic auth, E.164), to a
  receiver answering as Twilio does;
- push: Web Push with a VAPID token and the payload encrypted per subscription
  (aes128gcm), over TLS to a receiver answering as a push service does.

Targets on the 2-core machine: at least 300 emails/s and 1,000 webhooks/s per process.
Writes bench/results/<date>-channels.json and prints a table.

    python -m bench.channels [--messages 3000] [--people 1000]
"""

from __future__ import annotations

import argparse
import base64
import datetime
import os
import platform
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import redis

from bench.automation import ROOT, SETTINGS, Edge, write_config
from bench.http import cpu_seconds, stop
from edge.store import streams
from edge.store.embedded import EmbeddedRedis, free_port
from tests.push_service import Browser, VapidKey, self_signed

RESULTS = ROOT / "bench" / "results"
VAPID = VapidKey()
TARGETS = {"email": 300, "webhook": 1_000}
HOOK_SECRET = "whsec_" + base64.b64encode(b"bench-webhook-secret-0123456789").decode()
TWILIO_SID = "AC" + "0" * 32
BODY = ('<p>Hi {name}, the <a href="https://shop.example/new">new collection</a> is here, '
        'and <a href="https://shop.example/sale">the sale</a> ends soon.</p>')
TEXT = "The new collection is here, and the sale ends on Sunday: https://shop.example/sale"

SMTP_SINK = textwrap.dedent("""
    import sys, time
    from aiosmtpd.controller import Controller
    class Sink:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK: queued as B1"
    controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
    controller.start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)
""")
WEBHOOK_SINK = textwrap.dedent("""
    import sys, uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route
    async def hook(request):
        await request.body()
        return Response(status_code=204)
    app = Starlette(routes=[Route("/hooks", hook, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
""")
SMS_SINK = textwrap.dedent("""
    import itertools, sys, uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    ids = itertools.count()
    async def message(request):
        form = await request.form()
        return JSONResponse({"sid": f"SM{next(ids):032x}", "status": "queued",
                             "to": form["To"]}, status_code=201)
    app = Starlette(routes=[Route("/2010-04-01/Accounts/{sid}/Messages.json", message,
                                  methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
""")
PUSH_SINK = textwrap.dedent("""
    import itertools, sys, uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route
    ids = itertools.count()
    async def push(request):
        await request.body()
        return Response(status_code=201, headers={"location": f"/m/{next(ids)}"})
    app = Starlette(routes=[Route("/push/{id}", push, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                ssl_certfile=sys.argv[2], ssl_keyfile=sys.argv[3])
""")


class Sinks(NamedTuple):
    smtp_port: int
    hook_url: str
    sms_url: str
    push_origin: str
    ca_file: Path


def start_sink(source: str, port: int, *extra: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", source, str(port), *extra], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("a sink did not start") from None
            time.sleep(0.05)


def config_for(root: Path, sinks: Sinks, pool: int) -> Path:
    config = write_config(root, {})
    settings = SETTINGS.replace("    timezone: Europe/Prague",
                                "    timezone: Europe/Prague\n    email_from: Bench <b@bench.example>\n"
                                f"    vapid_public_key: {VAPID.public_text}")
    settings += f"""
delivery:
  public_url: https://edge.bench.example
  batch: 500
  email: {{ host: 127.0.0.1, port: {sinks.smtp_port}, pool: {pool} }}
  webhooks:
    concurrency: 8
    endpoints:
      sink: {{ url: "{sinks.hook_url}", secret_env: BENCH_HOOK_SECRET }}
  sms:
    base_url: "{sinks.sms_url}"
    account_sid_env: BENCH_TWILIO_SID
    auth_token_env: BENCH_TWILIO_TOKEN
    sender: "+15005550006"
    concurrency: 32
  push:
    private_key_env: BENCH_VAPID_KEY
    subject: mailto:bench@bench.example
    push_hosts: ["127.0.0.1"]
    ca_file: "{sinks.ca_file}"
    concurrency: 32
"""
    (config / "kairos.yaml").write_text(settings)
    return config


def people_events(people: int, push_origin: str) -> list[dict[str, Any]]:
    """An email address and a phone number for each person, and a push subscription
    (each with its own browser keys, as the payload is encrypted for each)."""
    events: list[dict[str, Any]] = []
    for i in range(people):
        events.append({"type": "identify", "userId": f"u{i}", "messageId": f"id-{i}",
                       "traits": {"email": f"u{i}@bench.example", "first_name": f"P{i}",
                                  "phone": f"+420603{i:06d}"}})
        browser = Browser(f"{push_origin}/push/s{i}")
        events.append({"type": "track", "userId": f"u{i}", "messageId": f"push-{i}",
                       "event": "Push Subscribed",
                       "properties": {"subscription": browser.subscription()}})
    return events


def queue(client: redis.Redis, channel: str, messages: int, people: int, url: str) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(messages):
        person = i % people
        message = streams.OutboundMessage(
            profile_id=f"user:u{person}", message_id=f"{channel}-{i}", timestamp=int(time.time() * 1000),
            rule="bench", channel=channel, title="News",
            body=BODY.format(name=f"P{person}") if channel == "email" else TEXT,
            link=url if channel == "webhook" else "https://shop.example/sale")
        pipe.xadd(streams.OUTBOX, streams.encode(message))
        if len(pipe) >= 1000:
            pipe.execute()
    pipe.execute()


def delivered(client: redis.Redis) -> int:
    return sum(int(v) for v in client.hgetall("kairos:delivery:stats").values())


def run_case(tmp: Path, name: str, channel: str, pool: int, messages: int,
             people: list[dict[str, Any]], sinks: Sinks) -> dict[str, Any]:
    with EmbeddedRedis(tmp / f"redis-{name}", persistent=False) as server:
        config = config_for(tmp / f"config-{name}", sinks, pool)
        with Edge(config, server.url) as edge:
            edge.ingest(people)
        client = redis.Redis.from_url(server.url)
        queue(client, channel, messages, sum(e["type"] == "identify" for e in people),
              sinks.hook_url)
        log = open(tmp / f"worker-{name}.log", "wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "worker", "--config", str(config), "--redis",
             server.url, "--name", "bench", "--log-level", "warning"], cwd=ROOT, stdout=log,
            stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 600
            while (first := delivered(client)) == 0:
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError(f"{name}: nothing delivered; see {log.name}")
                time.sleep(0.005)
            started, cpu_before = time.perf_counter(), cpu_seconds(worker.pid)
            while (done := delivered(client)) < messages:
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError(f"{name}: {done} of {messages} delivered")
                time.sleep(0.005)
            seconds = time.perf_counter() - started
            cpu = cpu_seconds(worker.pid) - cpu_before
            outcomes = {k.decode(): int(v) for k, v in client.hgetall("kairos:delivery:stats").items()}
        finally:
            stop(worker)
            log.close()
            client.close()
    counted = messages - first
    return {"case": name, "channel": channel, "pool": pool, "messages": messages,
            "seconds": round(seconds, 3), "per_s": round(counted / seconds) if seconds else None,
            "worker_cpu_us_per_message": round(cpu / counted * 1e6, 1) if counted else None,
            "outcomes": outcomes}


CASES = (("email-pool-1", "email", 1), ("email-pool-8", "email", 8), ("webhook", "webhook", 1),
         ("sms", "sms", 1), ("push", "push", 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3_000)
    parser.add_argument("--people", type=int, default=1_000)
    parser.add_argument("--cases", nargs="*", default=None, metavar="CASE",
                        help="run only these (email-pool-1 email-pool-8 webhook sms push)")
    args = parser.parse_args()
    # every process loading the config checks these
    os.environ.update(BENCH_HOOK_SECRET=HOOK_SECRET, BENCH_TWILIO_SID=TWILIO_SID,
                      BENCH_TWILIO_TOKEN="bench-token", BENCH_VAPID_KEY=VAPID.private_text)
    started = time.perf_counter()
    smtp_port, hook_port, sms_port, push_port = free_port(), free_port(), free_port(), free_port()
    processes: list[subprocess.Popen] = []
    try:
        with tempfile.TemporaryDirectory(prefix="kairos-bench-channels-") as tmp:
            cert, key = self_signed(Path(tmp))
            sinks = Sinks(smtp_port, f"http://127.0.0.1:{hook_port}/hooks",
                          f"http://127.0.0.1:{sms_port}", f"https://127.0.0.1:{push_port}", cert)
            processes += [start_sink(SMTP_SINK, smtp_port), start_sink(WEBHOOK_SINK, hook_port),
                          start_sink(SMS_SINK, sms_port),
                          start_sink(PUSH_SINK, push_port, str(cert), str(key))]
            people = people_events(args.people, sinks.push_origin)
            cases = [run_case(Path(tmp), name, channel, pool, args.messages, people, sinks)
                     for name, channel, pool in CASES
                     if args.cases is None or name in args.cases]
    finally:
        for process in processes:
            stop(process)
    best = {channel: max((c["per_s"] or 0 for c in cases if c["channel"] == channel), default=0)
            for channel in TARGETS}
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "settings": {"messages": args.messages, "people": args.people},
        "cases": cases,
        "targets": {channel: {"measured_per_s": best[channel], "target_per_s": target,
                              "met": best[channel] >= target}
                    for channel, target in TARGETS.items()},
        "run_seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{report['date']}-channels.json"
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"{'case':<14} {'per s':>7} {'cpu µs/msg':>11}")
    for case in cases:
        print(f"{case['case']:<14} {case['per_s']:>7} {case['worker_cpu_us_per_message']:>11}")
    for channel, verdict in report["targets"].items():
        print(f"{channel}: {verdict['measured_per_s']}/s, target {verdict['target_per_s']}/s "
              f"{'met' if verdict['met'] else 'MISSED'}")
    print(f"run: {report['run_seconds']} s; written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
