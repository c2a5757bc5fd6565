"""The `kairos` command: serve, check."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import rules
from edge.config import SettingsError, load_settings
from edge.rulebook import read_documents

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

    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve_command(args)
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
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    ruleset = rules.load_ruleset(documents)
    print(f"ok: {len(documents)} rule file(s), {ruleset.rule_count} rules, "
          f"{ruleset.segment_count} segments, {len(ruleset.aggregates)} aggregates maintained")
    return 0


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from edge.app import ENV_CONFIG, ENV_REDIS
    from edge.store.embedded import EmbeddedRedis

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if check_command(args.config) != 0:
        return 1
    embedded = None
    redis_url = args.redis
    if redis_url is None:
        embedded = EmbeddedRedis(Path(args.data_dir) / "redis")
        redis_url = embedded.start()
        log.info("embedded Redis on %s, data in %s", redis_url, embedded.data_dir)
    os.environ[ENV_CONFIG] = str(Path(args.config).resolve())
    os.environ[ENV_REDIS] = redis_url
    metrics_dir = None
    if args.workers > 1:
        # Metrics files are written on every request: keep them in memory where possible.
        shm = Path("/dev/shm")
        metrics_dir = tempfile.TemporaryDirectory(prefix="kairos-metrics-",
                                                  dir=str(shm) if shm.is_dir() else None)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir.name
    try:
        uvicorn.run("edge.app:create_app_from_env", factory=True, host=args.host, port=args.port,
                    workers=args.workers, log_level=args.log_level, access_log=False,
                    proxy_headers=True)
    finally:
        if embedded is not None:
            embedded.stop()
        if metrics_dir is not None:
            metrics_dir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
