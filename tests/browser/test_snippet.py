"""The website snippet in real Chromium against a real edge: delivery, timeouts, CSP, consent."""

from __future__ import annotations

import http.server
import threading
import time
from typing import Any

import orjson

from tests.browser.conftest import stream_events, stub, tracks, visit_as, wait_for

SLOT = '<div id="slot" data-kairos-slot="hero">default hero</div>'
WELCOME = "Welcome! Here is 10% off your first order: WELCOME10"


def serve(page: Any, path: str, html: str, headers: dict[str, str] | None = None) -> str:
    """Answers `path` on the edge's origin with a test page (same origin: allowed by the demo site)."""
    page.route(f"**{path}", lambda route: route.fulfill(
        status=200, body=html, headers={"Content-Type": "text/html; charset=utf-8", **(headers or {})}))
    return path


def test_calls_made_before_the_core_loads_arrive_in_order(page, live, redis_client):
    delayed = []

    def slow_core(route):
        time.sleep(0.3)
        delayed.append(route.request.url)
        route.continue_()

    page.route("**/k.js", slow_core)
    serve(page, "/t/order", f"""<!doctype html><html><head><script>{stub()}</script>
        <script>kairos('track', 'A'); kairos('track', 'B'); kairos('track', 'C');
        window.__queued = kairos.l ? -1 : kairos.q.length;</script>
        </head><body>{SLOT}</body></html>""")
    page.goto("/t/order")
    assert delayed, "the core was not delayed"
    assert page.evaluate("window.__queued") == 3, "the calls did not queue in the stub"
    names = wait_for(lambda: [e["event"] for e in tracks(redis_client)] == ["A", "B", "C"]
                     and ["A", "B", "C"])
    assert names == ["A", "B", "C"]
    ids = {e["anonymousId"] for e in tracks(redis_client)}
    assert len(ids) == 1
    assert [e["type"] for _p, e in stream_events(redis_client)].count("page") == 1


def test_an_event_survives_a_navigation_right_after_track(page, live, redis_client):
    page.goto("/demo")
    page.wait_for_function("window.kairos && window.kairos.l === 1")
    page.evaluate("kairos('track', 'Clicked Away', {n: 1}); location.href = '/demo/cart'")
    page.wait_for_url("**/demo/cart")
    events = wait_for(lambda: [e for e in tracks(redis_client) if e["event"] == "Clicked Away"])
    assert len(events) == 1
    assert events[0]["properties"]["n"] == 1


def test_offline_then_online_delivers_every_event_exactly_once(page, context, live, redis_client):
    delivered: list[str] = []  # messageIds in requests the edge answered

    def finished(request):
        if "/v1/" not in request.url or request.method != "POST":
            return
        response = request.response()
        if response is None or response.status >= 300:
            return
        body = orjson.loads(request.post_data)
        delivered.extend(e["messageId"] for e in body.get("batch", [body]))

    page.on("requestfinished", finished)
    page.goto("/demo")
    page.wait_for_function("window.kairos && window.kairos.l === 1")
    wait_for(lambda: [e for _p, e in stream_events(redis_client) if e["type"] == "page"])
    context.set_offline(True)
    page.evaluate("['Off 1', 'Off 2', 'Off 3'].forEach(n => kairos('track', n))")
    # The batch goes out after a second, fails, and waits in the outbox for its retry.
    outbox = wait_for(lambda: page.evaluate("localStorage.getItem('kairos_q')"), timeout=3)
    assert tracks(redis_client) == []
    queued_ids = [e["messageId"] for e in orjson.loads(outbox) if e.get("event", "").startswith("Off")]
    assert len(queued_ids) == 3
    context.set_offline(False)
    stored = wait_for(lambda: len(tracks(redis_client)) >= 3 and tracks(redis_client))
    page.wait_for_timeout(1200)  # room for a second, duplicate delivery to show up
    stored = tracks(redis_client)
    assert sorted(e["event"] for e in stored) == ["Off 1", "Off 2", "Off 3"]
    assert sorted(e["messageId"] for e in stored) == sorted(queued_ids)
    for message_id in queued_ids:
        assert delivered.count(message_id) == 1, "sent more than once (or never)"
    assert page.evaluate("JSON.parse(localStorage.getItem('kairos_q') || '[]').length") == 0


REVEAL_PROBE = """
window.__reveal = {added: null, removed: null};
new MutationObserver(() => {
  const pending = document.documentElement.classList.contains('kairos-wait');
  if (pending && window.__reveal.added === null) window.__reveal.added = performance.now();
  if (!pending && window.__reveal.added !== null && window.__reveal.removed === null)
    window.__reveal.removed = performance.now();
}).observe(document, {attributes: true, subtree: true, attributeFilter: ['class']});
"""


def test_the_slot_is_hidden_no_longer_than_the_timeout_when_the_edge_is_slow(page, live):
    page.add_init_script(REVEAL_PROBE)
    page.route("**/v1/e", lambda route: None)  # the edge never answers the page view
    page.goto("/demo")
    hero = page.locator('[data-kairos-slot="hero"]')
    wait_for(lambda: page.evaluate("window.__reveal.removed"), timeout=2)
    probe = page.evaluate("window.__reveal")
    hidden_ms = probe["removed"] - probe["added"]
    assert 700 <= hidden_ms <= 800 + 300, hidden_ms
    assert hero.evaluate("e => getComputedStyle(e).visibility") == "visible"
    assert "Spring collection" in hero.inner_text()


