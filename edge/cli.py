"""The `kairos` command: serve, worker, check, import (catalog, events), simulate, export,
lookalike."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import rules
from rules.problems import errors_of
from edge.runtime.config import SettingsError, load_settings
from edge.pipeline.rulebook import read_documents

log = logging.getLogger("kairos")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kairos", description="Kairos Edge: real-time personalization edge server.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the edge",
                                description="Run the edge HTTP server. Without --redis it starts "
                                            "the embedded Redis, keeping its data under ./var/.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument("--config", default="config", help="configuration folder holding kairos.yaml (default ./config)")
    serve.add_argument("--redis", metavar="URL", default=None,
                       help="external Redis, redis://HOST:PORT/DB or rediss://… "
                            "(default: start the embedded one)")
    serve.add_argument("--data-dir", default="var", help="where the embedded Redis keeps its data (default ./var)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--no-worker", action="store_true",
                       help="do not start the automation worker beside the edge")

    worker = commands.add_parser(
        "worker", help="run the automation worker",
        description="Run journeys: read the event stream through a consumer group (start as "
                    "many workers as you like), fire due timers and sweep calendar dates. "
                    "`kairos serve` starts one beside the edge unless given --no-worker.")
    worker.add_argument("--config", default="config", help="configuration folder (default ./config)")
    worker.add_argument("--redis", metavar="URL", default=None,
                        help="Redis (default: the embedded one `kairos serve` runs on --data-dir)")
    worker.add_argument("--data-dir", default="var", help="the embedded Redis's data (default ./var)")
    worker.add_argument("--name", default=None, help="consumer name in the group (default host-pid)")
    worker.add_argument("--clock-file", default=None, metavar="PATH",
                        help="read the time (epoch ms) from this file: for tests and rehearsals")
    worker.add_argument("--end-with-parent", type=int, default=None, metavar="PID",
                        help=argparse.SUPPRESS)
    worker.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    check = commands.add_parser("check", help="validate the configuration and the rules",
                                description="Validate kairos.yaml and every rule file; print "
                                            "file:line:column and the reason for each problem.")
    check.add_argument("config", nargs="?", default="config", help="configuration folder (default ./config)")

    importing = commands.add_parser("import", help="load data into Redis",
                                    description="Load data into the edge's Redis.")
    what = importing.add_subparsers(dest="what", required=True)
    catalog = what.add_parser(
        "catalog", help="import a product feed",
        description="Validate a product feed (.json, .jsonl or .csv, optionally .gz) and upsert "
                    "its products. Bad rows are skipped and listed; the exit status is 0 when "
                    "the file was read (1 with --strict if any row was rejected), 1 when the "
                    "file or Redis cannot be used.")
    catalog.add_argument("file", help="the feed file")
    catalog.add_argument("--config", default="config", help="configuration folder (default ./config)")
    catalog.add_argument("--redis", metavar="URL", default=None,
                         help="external Redis (default: the embedded one, as serve uses it)")
    catalog.add_argument("--data-dir", default="var", help="the embedded Redis's data (default ./var)")
    catalog.add_argument("--batch-size", type=int, default=500, help="products per write (default 500)")
    catalog.add_argument("--strict", action="store_true", help="exit 1 if any row was rejected")
    events = what.add_parser(
        "events", help="backfill history: events from another system",
        description="Import past events (a CRM's traits, loyalty points, a till's purchases, "
                    "tickets, registrations) from CSV or JSON Lines, optionally .gz, through "
                    "the edge's own checks and pipeline, at the events' own times. Imported "
                    "events deliver nothing and start, end or advance no journey. Bad rows "
                    "are skipped and listed; the exit status is 0 when the file was read (1 "
                    "with --strict if any row was rejected), 1 when the file or Redis cannot "
                    "be used.")
    events.add_argument("file", help="the events file (.csv, .jsonl or .ndjson, optionally .gz)")
    events.add_argument("--format", choices=["csv", "jsonl"], default=None,
                        help="the file's format (default: from its extension)")
    events.add_argument("--site", default=None,
                        help="the site the events belong to (default: the first in kairos.yaml)")
    events.add_argument("--config", default="config", help="configuration folder (default ./config)")
    events.add_argument("--redis", metavar="URL", default=None,
                        help="external Redis (default: the embedded one, as serve uses it)")
    events.add_argument("--data-dir", default="var", help="the embedded Redis's data (default ./var)")
    events.add_argument("--batch-size", type=int, default=500,
                        help="rows handed to the pipeline at once (default 500)")
    events.add_argument("--rejects", metavar="FILE", default=None,
                        help="write every rejected row here, one JSON object a line")
    events.add_argument("--strict", action="store_true", help="exit 1 if any row was rejected")
    events.add_argument("--quiet", action="store_true", help="no progress bar")

    exporting = commands.add_parser("export", help="send data out of the edge",
                                    description="Export data from the edge's Redis.")
    export_what = exporting.add_subparsers(dest="what", required=True)
    audience = export_what.add_parser(
        "audience", help="a segment as a hashed ad audience",
        description="Export a segment's consented members as a hashed audience in Google's "
                    "(Data Manager API) or Meta's (Custom Audiences) format: what changed "
                    "since the last export of the same audience, as adds and removes (all "
                    "members with --full). Writes one request a line (method, path, body) "
                    "unless --send is given, which sends them where the audience of that "
                    "name in kairos.yaml points (its folder or the platform's API).")
    audience.add_argument("segment", help="the rules' segment")
    audience.add_argument("--format", required=True, choices=["google", "meta"])
    audience.add_argument("--name", default=None,
                          help="the audience, for what was sent before (default: the one in "
                               "kairos.yaml for this segment and format, else SEGMENT-FORMAT)")
    audience.add_argument("--out", default="-", help="file for the requests (default: stdout)")
    audience.add_argument("--send", action="store_true",
                          help="send to the audience's folder or API instead of --out")
    audience.add_argument("--full", action="store_true", help="every member, not only changes")
    audience.add_argument("--dry-run", action="store_true",
                          help="count what would be sent; send and record nothing")
    audience.add_argument("--config", default="config", help="configuration folder (default ./config)")
    audience.add_argument("--redis", metavar="URL", default=None,
                          help="external Redis (default: the embedded one, as serve uses it)")
    audience.add_argument("--data-dir", default="var", help="the embedded Redis's data (default ./var)")

    lookalike = commands.add_parser(
        "lookalike", help="the people who look like a segment's members",
        description="Train a model (scikit-learn) of the seed segment's members against a "
                    "sample of everyone else, on what their profiles hold (recency, visits, "
                    "the rules' order and spend aggregates, categories viewed, channels); "
                    "score everyone else with an email or a phone, and write the top --size "
                    "as a stored segment that `kairos export audience` and the worker's "
                    "audiences export. With --export, export it at once.")
    lookalike.add_argument("--seed", required=True, help="the segment to grow (rules' or stored)")
    lookalike.add_argument("--size", type=int, required=True, help="how many people to write")
    lookalike.add_argument("--name", default=None,
                           help="the stored segment written (default SEED-lookalike)")
    lookalike.add_argument("--sample", type=int, default=None,
                           help="people outside the seed to train against (default 5 per seed "
                                "member, at most 50000)")
    lookalike.add_argument("--export", choices=["google", "meta"], default=None,
                           help="then export the segment as `kairos export audience` does")
    lookalike.add_argument("--out", default=None,
                           help="with --export: file for the requests (default: stdout)")
    lookalike.add_argument("--send", action="store_true",
                           help="with --export: send to the audience's folder or API in kairos.yaml")
    lookalike.add_argument("--config", default="config", help="configuration folder (default ./config)")
    lookalike.add_argument("--redis", metavar="URL", default=None,
                           help="external Redis (default: the embedded one, as serve uses it)")
    lookalike.add_argument("--data-dir", default="var", help="the embedded Redis's data (default ./var)")

    simulate = commands.add_parser(
        "simulate", help="replay recorded events through a journey",
        description="Replay recorded events through one journey on a simulated clock, with the "
                    "worker's own code against a scratch Redis: nothing is sent and nothing is "
                    "written to the live Redis. Reports how many entered, each step's outcomes, "
                    "what would be sent to whom at what local time, exits, goals and conversions.")
    simulate.add_argument("journey", help="the journey's id")
    simulate.add_argument("--from", dest="start", required=True, metavar="DATE",
                          help="start: a date (its first moment) or a time, on the site's clock "
                               "unless it names an offset")
    simulate.add_argument("--to", dest="end", required=True, metavar="DATE",
                          help="end: a date (through its last moment) or a time")
    simulate.add_argument("--events", metavar="FILE.jsonl", default=None,
                          help="recorded events, one Segment-style event a line (default: the "
                               "live event stream within the window, read-only)")
    simulate.add_argument("--config", default="config", help="configuration folder (default ./config)")
    source = simulate.add_mutually_exclusive_group()
    source.add_argument("--redis", metavar="URL", default=None,
                        help="the Redis whose event stream is replayed (without --events)")
    source.add_argument("--data-dir", default=None,
                        help="the embedded Redis's data, as serve uses it (default ./var)")
    simulate.add_argument("--json", action="store_true", help="print the report as JSON")

    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve_command(args)
    if args.command == "worker":
        return worker_command(args)
    if args.command == "import":
        return import_events_command(args) if args.what == "events" else import_catalog_command(args)
    if args.command == "simulate":
        return simulate_command(args)
    if args.command == "export":
        return export_audience_command(args)
    if args.command == "lookalike":
        return lookalike_command(args)
    return check_command(args.config)


def check_command(config_dir: str) -> int:
    try:
        settings = load_settings(config_dir)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 1
    documents = read_documents(settings.rules_dir, settings.scenarios_dir)
    problems = rules.check_documents(documents)
    for problem in problems:
        print(problem, file=sys.stderr)
    warnings = sum(problem.warning for problem in problems)
    errors = len(problems) - warnings
    if errors:
        print(f"{_count(errors, 'error')} and {_count(warnings, 'warning')} found", file=sys.stderr)
        return 1
    from edge.pipeline.journeybook import check_journeys
    from edge.pipeline.rulebook import Rulebook

    journeys, journey_problems = check_journeys(
        settings.journeys_dir, Rulebook(settings.rules_dir, settings.scenarios_dir))
    for problem in journey_problems:
        print(problem, file=sys.stderr)
    journey_errors = len(errors_of(journey_problems))
    if journey_errors:
        print(f"{_count(journey_errors, 'error')} in journeys found", file=sys.stderr)
        return 1
    ruleset = rules.load_ruleset(documents)
    segment_ids = {segment.id for segment in ruleset.segments}
    unknown = [(name, audience.segment) for name, audience in settings.audiences.items()
               if audience.segment not in segment_ids and not audience.stored]
    if unknown:
        from edge.runtime import config_errors
        from edge.runtime.config import CONFIG_FILE_NAME

        path = Path(settings.config_dir) / CONFIG_FILE_NAME
        root = config_errors.compose(path.read_text(encoding="utf-8"))
        for name, segment in unknown:
            print(config_errors.located(path, root, ("audiences", name, "segment"),
                                        f"no segment {segment!r} in the rules"), file=sys.stderr)
        return 1
    print(f"ok: {len(documents)} rule file(s), {ruleset.rule_count} rules, "
          f"{ruleset.segment_count} segments, {len(ruleset.aggregates)} aggregates maintained, "
          f"{_count(len(journeys), 'journey')}"
          + (f"; {_count(warnings, 'warning')}" if warnings else ""))
    return 0


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from edge.app import ENV_CONFIG, ENV_REDIS
    from edge.store.embedded import EmbeddedRedis

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if check_command(args.config) != 0:
        return 1
    # Once it has shut down, uvicorn raises the signal it stopped on again; SIGTERM's
    # default action would end the process before the finally below stops Redis.
    signal.signal(signal.SIGTERM, _exit_after_sigterm)
    embedded = None
    redis_url = args.redis
    if redis_url is None:
        # Started here, in the main thread of the process that outlives the workers
        # (with --workers, uvicorn's supervisor), which Redis's life is tied to.
        embedded = EmbeddedRedis(Path(args.data_dir) / "redis")
        try:
            redis_url = embedded.start()
        except RuntimeError as exc:
            print(f"kairos serve: {exc}", file=sys.stderr)
            return 1
        log.info("embedded Redis on %s, data in %s", redis_url, embedded.data_dir)
        embedded.supervise()
    metrics_dir = None
    worker = None
    if not args.no_worker:
        from edge.worker.beside import WorkerProcess

        worker = WorkerProcess(str(Path(args.config).resolve()), redis_url, args.log_level)
        worker.start()
    try:
        os.environ[ENV_CONFIG] = str(Path(args.config).resolve())
        os.environ[ENV_REDIS] = redis_url
        if args.workers > 1:
            # Each worker writes its metrics files about once a second: keep them in memory where possible.
            shm = Path("/dev/shm")
            metrics_dir = tempfile.TemporaryDirectory(prefix="kairos-metrics-",
                                                      dir=str(shm) if shm.is_dir() else None)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir.name
        uvicorn.run("edge.app:create_app_from_env", factory=True, host=args.host, port=args.port,
                    workers=args.workers, log_level=args.log_level, access_log=False,
                    proxy_headers=True)
    finally:
        if worker is not None:
            worker.stop()
        if embedded is not None:
            embedded.stop()
        if metrics_dir is not None:
            metrics_dir.cleanup()
    return 0


def event_loop_factory() -> Any:
    """uvloop where it is installed (as uvicorn's standard extra installs it for the
    edge): the worker's loops are mostly Redis round trips, which it runs with less
    CPU. The standard loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def worker_command(args: argparse.Namespace) -> int:
    import asyncio

    from edge.runtime import lifetime
    from edge.runtime.clock import FileClock, SystemClock
    from edge.store.embedded import EmbeddedRedis
    from edge.worker.service import Worker

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if args.end_with_parent is not None:
        lifetime.end_with_parent(args.end_with_parent)
    if check_command(args.config) != 0:
        return 1
    settings = load_settings(args.config)
    redis_url = args.redis or EmbeddedRedis.running_url(Path(args.data_dir) / "redis")
    if redis_url is None:
        print(f"kairos worker: no Redis: pass --redis, or start `kairos serve` on "
              f"{args.data_dir} first", file=sys.stderr)
        return 1
    clock = FileClock(args.clock_file) if args.clock_file else SystemClock()

    async def run() -> None:
        worker = Worker(settings, redis_url, clock, args.name)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        await worker.run()

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(run())
    return 0


