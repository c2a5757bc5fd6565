"""Real headless Chromium against a real edge: fixtures.

The browser is the system's Chromium (Debian: `apt-get install chromium`),
driven by Playwright for Python; Playwright's own browser downloads are never
used. Without Chromium (or Playwright) these tests are skipped, except with
CI=true, where a missing browser fails them: CI must not pass by skipping.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson
import pytest
import redis

from edge.runtime.clock import SystemClock
from edge.store.embedded import free_port
from tests.support import LiveEdge, basic

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
# A desktop Chrome's User-Agent: the snippet sends nothing for "HeadlessChrome".
USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/126.0.0.0 Safari/537.36")
# The snippet also treats navigator.webdriver (set under automation) as a bot.
NOT_A_BOT = "Object.defineProperty(Navigator.prototype, 'webdriver', {get: () => false});"
STREAM = "kairos:events"
SECRET = "demo-secret"


def _chromium() -> str | None:
    configured = os.environ.get("KAIROS_CHROMIUM")
    for candidate in ([configured] if configured else []) + list(CHROMIUM_CANDIDATES):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true requires the browser tests to run")
    pytest.skip(reason)


# Package scope: Playwright's sync API runs an event loop in the main thread while
# it is started, so asyncio.run() in the other tests works only once it has stopped.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install playwright)")
    executable = _chromium()
    if executable is None:
        _unavailable("Chromium not found (apt-get install chromium, or set KAIROS_CHROMIUM)")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def live(redis_url: str, tmp_path: Path) -> Iterator[LiveEdge]:
    """The edge with the shipped example configuration, unchanged, on a free port: the
    example's origins name port 8000, and the demo must work on any port."""
    port = free_port()
    while port == 8000:
        port = free_port()
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    # Browser timestamps are real, so the edge's clock is too.
    with LiveEdge(config, redis_url, clock=SystemClock(), port=port) as edge:
        yield edge


@pytest.fixture
def context(browser: Any, live: LiveEdge) -> Iterator[Any]:
    ctx = browser.new_context(base_url=live.url, user_agent=USER_AGENT,
                              viewport={"width": 1100, "height": 800})
    ctx.add_init_script(NOT_A_BOT)
    ctx.set_default_timeout(5000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


# helpers ------------------------------------------------------------------------------------


def wait_for(check: Callable[[], Any], timeout: float = 4.0, interval: float = 0.05) -> Any:
    """Polls check() until it returns something truthy; fails with the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"timed out after {timeout} s waiting for {check}"
            return value
        time.sleep(interval)


def stream_events(client: redis.Redis) -> list[tuple[str, dict[str, Any]]]:
    """Every event the edge stored, in order: (profile id, normalized event)."""
    return [(fields[b"p"].decode(), orjson.loads(fields[b"e"]))
            for _id, fields in client.xrange(STREAM)]


def tracks(client: redis.Redis, anonymous_id: str | None = None) -> list[dict[str, Any]]:
    return [e for _p, e in stream_events(client)
            if e.get("type") == "track"
            and (anonymous_id is None or e.get("anonymousId") == anonymous_id)]


def visit_as(context: Any, live: LiveEdge, anonymous_id: str) -> None:
    """The visitor's anonymous id, as the edge's kairos_aid cookie would carry it."""
    context.add_cookies([{"name": "kairos_aid", "value": anonymous_id, "url": live.url}])


def server_call(live: LiveEdge, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """What a site's backend sends with the secret key."""
    response = live.http.post(path, json=body, headers=basic(SECRET))
    assert response.status_code == 200, response.text
    return response.json()


def stub(origin_expr: str = "location.origin", options: str | None = None) -> str:
    """The inline stub from snippet/dist/stub.min.js, pointed at the edge with the demo key."""
    text = (ROOT / "snippet" / "dist" / "stub.min.js").read_text().strip()
    args = f'{origin_expr},"demo"' + (f",{options}" if options else "")
    replaced, count = re.subn(r'"https://edge\.example\.com","WRITE_KEY"', lambda _m: args, text)
    assert count == 1, "the stub's placeholders changed"
    return replaced


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / name
    page.screenshot(path=str(target))
    return target
