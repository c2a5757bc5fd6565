"""The `kairos` command: serve, check, import."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

import rules
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

    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve_command(args)
    if args.command == "import":
        return import_catalog_command(args)
    return check_command(args.config)


def check_command(config_dir: str) -> int:
    try:
        settings = load_settings(config_dir)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 1
    documents = read_documents(settings.rules_dir)
    problems = rules.check_documents(documents)
    for problem in problems:
        print(problem, file=sys.stderr)
    warnings = sum(problem.warning for problem in problems)
    errors = len(problems) - warnings
    if errors:
        print(f"{_count(errors, 'error')} and {_count(warnings, 'warning')} found", file=sys.stderr)
        return 1
    ruleset = rules.load_ruleset(documents)
    print(f"ok: {len(documents)} rule file(s), {ruleset.rule_count} rules, "
          f"{ruleset.segment_count} segments, {len(ruleset.aggregates)} aggregates maintained"
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
        if embedded is not None:
            embedded.stop()
        if metrics_dir is not None:
            metrics_dir.cleanup()
    return 0


def _exit_after_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)  # a requested stop, as uvicorn treats SIGINT


def import_catalog_command(args: argparse.Namespace) -> int:
    import asyncio

    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    from edge.catalog.feed import (Feed, FeedError, ProgressBar, Summary, import_feed,
                                     print_summary)
    from edge.store.catalog import CatalogError, CatalogStore
    from edge.store.embedded import EmbeddedRedis

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
    embedded = None
    redis_url = args.redis
    if redis_url is None:
        # The server `kairos serve` runs on this data dir, if any: two servers on one
        # append-only file would corrupt it, and the running edge sees the products at once.
        data_dir = Path(args.data_dir) / "redis"
        redis_url = EmbeddedRedis.running_url(data_dir)
        if redis_url is None:
            embedded = EmbeddedRedis(data_dir)
            try:
                redis_url = embedded.start()
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


if __name__ == "__main__":
    sys.exit(main())