def simulate_command(args: argparse.Namespace) -> int:
    from edge.store.embedded import EmbeddedRedis
    from edge.worker.simulate import (SimulationError, events_from_file, events_from_stream,
                                      find_journey, format_report, parse_moment, simulate)

    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 1
    zone = next(iter(settings.sites.values())).timezone if settings.sites else "UTC"
    embedded = None
    try:
        start = parse_moment(args.start, zone, "--from")
        end = parse_moment(args.end, zone, "--to", end_of_day=True)
        if end <= start:
            raise SimulationError(f"--to ({args.end}) must be later than --from ({args.start})")
        find_journey(settings, args.journey)  # before any Redis is started or read
        if args.events is not None:
            events = events_from_file(args.events)
        else:
            redis_url = args.redis
            if redis_url is None:
                data_dir = Path(args.data_dir or "var") / "redis"
                redis_url = EmbeddedRedis.running_url(data_dir)
                if redis_url is None:
                    if not data_dir.is_dir():
                        raise SimulationError(f"no events: {data_dir} holds no Redis data; "
                                              f"pass --events FILE.jsonl or --redis URL")
                    embedded = EmbeddedRedis(data_dir)
                    redis_url = embedded.start()
            events = events_from_stream(redis_url, settings.stream.key, start, end)
            if embedded is not None:
                embedded.stop()
                embedded = None
        report = simulate(settings, args.journey, start, end, events)
    except (SimulationError, RuntimeError, rules.RulesInvalid) as exc:
        message = "\n".join(str(p) for p in exc.problems) if isinstance(exc, rules.RulesInvalid) else exc
        print(f"kairos simulate: {message}", file=sys.stderr)
        return 1
    finally:
        if embedded is not None:
            embedded.stop()
    print(report.to_json().decode() if args.json else format_report(report))
    return 0