def test_the_slot_shows_at_once_when_the_edge_is_down(page, live):
    page.add_init_script(REVEAL_PROBE)
    page.route("**/k.js", lambda route: route.abort())
    page.route("**/v1/**", lambda route: route.abort())
    page.goto("/demo")
    hero = page.locator('[data-kairos-slot="hero"]')
    wait_for(lambda: page.evaluate("window.__reveal.removed"), timeout=2)
    probe = page.evaluate("window.__reveal")
    assert probe["removed"] - probe["added"] < 500, probe
    assert hero.evaluate("e => getComputedStyle(e).visibility") == "visible"
    assert "Spring collection" in hero.inner_text()


def test_a_page_with_a_strict_csp_works(page, live, redis_client):
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text)
            if "Content Security Policy" in msg.text else None)
    page.add_init_script("window.__csp = []; document.addEventListener('securitypolicyviolation',"
                         " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")
    policy = (f"default-src 'none'; script-src 'nonce-abc' {live.url}; style-src 'nonce-abc'; "
              f"connect-src {live.url}; img-src 'none'")
    serve(page, "/t/csp", f"""<!doctype html><html><head>
        <script nonce="abc">{stub()}</script></head>
        <body>{SLOT}</body></html>""", {"Content-Security-Policy": policy})
    page.goto("/t/csp")
    hero = page.locator("#slot")
    hero.get_by_text(WELCOME).wait_for()
    assert hero.evaluate("e => getComputedStyle(e).visibility") == "visible"
    # the core's own stylesheet applied under the nonce: messages would be styled
    assert page.evaluate("[...document.querySelectorAll('style')].every(s => s.nonce === 'abc')")
    page.wait_for_timeout(100)
    assert page.evaluate("window.__csp") == []
    assert violations == []
    wait_for(lambda: [e for _p, e in stream_events(redis_client) if e["type"] == "page"])


def test_consent_denied_sends_nothing(page, context, live, redis_client):
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/v1/" in r.url else None)
    visit_as(context, live, "visitor-who-says-no")
    serve(page, "/t/consent", f"""<!doctype html><html><head>
        <script>{stub(options="{consent:'pending'}")}</script>
        <script>kairos('track', 'Before The Answer');</script>
        </head><body>{SLOT}</body></html>""")
    page.goto("/t/consent")
    page.wait_for_function("window.kairos && window.kairos.l === 1")
    page.evaluate("kairos('consent', 'denied'); kairos('track', 'After The Answer');"
                  " kairos('page')")
    page.wait_for_timeout(1500)  # longer than the batch interval
    assert sent == []
    assert stream_events(redis_client) == []
    # the visitor's ids and the outbox are gone: nothing is stored without consent
    stored = page.evaluate("Object.fromEntries(Object.keys(localStorage)"
                           ".filter(k => k.startsWith('kairos')).map(k => [k, localStorage[k]]))")
    assert stored == {}, stored
    assert [c for c in context.cookies() if c["name"] == "kairos_aid"] == []
    hero = page.locator("#slot")
    assert hero.evaluate("e => getComputedStyle(e).visibility") == "visible"
    assert hero.inner_text() == "default hero"


def test_consent_denied_leaves_no_storage_behind(page, live):
    serve(page, "/t/deny", f"""<!doctype html><html><head>
        <script>{stub(options="{consent:'pending'}")}</script>
        <script>kairos('consent', 'denied'); kairos('track', 'Nope');</script>
        </head><body>{SLOT}</body></html>""")
    page.goto("/t/deny")
    page.wait_for_function("window.kairos && window.kairos.l === 1")
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('kairos'))") == []


def test_a_page_on_an_origin_the_site_does_not_allow_is_told_why_once(page, live, redis_client):
    """The example allows the edge's own origin and port 8000; a page on another origin
    (a server of its own on this machine: Chromium lets no public page reach a loopback
    address) is refused, and the snippet says so on the console once, not once per event,
    with the edge's reason."""
    html = f"""<!doctype html><html><head><script>{stub(repr(live.url))}</script>
        <script>kairos('track', 'A'); kairos('track', 'B');</script></head>
        <body>{SLOT}</body></html>""".encode()

    class Shop(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Shop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    elsewhere = f"http://127.0.0.1:{server.server_port}"
    said: list[str] = []
    page.on("console", lambda msg: said.append(msg.text) if "Kairos" in msg.text else None)
    refused: list[str] = []
    page.on("response", lambda r: refused.append(r.url) if r.status == 403 else None)
    try:
        with page.expect_console_message(lambda msg: "Kairos" in msg.text):
            page.goto(f"{elsewhere}/shop")
        page.wait_for_timeout(1500)  # the batched tracks are refused too, and say nothing more
    finally:
        server.shutdown()
    assert sorted(url.rsplit("/", 1)[1] for url in refused) == ["b", "e"]
    assert said == [f"Kairos refused: 403 the origin {elsewhere} is not among the "
                    "origins of this write key's site (its origins in kairos.yaml)"]
    assert page.locator("#slot").inner_text() == "default hero"
    assert stream_events(redis_client) == []
