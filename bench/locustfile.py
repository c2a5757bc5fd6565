"""Realistic traffic for a running edge, with locust (headless, or with its web UI).

    locust -f bench/locustfile.py --host http://127.0.0.1:8000 --headless -u 50 -t 60s
    python -m bench.locust_run   # starts Redis and the edge itself, writes the results

Three kinds of user, mixed by weight:

- WebsiteVisitor: a browser through the snippet's public write key, from the
  shop's origin. Sessions of page views and product views; some add to the
  cart and check out; about 2% of sessions end in a purchase; some log in,
  sending identify with the user hash the shop's backend signs
  (hex HMAC-SHA256 of the user id with the site's user_hash_secret).
- AppUser: the mobile app through the same /v1 endpoints with the write key
  and no Origin (apps send none): screens, product views, cart, purchases and
  a signed login, each answered with the person's decisions.
- PosTerminal: a till posting /v1/batch of 100 sales with the secret key. A
  failed batch is resent as it was (same messageIds) after a pause; about 1%
  of the accepted ones are resent once more, as when an acknowledgement is
  lost; the edge must then answer that every event was a duplicate.

Visitors are anon-<i> and customers user-<i> for i below --kairos-population,
the ids bench/population.py preloads. Every setting is a locust option and an
environment variable (KAIROS_...), see `locust -f bench/locustfile.py --help`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import time
import uuid
from typing import Any

import orjson
from locust import FastHttpUser, events, task

CATEGORIES = ["shoes", "bags", "hats", "coats", "socks", "watches", "belts", "scarves"]
PATHS = ["/", "/sale", "/new", "/about", "/cart"] + [f"/category/{c}" for c in CATEGORIES]
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36"


@events.init_command_line_parser.add_listener
def add_options(parser: Any) -> None:
    group = parser.add_argument_group("Kairos edge traffic")

    def option(name: str, default: Any, help: str) -> None:
        env = "KAIROS_" + name.upper().replace("-", "_")
        group.add_argument(f"--kairos-{name}", type=type(default), default=default, env_var=env,
                           help=f"{help} (env {env}, default {default})")

    option("write-key", "bench-public", "the site's public write key")
    option("secret-key", "bench-secret", "a secret key with scope ingest (for POS batches)")
    option("origin", "https://shop.example", "the shop's origin, allowed for the write key")
    option("user-hash-secret", "bench", "the site's user_hash_secret, to sign logins")
    option("population", 10_000, "visitors are anon-<i>, customers user-<i>, i below this")
    option("web-weight", 70, "relative number of website visitors")
    option("app-weight", 25, "relative number of app users")
    option("pos-weight", 5, "relative number of POS terminals")
    option("purchase-rate", 0.02, "share of sessions that end in a purchase")
    option("login-rate", 0.15, "share of sessions that log in")
    option("think-min", 0.5, "least seconds between a visitor's events")
    option("think-max", 3.0, "most seconds between a visitor's events")
    option("pos-batch", 100, "events in one POS batch")
    option("pos-every", 10.0, "seconds between a terminal's batches")
    option("pos-resend", 0.01, "share of accepted POS batches resent as if the answer was lost")


@events.init.add_listener
def apply_weights(environment: Any, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    # Locust reads the class weights when it spawns users, after this runs.
    WebsiteVisitor.weight = options.kairos_web_weight
    AppUser.weight = options.kairos_app_weight
    PosTerminal.weight = options.kairos_pos_weight


def basic_auth(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def message_id() -> str:
    return str(uuid.uuid4())


def product() -> dict[str, Any]:
    k = random.randrange(500)
    return {"product_id": f"sku-{k}", "category": CATEGORIES[k % len(CATEGORIES)],
            "price": float(5 + (k * 37) % 195), "currency": "EUR"}


def think_time(user: Any) -> float:
    options = user.environment.parsed_options
    low, high = (options.kairos_think_min, options.kairos_think_max) if options else (0.5, 3.0)
    return random.uniform(low, max(low, high))


class Visitor(FastHttpUser):
    """What website visitors and app users share: one person per session, signed logins."""

    abstract = True
    wait_time = think_time

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.population = options.kairos_population if options else 10_000
        self.user_hash_secret = options.kairos_user_hash_secret if options else "bench"
        self.headers = {"Authorization": basic_auth(options.kairos_write_key if options else "bench-public"),
                        "Content-Type": "application/json"}

    def new_person(self) -> None:
        i = random.randrange(self.population)
        self.anonymous_id, self.user_id = f"anon-{i}", f"user-{i}"

    def send(self, path: str, label: str, body: dict[str, Any]) -> None:
        body = {"messageId": message_id(), "anonymousId": self.anonymous_id,
                "context": self.context(), **body}
        self.client.post(path, data=orjson.dumps(body), headers=self.headers, name=label)

    def login(self) -> None:
        signature = hmac.new(self.user_hash_secret.encode(), self.user_id.encode(),
                             hashlib.sha256).hexdigest()
        self.send("/v1/identify", "identify (signed login)",
                  {"userId": self.user_id, "traits": {"first_name": "N" + self.user_id[5:]},
                   "context": {**self.context(), "userHash": signature}})

    def track(self, name: str, properties: dict[str, Any]) -> None:
        self.send("/v1/track", f"track {name}", {"event": name, "properties": properties})

    def shop(self, viewed: list[dict[str, Any]], buys: bool) -> None:
        """Cart and checkout: a buyer always gets there; others sometimes, and abandon."""
        if not viewed or not (buys or random.random() < 0.15):
            return
        item = random.choice(viewed)
        self.track("Product Added", {**item, "quantity": 1})
        self.wait()
        if not buys and random.random() < 0.1:
            self.track("Product Removed", {**item, "quantity": 1})
            return
        if buys or random.random() < 0.4:
            self.track("Checkout Started", {"value": item["price"], "currency": "EUR"})
            self.wait()
        if buys:
            self.track("Order Completed", {
                "order_id": f"o-{uuid.uuid4().hex[:12]}", "revenue": item["price"], "currency": "EUR",
                "products": [{"product_id": item["product_id"], "price": item["price"], "quantity": 1}]})

    def context(self) -> dict[str, Any]:
        raise NotImplementedError


class WebsiteVisitor(Visitor):
    weight = 70

    def on_start(self) -> None:
        super().on_start()
        options = self.environment.parsed_options
        self.headers["Origin"] = options.kairos_origin if options else "https://shop.example"
        self.path = "/"

    def context(self) -> dict[str, Any]:
        return {"page": {"path": self.path, "url": "https://shop.example" + self.path},
                "userAgent": USER_AGENT, "library": {"name": "kairos.js"}}

    @task
    def session(self) -> None:
        self.new_person()
        options = self.environment.parsed_options
        buys = random.random() < (options.kairos_purchase_rate if options else 0.02)
        logs_in = random.random() < (options.kairos_login_rate if options else 0.15)
        viewed: list[dict[str, Any]] = []
        for page in range(1 + int(random.expovariate(1 / 3))):
            self.path = random.choice(PATHS)
            self.send("/v1/page", "page", {"name": self.path, "properties": {"path": self.path}})
            self.wait()
            if logs_in and page == 0:
                self.login()
                self.wait()
            if random.random() < 0.6 or (buys and not viewed):
                item = product()
                viewed.append(item)
                self.path = f"/product/{item['product_id']}"
                self.track("Product Viewed", item)
                self.wait()
        self.shop(viewed, buys)


class AppUser(Visitor):
    weight = 25

    def on_start(self) -> None:
        super().on_start()
        self.device = {"id": str(uuid.uuid4()), "type": random.choice(["ios", "android"])}

    def context(self) -> dict[str, Any]:
        return {"app": {"name": "Shop", "version": "4.2.0"}, "device": self.device,
                "os": {"name": self.device["type"]}, "library": {"name": "analytics-swift"}}

    @task
    def session(self) -> None:
        self.new_person()
        options = self.environment.parsed_options
        buys = random.random() < (options.kairos_purchase_rate if options else 0.02)
        if random.random() < (options.kairos_login_rate if options else 0.15):
            self.login()
            self.wait()
        viewed: list[dict[str, Any]] = []
        for _ in range(1 + int(random.expovariate(1 / 4))):
            self.send("/v1/screen", "screen", {"name": random.choice(["Home", "Category", "Search"])})
            self.wait()
            if random.random() < 0.5 or (buys and not viewed):
                item = product()
                viewed.append(item)
                self.track("Product Viewed", item)
                self.wait()
        self.shop(viewed, buys)


class PosTerminal(FastHttpUser):
    weight = 5

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.population = options.kairos_population if options else 10_000
        self.batch_size = options.kairos_pos_batch if options else 100
        self.resend_share = options.kairos_pos_resend if options else 0.01
        self.every = options.kairos_pos_every if options else 10.0
        self.headers = {"Authorization": basic_auth(options.kairos_secret_key if options else "bench-secret"),
                        "Content-Type": "application/json"}
        self.terminal = f"till-{uuid.uuid4().hex[:6]}"

    def wait_time(self) -> float:
        return random.uniform(0.5 * self.every, 1.5 * self.every)

    def sale(self) -> dict[str, Any]:
        items = [product() for _ in range(random.randint(1, 4))]
        return {"type": "track", "event": "Order Completed", "messageId": message_id(),
                "userId": f"user-{random.randrange(self.population)}",
                "properties": {"order_id": f"{self.terminal}-{uuid.uuid4().hex[:10]}",
                               "revenue": round(sum(i["price"] for i in items), 2), "currency": "EUR",
                               "products": items, "channel": "pos", "store": self.terminal},
                "context": {"library": {"name": "pos-sync"}}}

    @task
    def post_batch(self) -> None:
        body = orjson.dumps({"batch": [self.sale() for _ in range(self.batch_size)]})
        for attempt in range(4):
            # The same bytes each time: a retry carries the same messageIds.
            with self.client.post("/v1/batch", data=body, headers=self.headers,
                                  name=f"batch of {self.batch_size}" + (" (retry)" if attempt else ""),
                                  catch_response=True) as response:
                if response.status_code == 200:
                    break
                response.failure(f"status {response.status_code}")
            time.sleep(0.5 * 2 ** attempt)
        else:
            return
        if random.random() < self.resend_share:
            with self.client.post("/v1/batch", data=body, headers=self.headers,
                                  name=f"batch of {self.batch_size} (resent, all duplicates)",
                                  catch_response=True) as response:
                answer = response.json() if response.status_code == 200 else {}
                if answer.get("duplicates") != self.batch_size:
                    response.failure(f"a resent batch was counted again: {answer}")