def _exit_after_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)  # a requested stop, as uvicorn treats SIGINT


def export_audience_command(args: argparse.Namespace) -> int:
    import asyncio

    import orjson
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    from edge.connectors.http import HttpClient
    from edge.runtime.config import AudienceSettings
    from edge.store.embedded import EmbeddedRedis
    from edge.worker import audiences

    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 1
    configured = {name: audience for name, audience in settings.audiences.items()
                  if audience.segment == args.segment and audience.format == args.format}
    name = args.name or next(iter(configured), f"{args.segment}-{args.format}")
    audience = settings.audiences.get(name) or AudienceSettings(args.segment, args.format)
    if (audience.segment, audience.format) != (args.segment, args.format):
        print(f"kairos export audience: {name} exports {audience.segment} as "
              f"{audience.format}", file=sys.stderr)
        return 1
    if args.send and name not in settings.audiences:
        print(f"kairos export audience: --send needs audiences.{name} in kairos.yaml",
              file=sys.stderr)
        return 1
    redis_url = args.redis or EmbeddedRedis.running_url(Path(args.data_dir) / "redis")
    if redis_url is None:
        print(f"kairos export audience: no Redis: pass --redis, or start `kairos serve` on "
              f"{args.data_dir} first", file=sys.stderr)
        return 1
    out = sys.stdout.buffer if args.out == "-" else open(args.out, "wb")

    async def write(request: Any) -> None:
        out.write(orjson.dumps({"method": request.method, "path": request.path,
                                "body": request.body}) + b"\n")

    async def run() -> Any:
        client = aioredis.from_url(redis_url, decode_responses=False)
        http = HttpClient()
        try:
            send = audiences.sender_for(settings, name, audience, int(time.time() * 1000),
                                        http, dict(os.environ)) if args.send else write
            return await audiences.export_audience(client, settings, name, audience, send,
                                                   full=args.full, dry_run=args.dry_run)
        finally:
            await http.close()
            await client.aclose()

    try:
        report = asyncio.run(run())
    except (RedisError, OSError, audiences.ExportFailed) as exc:
        print(f"kairos export audience: {exc}", file=sys.stderr)
        return 1
    finally:
        if out is not sys.stdout.buffer:
            out.close()
        else:
            out.flush()
    print(orjson.dumps(report.as_dict()).decode(), file=sys.stderr)
    return 0


