"""Web Push in real Chromium: the service worker registers, and shows what the edge pushes.

The subscription itself needs the browser vendor's push service, which this
machine cannot reach; what the service worker sends once subscribed is tested
over HTTP (tests/test_http_ingest.py). Here: kairos('push') registers
/kairos-sw.js with the edge, key and visitor in its URL only with consent, and
a push message delivered through the DevTools protocol becomes a notification.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from tests.browser.conftest import stub, visit_as, wait_for
from tests.browser.test_snippet import serve

SW_READY = "navigator.serviceWorker.ready.then(r => r.active && r.active.scriptURL)"


def test_push_registers_the_service_worker_and_shows_pushed_notifications(page, context, live):
    context.grant_permissions(["notifications"], origin=live.url)
    visit_as(context, live, "push-visitor")
    cdp = context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated",
           lambda event: registrations.extend(event["registrations"]))
    cdp.send("ServiceWorker.enable")

    page.goto(serve(page, "/t/push", f"<!doctype html><html><head><script>{stub()}</script>"
                                     "</head><body>shop</body></html>"))
    page.wait_for_function("window.kairos && window.kairos.l === 1")
    page.evaluate("kairos('push')")
    script_url = page.evaluate(SW_READY)
    assert urlsplit(script_url).path == "/kairos-sw.js"
    params = parse_qs(urlsplit(script_url).query)
    assert params == {"u": [live.url], "k": ["demo"], "a": ["push-visitor"]}

    registration = wait_for(lambda: next((r for r in registrations if not r.get("isDeleted")), None))
    message = {"title": "Your cart misses you", "body": "Two items wait", "link": "/demo/cart"}
    cdp.send("ServiceWorker.deliverPushMessage", {
        "origin": live.url + "/", "registrationId": registration["registrationId"],
        "data": orjson.dumps(message).decode()})
    # The worker wakes for the push and fetches nothing, but on a busy machine showing the
    # notification has taken more than the usual 4 s.
    shown = wait_for(lambda: page.evaluate(
        "navigator.serviceWorker.ready.then(r => r.getNotifications())"
        ".then(ns => ns.map(n => [n.title, n.body, n.data && n.data.link]))"), timeout=15)
    assert shown == [["Your cart misses you", "Two items wait", "/demo/cart"]]


def test_push_does_nothing_without_consent(page, context, live):
    context.grant_permissions(["notifications"], origin=live.url)
    denied = stub(options="{consent:'denied'}")
    page.goto(serve(page, "/t/push-denied", f"<!doctype html><html><head><script>{denied}</script>"
                                            "</head><body>shop</body></html>"))
    page.wait_for_function("window.kairos && window.kairos.l === 1")
    page.evaluate("kairos('push')")
    page.wait_for_timeout(300)
    assert page.evaluate("navigator.serviceWorker.getRegistrations().then(r => r.length)") == 0
