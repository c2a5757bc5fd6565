"""Builds the Starlette app from the settings: routes, Redis, rules, background reloads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
from typing import Any, AsyncIterator

import redis.asyncio as aioredis
from redis.maint_notifications import MaintNotificationsConfig
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edge import __version__

from edge.runtime import heap, lifetime

from edge.http import openapi
from edge.ingest.auth import KeyRing
from edge.runtime.clock import SystemClock
from edge.runtime.config import DEMO_KEYS, Settings, load_settings
from edge.http import (admin, callbacks, catalog, demo, errors, explain, health, ingest,
                       journeys, profiles, snippet, tracking)
from edge.pipeline.journeybook import Journeys
from edge.store.journeys import JourneyStore
from edge.http.common import PREFLIGHT_ROUTE, json_response
from edge.http.fastpath import IngestFastPath
from edge.runtime.metrics import Metrics
from edge.pipeline.handler import Pipeline
from edge.pipeline.rulebook import Rulebook
from edge.http.state import EdgeState
from edge.store.catalog import CatalogStore
from edge.store.profiles import ProfileStore

log = logging.getLogger("kairos")

ENV_CONFIG = "KAIROS_CONFIG"
ENV_REDIS = "KAIROS_REDIS_URL"
SINGLE_EVENT_TYPES = ("track", "page", "screen", "identify", "alias", "group")


def routes(settings: Settings) -> list[Route]:
    table = [Route(f"/v1/{t}", ingest.single(t, f"/v1/{t}"), methods=["POST"], name=f"ingest_{t}")
             for t in SINGLE_EVENT_TYPES]
    table += [
        Route("/v1/batch", ingest.batch("/v1/batch"), methods=["POST"], name="ingest_batch"),
        # Short paths for the website snippet: ad-blocker lists match words like
        # "track" or "collect" in URLs, and a blocked tracker cannot personalize.
        Route("/v1/e", ingest.single(None, "/v1/e"), methods=["POST"], name="ingest_event"),
        Route("/v1/b", ingest.batch("/v1/b"), methods=["POST"], name="ingest_batch_short"),
        Route("/v1/{path:path}", ingest.preflight, methods=["OPTIONS"], name=PREFLIGHT_ROUTE),
        Route("/v1/profiles/{profile_id}", profiles.get_profile, methods=["GET"], name="get_profile"),
        Route("/v1/profiles/{profile_id}", profiles.delete_profile, methods=["DELETE"],
              name="delete_profile"),
        Route("/v1/explain", explain.explain, methods=["POST"], name="explain"),
        Route("/v1/catalog/products", catalog.put_products, methods=["PUT"], name="catalog_products"),
        Route("/v1/catalog/products/{product_id:path}", catalog.get_product, methods=["GET"],
              name="catalog_product"),
        Route("/v1/catalog/products/{product_id:path}", catalog.delete_product, methods=["DELETE"],
              name="catalog_product"),
        Route("/v1/admin/reload", admin.reload_rules, methods=["POST"], name="reload_rules"),
        Route("/v1/journeys", journeys.list_journeys, methods=["GET"], name="journeys"),
        Route("/v1/journeys/{journey_id}/enrollments", journeys.enroll, methods=["POST"],
              name="journey_enrollments"),
        Route("/v1/journeys/{journey_id}/pause", journeys.pause, methods=["POST"],
              name="journey_pause"),
        Route("/v1/journeys/{journey_id}/resume", journeys.resume, methods=["POST"],
              name="journey_resume"),
        Route("/go/{token}", tracking.click, methods=["GET", "HEAD"], name="track_click"),
        Route("/s/{code}", tracking.short_click, methods=["GET", "HEAD"], name="short_click"),
        Route("/m/{token}", tracking.open_pixel, methods=["GET"], name="track_open"),
        Route("/u/{token}", tracking.preferences_page, methods=["GET"], name="preferences"),
        Route("/u/{token}", tracking.unsubscribe, methods=["POST"], name="unsubscribe"),
        # Reached by the SMS and WhatsApp providers, signed by them (404 where not configured).
        Route("/v1/callbacks/sms", callbacks.sms_status, methods=["POST"], name="callback_sms"),
        Route("/v1/callbacks/email", callbacks.email_report, methods=["POST"],
              name="callback_email"),
        Route("/v1/callbacks/whatsapp", callbacks.whatsapp_verify, methods=["GET"],
              name="callback_whatsapp_verify"),
        Route("/v1/callbacks/whatsapp", callbacks.whatsapp_events, methods=["POST"],
              name="callback_whatsapp"),
        Route("/k.js", snippet.snippet, methods=["GET"], name="snippet"),
        Route("/kairos-sw.js", snippet.service_worker, methods=["GET"], name="service_worker"),
        Route("/v1/push-key", snippet.push_key, methods=["GET"], name="push_key"),
        Route("/healthz", health.healthz, methods=["GET"], name="healthz"),
        Route("/readyz", health.readyz, methods=["GET"], name="readyz"),
        Route("/metrics", health.metrics, methods=["GET"], name="metrics"),
    ]
    if settings.demo.enabled:
        if demo.signing_site(settings) is not None:
            table.append(Route("/demo/sign", demo.demo_sign, methods=["GET"], name="demo_sign"))
        table += [Route("/demo", demo.demo_page, methods=["GET"], name="demo_home"),
                  Route("/demo/inbox", demo.demo_inbox, methods=["GET"], name="demo_inbox"),
                  Route("/demo/{path:path}", demo.demo_page, methods=["GET"], name="demo_file")]
    table.append(Route("/openapi.json", openapi_document, methods=["GET"], name="openapi"))
    return table


async def openapi_document(request: Request) -> Response:
    """This document."""
    return json_response(request.app.state.openapi)


def create_app(settings: Settings, redis_url: str, clock: Any = None) -> IngestFastPath:
    metrics = Metrics()
    rulebook = Rulebook(settings.rules_dir, settings.scenarios_dir)
    # Maintenance notifications (a managed service's failover hints) off: while they are
    # on, the pool hands out connections without checking that the server still holds
    # them, so after a Redis restart each stale pooled connection would fail a request.
    client = aioredis.from_url(redis_url, decode_responses=False, health_check_interval=30,
                               maint_notifications_config=MaintNotificationsConfig(enabled=False))
    store = ProfileStore(client, settings, redis_url)
    catalog_store = CatalogStore(client, settings, clock or SystemClock())
    pipeline = Pipeline(store, rulebook, metrics, clock or SystemClock(), catalog_store)
    origins = frozenset(o for site in settings.sites.values() for o in site.origins)
    state = EdgeState(settings, KeyRing(settings), client, store, rulebook, pipeline, metrics,
                      origins, catalog=catalog_store,
                      own_pages_site=settings.demo.site if settings.demo.enabled else None,
                      journeys=Journeys(settings.journeys_dir, rulebook),
                      journey_store=JourneyStore(client))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if _demo_keys_enabled(settings):
            log.warning("the demo keys (demo, demo-secret) are enabled: anyone can use them. "
                        "Replace them in %s/kairos.yaml before exposing this edge.",
                        settings.config_dir)
        if settings.demo.enabled:
            _warn_demo_on(settings)
        try:
            await store.batcher.load_scripts()
            await store.register_aggregates(rulebook.active.layout)
        except (RedisError, OSError) as exc:
            log.error("Redis at %s is not reachable yet (%s); requests get 503 until it is",
                      _redacted(redis_url), exc)
        heap.settle()
        tasks = [asyncio.create_task(_watch_rule_files(state)),
                 asyncio.create_task(_follow_reloads(state)),
                 # Applies recorded metrics about once a second, and once more when cancelled.
                 asyncio.create_task(metrics.flush_periodically())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.aclose()
            store.batcher.close()

    app = Starlette(
        routes=routes(settings),
        lifespan=lifespan,
        # One table answers every known failure (edge/http/errors.py); the middleware
        # answers the rest, inside Starlette's last resort, which would log them twice.
        exception_handlers=errors.exception_handlers(),
        middleware=[Middleware(errors.UnexpectedErrors)],
    )
    app.state.edge = state
    app.state.openapi = openapi.build(app.routes, __version__)
    ingest_endpoints = {route.path: route.endpoint for route in app.routes
                        if isinstance(route, Route) and route.name.startswith("ingest")}
    return IngestFastPath(app, ingest_endpoints)


def create_app_from_env() -> IngestFastPath:
    """Entry point for uvicorn workers: `kairos serve` passes the settings through the environment."""
    supervisor = multiprocessing.parent_process()
    if supervisor is not None and supervisor.pid is not None:  # one of --workers N
        lifetime.end_with_parent(supervisor.pid)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = load_settings(os.environ.get(ENV_CONFIG, "config"))
    return create_app(settings, os.environ[ENV_REDIS])


def _demo_keys_enabled(settings: Settings) -> bool:
    keys = {k for site in settings.sites.values() for k in site.write_keys}
    return bool((keys | set(settings.secret_keys)) & DEMO_KEYS)


def _warn_demo_on(settings: Settings) -> None:
    site = settings.demo.site
    if demo.signing_site(settings) is not None:
        log.warning("the demo shop is on (demo.enabled in %s/kairos.yaml): /demo/sign signs "
                    "any user id for site %r with the published demo secret, so anyone can "
                    "sign in as any of its customers. Turn the demo off before exposing this "
                    "edge.", settings.config_dir, site)
    else:
        log.warning("the demo shop is on (demo.enabled in %s/kairos.yaml); its sign-in "
                    "(/demo/sign) is off because site %r has a user hash secret of its own.",
                    settings.config_dir, site)


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}"


async def _reload(state: EdgeState, why: str) -> None:
    problems = state.rulebook.reload()
    if not problems:
        with contextlib.suppress(RedisError, OSError):
            await state.store.register_aggregates(state.rulebook.active.layout)
        heap.settle()
        log.info("rules reloaded (%s): version %s", why, state.rulebook.active.ruleset.version)


async def _watch_rule_files(state: EdgeState, interval_s: float = 1.0) -> None:
    """Reload when a rule file changes on disk.

    Polls file times once a second rather than using a file-watching thread:
    a watcher thread competes for the GIL with the request path and cost about
    a quarter of the throughput in measurements, while a stat of a few files a
    second costs nothing.
    """
    rulebook, journey_files = state.rulebook, state.journeys
    seen = await asyncio.to_thread(rulebook.fingerprint)
    journeys_seen = journey_files.fingerprint() if journey_files else ()
    while True:
        await asyncio.sleep(interval_s)
        current = rulebook.fingerprint()
        if current != seen:
            seen = current
            await _reload(state, "files changed")
        if journey_files is not None and journey_files.fingerprint() != journeys_seen:
            journeys_seen = journey_files.fingerprint()
            journey_files.reload()  # a bad file keeps the running journeys


async def _follow_reloads(state: EdgeState) -> None:
    """Reload when another worker was asked to (POST /v1/admin/reload)."""
    while True:
        try:
            pubsub = state.redis.pubsub()
            await pubsub.subscribe(admin.RELOAD_CHANNEL)
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                if message["data"].decode() != state.rulebook.active.ruleset.version:
                    await _reload(state, "another worker reloaded")
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError):
            await asyncio.sleep(1.0)