def lookalike_command(args: argparse.Namespace) -> int:
    import asyncio

    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    from edge.pipeline.rulebook import build
    from edge.store.embedded import EmbeddedRedis
    from edge.store.profiles import ProfileStore, StoreError
    from edge.worker.lookalike import LookalikeError, build_lookalike
    from edge.worker.lookalike.build import check_request

    name = args.name or f"{args.seed}-lookalike"
    try:
        settings = load_settings(args.config)
        active = build(read_documents(settings.rules_dir, settings.scenarios_dir))
        check_request(active, args.seed, args.size, name, args.sample)
        if args.export is None and (args.send or args.out is not None):
            raise LookalikeError("--send and --out are for --export")
        if args.send and not any(audience.segment == name and audience.format == args.export
                                 for audience in settings.audiences.values()):
            raise LookalikeError(f"--send: no audience in kairos.yaml exports {name} as "
                                 f"{args.export} (segment: {name}, stored: true)")
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 1
    except rules.RulesInvalid as invalid:
        print("\n".join(str(problem) for problem in invalid.problems), file=sys.stderr)
        return 1
    except LookalikeError as exc:
        print(f"kairos lookalike: {exc}", file=sys.stderr)
        return 1
    redis_url = args.redis or EmbeddedRedis.running_url(Path(args.data_dir) / "redis")
    if redis_url is None:
        print(f"kairos lookalike: no Redis: pass --redis, or start `kairos serve` on "
              f"{args.data_dir} first", file=sys.stderr)
        return 1
    site = next(iter(settings.sites.values()), None)

    async def run() -> Any:
        client = aioredis.from_url(redis_url, decode_responses=False)
        store = ProfileStore(client, settings, redis_url)
        try:
            return await build_lookalike(
                client, store, active, site.consent_defaults if site else {}, args.seed,
                args.size, name, int(time.time() * 1000), sample=args.sample)
        finally:
            store.batcher.close()
            await client.aclose()

    try:
        report = asyncio.run(run())
    except LookalikeError as exc:
        print(f"kairos lookalike: {exc}", file=sys.stderr)
        return 1
    except (RedisError, OSError, StoreError) as exc:
        print(f"kairos lookalike: Redis: {exc}", file=sys.stderr)
        return 1
    # the export's requests may go to stdout: the report then goes beside its own
    out = args.out or "-"
    requests_on_stdout = args.export is not None and not args.send and out == "-"
    print("\n".join(report.lines()), file=sys.stderr if requests_on_stdout else sys.stdout)
    if args.export is None:
        return 0
    return export_audience_command(argparse.Namespace(
        segment=name, format=args.export, name=None, out=out, send=args.send,
        full=False, dry_run=False, config=args.config, redis=redis_url,
        data_dir=args.data_dir))


