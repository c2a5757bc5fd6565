"""The `kairos` command as a newcomer runs it: serve with the embedded Redis, and check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from edge.store.embedded import free_port
from tests.support import basic

KAIROS = [sys.executable, "-m", "edge.cli"]


def start_serve(config: Path, data_dir: Path, port: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*KAIROS, "serve", "--port", str(port), "--config", str(config), "--data-dir", str(data_dir), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited early:\n{process.stdout.read()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("serve did not become ready")


def stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGINT)
    try:
        out, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out


def test_serve_with_embedded_redis_keeps_profiles_across_restarts(example_config, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = tmp_path / "var"
    process = start_serve(example_config, data, port)
    try:
        wait_ready(url, process)
        r = httpx.post(f"{url}/v1/identify", headers=basic("demo-secret"),
                       json={"userId": "persist-me", "traits": {"first_name": "Pia"}})
        assert r.status_code == 200, r.text
        r = httpx.post(f"{url}/v1/page", headers=basic("demo"), json={"anonymousId": "v"})
        assert r.json()["slots"]["hero"]["rule"] == "welcome-first-visit"
    finally:
        log = stop(process)
    assert "demo keys" in log
    process = start_serve(example_config, data, port)
    try:
        wait_ready(url, process)
        r = httpx.get(f"{url}/v1/profiles/user:persist-me", headers=basic("demo-secret"))
        assert r.status_code == 200
        assert r.json()["traits"]["first_name"] == "Pia"
    finally:
        stop(process)


def test_serve_two_workers_against_external_redis(example_config, redis_url, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_serve(example_config, tmp_path / "unused", port, "--workers", "2", "--redis", redis_url,
                          "--no-worker")  # the suite's shared Redis: no worker beside it
    try:
        wait_ready(url, process)
        for i in range(20):
            r = httpx.post(f"{url}/v1/track", headers=basic("demo-secret"),
                           json={"userId": "two", "event": "Product Viewed", "messageId": f"w{i}",
                                 "properties": {"category": "shoes"}})
            assert r.status_code == 200
        profile = httpx.get(f"{url}/v1/profiles/user:two", headers=basic("demo-secret")).json()
        assert profile["aggregates"]["product_views_7d"] == 20
        assert not (tmp_path / "unused").exists()  # no embedded Redis was started
    finally:
        stop(process)


def test_serve_help_documents_the_options():
    out = subprocess.run([*KAIROS, "serve", "--help"], capture_output=True, text=True).stdout
    for option in ("--host", "--port", "--workers", "--config", "--redis"):
        assert option in out


def test_check_accepts_the_example_configuration():
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([*KAIROS, "check", str(root / "config")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok:")


def test_check_reports_file_line_column(example_config):
    bad = example_config / "rules" / "broken.yaml"
    bad.write_text("rules:\n  - id: broken\n    on: page\n    when: profile.visits >\n    actions: []\n")
    result = subprocess.run([*KAIROS, "check", str(example_config)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "rules/broken.yaml:4:" in result.stderr


def test_check_reports_bad_settings(example_config):
    path = example_config / "kairos.yaml"
    path.write_text(path.read_text().replace("scopes: [ingest,", "scopes: [ingestt,"))
    result = subprocess.run([*KAIROS, "check", str(example_config)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "unknown scope 'ingestt'" in result.stderr
