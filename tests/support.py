"""Test helpers: a live edge server in a background thread, and a test configuration."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from edge.app import create_app
from edge.runtime.clock import FakeClock
from edge.runtime.config import load_settings
from edge.store.embedded import free_port

ORIGIN = "http://shop.test"
PUBLIC_KEY = "pk-test"
SECRET_KEY = "sk-test"
READ_ONLY_KEY = "sk-readonly"
USER_HASH_SECRET = "test-user-hash-secret"
VAPID_PUBLIC_KEY = "BDNP63fL68TKw3qsNcMnNRTAoBM9OSt12KXqnuMoCAf1tNSzhQEzAMMajhKVU_JkfdtZbKM-wAvYjAyckO9IvFE"

SETTINGS_YAML = f"""
sites:
  shop:
    name: Test shop
    write_keys: [{PUBLIC_KEY}]
    origins: ["{ORIGIN}"]
    user_hash_secret: {USER_HASH_SECRET}
    timezone: Europe/Prague
    vapid_public_key: {VAPID_PUBLIC_KEY}
secret_keys:
  {SECRET_KEY}:
    site: shop
    scopes: [ingest, profiles:read, profiles:delete, admin, metrics]
  {READ_ONLY_KEY}:
    site: shop
    scopes: [profiles:read]
rules: rules
demo:
  enabled: true
  site: shop
limits:
  max_body_bytes: 65536
  max_batch_events: 50
  max_depth: 5
  max_properties: 40
  max_string_length: 500
  max_id_length: 100
profiles:
  max_traits: 10
"""

RULES_YAML = """
aggregates:
  views_1h:      { count: Product Viewed, window: 60m }
  views_7d:      { count: Product Viewed, window: 7d }
  shoe_views_1d: { count: Product Viewed, where: 'event.properties.category == "shoes"', window: 1d }
  spend_30d:     { sum: Order Completed, of: properties.revenue, window: 30d }
  cats_30d:      { distinct: Product Viewed, of: properties.category, window: 30d }
  last_cat:      { last: Product Viewed, of: properties.category, window: 30d }
  unused_1d:     { count: Never Referenced, window: 1d }
segments:
  - id: viewer
    when: aggregates.views_7d >= 3
  - id: spender
    when: aggregates.spend_30d >= 100
rules:
  - id: hello
    on: page
    when: traits.first_name != null
    priority: 5
    actions:
      - slot: hero
        html: "<p>Hello {{ traits.first_name }}</p>"
  - id: first-visit
    on: page
    priority: 1
    actions:
      - slot: hero
        html: "<p>Welcome</p>"
  - id: shoes
    on: Product Viewed
    when: aggregates.shoe_views_1d >= 2
    actions:
      - message: { type: modal, title: "Shoes!", body: "You viewed {{ aggregates.shoe_views_1d }} shoes" }
  - id: summary
    on: track
    actions:
      - slot: stats
        json: { views: "{{ aggregates.views_1h }}", cats: "{{ aggregates.cats_30d }}", last: "{{ aggregates.last_cat }}", spend: "{{ aggregates.spend_30d }}" }
  - id: buyer
    on: Order Completed
    actions:
      - push: { title: "Thanks", body: "Order received", link: "app://orders" }
      - set_trait: { customer: true }
      - tag: buyer
"""


def write_config(target: Path, rules_yaml: str = RULES_YAML, settings_yaml: str = SETTINGS_YAML) -> Path:
    (target / "rules").mkdir(parents=True, exist_ok=True)
    (target / "kairos.yaml").write_text(settings_yaml)
    (target / "rules" / "test.yaml").write_text(rules_yaml)
    return target


def basic(key: str) -> dict[str, str]:
    token = base64.b64encode(f"{key}:".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class LiveEdge:
    """The edge app served by uvicorn on a free port in a background thread."""

    def __init__(self, config_dir: Path, redis_url: str, clock: Any = None,
                 port: int | None = None) -> None:
        """clock: a FakeClock by default; port: a free one by default (pass one to
        write a configuration naming this server's origin before it starts)."""
        self.config_dir = config_dir
        self.redis_url = redis_url
        self.clock = clock or FakeClock()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(load_settings(config_dir), redis_url, clock=self.clock)
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                     log_level="warning", lifespan="on"))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    def __enter__(self) -> "LiveEdge":
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("edge server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.http.close()
        self._server.should_exit = True
        self._thread.join(timeout=15)

    # conveniences ---------------------------------------------------------------------------

    def post(self, path: str, body: Any, key: str = SECRET_KEY, **headers: str) -> httpx.Response:
        return self.http.post(path, json=body, headers={**basic(key), **headers})

    def track(self, event: str, key: str = SECRET_KEY, **fields: Any) -> httpx.Response:
        return self.post("/v1/track", {"event": event, **fields}, key)

    def profile(self, identifier: str, key: str = SECRET_KEY) -> httpx.Response:
        return self.http.get(f"/v1/profiles/{identifier}", headers=basic(key))