def import_catalog_command(args: argparse.Namespace) -> int:
    import asyncio

    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    from edge.catalog.feed import (Feed, FeedError, ProgressBar, Summary, import_feed,
                                     print_summary)
    from edge.store.catalog import CatalogError, CatalogStore

    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 1
    path = Path(args.file)
    try:
        feed = Feed(path)  # a file that cannot be opened fails here, before Redis starts
    except FeedError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        redis_url, embedded = _import_redis(args)
    except RuntimeError as exc:
        feed.close()
        print(exc, file=sys.stderr)
        return 1

    async def run() -> Summary:
        client = aioredis.from_url(redis_url, decode_responses=False)
        try:
            store = CatalogStore(client, settings)
            progress = ProgressBar(sys.stderr, f"importing {path.name}")
            return await import_feed(feed, store, max(1, args.batch_size), progress)
        finally:
            await client.aclose()

    try:
        summary = asyncio.run(run())
    except (RedisError, OSError, CatalogError) as exc:
        print(f"\nRedis: {exc}", file=sys.stderr)
        return 1
    finally:
        feed.close()
        if embedded is not None:
            embedded.stop()
    print_summary(summary, path)
    if summary.error:
        return 1
    return 1 if args.strict and summary.rejected else 0


def _import_redis(args: argparse.Namespace) -> tuple[str, Any]:
    """The Redis an import writes to: --redis, else the one `kairos serve` runs on the data
    dir (two servers on one append-only file would corrupt it, and the running edge sees
    what is imported at once), else an embedded one started for the import, returned too
    so that the caller stops it. Raises RuntimeError when none can be started."""
    from edge.store.embedded import EmbeddedRedis

    if args.redis is not None:
        return args.redis, None
    data_dir = Path(args.data_dir) / "redis"
    running = EmbeddedRedis.running_url(data_dir)
    if running is not None:
        return running, None
    embedded = EmbeddedRedis(data_dir)
    return embedded.start(), embedded


def import_events_command(args: argparse.Namespace) -> int:
    import asyncio

    from redis.exceptions import RedisError
    from tqdm import tqdm

    from edge.ingest.event_file import EventFile, EventFileError
    from edge.pipeline.importer import (Report, import_events, importer_caller, pipeline_on,
                                        print_report)
    from edge.runtime.clock import SystemClock
    from edge.store.catalog import CatalogError
    from edge.store.profiles import StoreError

    name = "kairos import events"
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 1
    site = args.site or next(iter(settings.sites), None)
    if site not in settings.sites:
        known = ", ".join(settings.sites) or "none"
        print(f"{name}: --site: no site {site!r} in kairos.yaml (sites: {known})", file=sys.stderr)
        return 1
    path = Path(args.file)
    try:
        source = EventFile(path, args.format)  # fails before Redis starts
    except EventFileError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    rejects = None
    embedded = None
    try:
        if args.rejects is not None:
            rejects = open(args.rejects, "wb")
        redis_url, embedded = _import_redis(args)
    except (OSError, RuntimeError) as exc:
        source.close()
        if rejects is not None:
            rejects.close()
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    bar = tqdm(total=source.size, desc=f"importing {path.name}", unit="B", unit_scale=True,
               unit_divisor=1024, file=sys.stderr,
               disable=args.quiet or not sys.stderr.isatty())

    def progress(position: int, report: Report) -> None:
        bar.update(max(0, position - bar.n))
        bar.set_postfix(rows=report.read, imported=report.imported, rejected=report.rejected)

    async def run() -> Report:
        clock = SystemClock()
        async with pipeline_on(settings, redis_url, clock) as pipeline:
            return await import_events(source, pipeline, importer_caller(settings, site),
                                       settings.limits, max(1, args.batch_size), progress,
                                       rejects)

    try:
        report = asyncio.run(run())
    except rules.RulesInvalid as invalid:
        print("\n".join(str(problem) for problem in invalid.problems), file=sys.stderr)
        return 1
    except (RedisError, OSError, StoreError, CatalogError) as exc:
        print(f"{name}: Redis: {exc}", file=sys.stderr)
        return 1
    finally:
        bar.close()
        source.close()
        if rejects is not None:
            rejects.close()
        if embedded is not None:
            embedded.stop()
    print_report(report, os.fspath(path), sys.stdout, args.rejects)
    if report.error:
        return 1
    return 1 if args.strict and report.rejected else 0


if __name__ == "__main__":
    sys.exit(main())
