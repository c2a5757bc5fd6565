"""The demo shop's routes: static files from demo/ (never outside it) and the demo-only signer,
which exists only for the enabled demo with its published secret."""

from __future__ import annotations

import logging
import re

import httpx
import yaml

from edge.ingest.auth import user_hash
from edge.http.demo import DEMO_DIR, resolve
from tests.support import LiveEdge


def _page(answer: httpx.Response) -> str:
    return re.sub(r'nonce="[^"]*"', 'nonce=""', answer.text)


def test_pages_are_served_under_pretty_paths(edge):
    home = edge.http.get("/demo")
    assert home.status_code == 200
    assert home.headers["content-type"].startswith("text/html")
    assert 'data-kairos-slot="hero"' in home.text
    # the same page, but for the nonce each answer has of its own
    assert _page(edge.http.get("/demo/")) == _page(home)
    assert _page(edge.http.get("/demo/category/shoes")) == _page(home)
    assert "Your cart" in edge.http.get("/demo/cart").text
    assert edge.http.get("/demo/product.html").status_code == 200
    script = edge.http.get("/demo/demo.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert edge.http.get("/demo/demo.css").headers["content-type"].startswith("text/css")


PAGES = ("/demo", "/demo/", "/demo/index.html", "/demo/cart", "/demo/cart.html", "/demo/product",
         "/demo/product?id=rain-jacket", "/demo/category/shoes")
NOT_FOUND = ("/demo/missing.html", "/demo/%2e%2e/config/kairos.yaml", "/demo/nope")


def _policy(header: str) -> dict[str, list[str]]:
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {name: sources for name, *sources in directives}


def _guarded(answer: httpx.Response) -> dict[str, list[str]]:
    """The answer's policy, after checking what every demo answer carries."""
    assert answer.headers["x-frame-options"] == "DENY", answer.url
    header = answer.headers["content-security-policy"]
    assert "unsafe-" not in header, (answer.url, header)
    policy = _policy(header)
    assert policy["frame-ancestors"] == ["'none'"], answer.url
    return policy


def test_every_demo_answer_carries_a_policy_and_refuses_framing(edge):
    files = [f"/demo/{path.name}" for path in DEMO_DIR.iterdir() if path.is_file()]
    assert len(files) >= 5
    for path in (*PAGES, *files, *NOT_FOUND):
        answer = edge.http.get(path)
        assert answer.status_code == (404 if path in NOT_FOUND else 200), path
        policy = _guarded(answer)
        if not answer.headers["content-type"].startswith("text/html"):
            # a script, style sheet or error opened as a page runs nothing
            assert policy == {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}, path


def test_a_page_s_policy_allows_what_the_shop_uses_and_no_more(edge):
    nonces = set()
    for path in PAGES:
        answer = edge.http.get(path)
        policy = _guarded(answer)
        nonce = policy["script-src"][-1]
        assert re.fullmatch(r"'nonce-[A-Za-z0-9_-]{22,}'", nonce), nonce
        nonces.add(nonce)
        # its own origin serves the shop, the snippet (/k.js) and the API the snippet calls
        assert policy == {
            "default-src": ["'none'"], "script-src": ["'self'", nonce], "style-src": ["'self'", nonce],
            "img-src": ["'self'"], "connect-src": ["'self'"], "base-uri": ["'none'"],
            "form-action": ["'self'"], "frame-ancestors": ["'none'"],
        }
        page = answer.text
        assert "__CSP_NONCE__" not in page
        scripts = re.findall(r"<script\b([^>]*)>", page)
        assert len(scripts) == 2, path
        for attributes in scripts:
            source = re.search(r'\bsrc="([^"]*)"', attributes)
            if source:
                assert source.group(1).startswith("/demo/"), attributes
            else:  # the snippet's stub, inline
                assert f'nonce="{nonce[7:-1]}"' in attributes, attributes
        assert "<style" not in page and " style=" not in page
        assert re.findall(r'<link rel="stylesheet" href="([^"]*)"', page) == ["/demo/demo.css"]
    assert len(nonces) == len(PAGES), "a nonce is used once"


def test_nothing_outside_demo_is_served(edge):
    for path in ("/demo/../config/kairos.yaml", "/demo/%2e%2e/config/kairos.yaml",
                 "/demo/..%2fconfig%2fkairos.yaml", "/demo/%2e%2e%2fREADME.md",
                 "/demo/missing.html", "/demo/nope"):
        response = edge.http.get(path)
        assert response.status_code == 404, path
        assert response.json()["success"] is False
    assert resolve("../config/kairos.yaml") is None
    assert resolve("/etc/passwd") is None
    assert resolve("..") is None
    assert resolve("index.html\x00.png") is None
    assert resolve("cart") == (DEMO_DIR / "cart.html").resolve()


def test_the_signer_answers_only_for_the_demo_site(edge):
    # the test configuration's demo runs on a site with a secret of its own
    assert edge.http.get("/demo/sign", params={"user_id": "42"}).status_code == 404


def _edit(config, change) -> None:
    path = config / "kairos.yaml"
    settings = yaml.safe_load(path.read_text())
    change(settings)
    path.write_text(yaml.safe_dump(settings))


def test_no_route_signs_for_a_site_with_its_own_secret(example_config, redis_url, caplog):
    """The operator replaced the demo site's secret but left the demo on: no route, with
    any key or none, answers anything that carries a valid signature."""
    secret = "the-shop-s-own-secret"
    _edit(example_config, lambda s: s["sites"]["demo"].update(user_hash_secret=secret))
    user_id = "ada@example.com"
    signature = user_hash(secret, user_id)
    with caplog.at_level(logging.WARNING), LiveEdge(example_config, redis_url) as live:
        paths = set(live.http.get("/openapi.json").json()["paths"]) | {"/demo/sign", "/demo"}
        assert "/demo/sign" not in live.http.get("/openapi.json").json()["paths"]
        answers = 0
        for template in sorted(paths):
            path = re.sub(r"\{[^}]+\}", user_id, template)
            for key in (None, "demo", "demo-secret"):
                auth = (key, "") if key else None
                for method in ("GET", "POST", "PUT", "DELETE"):
                    answer = live.http.request(
                        method, path, params={"user_id": user_id, "userId": user_id},
                        json={"user_id": user_id, "userId": user_id}, auth=auth)
                    answers += 1
                    assert signature not in answer.text, (method, path, key)
                    assert signature not in str(answer.headers), (method, path, key)
        assert answers > 100
        assert live.http.get("/demo/sign", params={"user_id": user_id}).status_code == 404
        assert live.http.get("/demo").status_code == 200  # the shop itself is still on
    assert "its sign-in (/demo/sign) is off because site 'demo' has a user hash secret" in caplog.text


def test_the_demo_is_off_unless_enabled(example_config, redis_url):
    _edit(example_config, lambda s: s.pop("demo"))
    with LiveEdge(example_config, redis_url) as live:
        assert live.http.get("/demo/sign", params={"user_id": "42"}).status_code == 404
        assert live.http.get("/demo").status_code == 404
        assert live.http.get("/demo/cart").status_code == 404
        assert not [p for p in live.http.get("/openapi.json").json()["paths"] if p.startswith("/demo")]


def test_the_server_warns_while_the_demo_signs(example_config, redis_url, caplog):
    with caplog.at_level(logging.WARNING), LiveEdge(example_config, redis_url):
        pass
    assert "anyone can sign in as any of its customers" in caplog.text


def test_the_signer_signs_for_the_demo_site(example_config, redis_url):
    with LiveEdge(example_config, redis_url) as live:
        answer = live.http.get("/demo/sign", params={"user_id": "demo-ada@example.com"})
        assert answer.status_code == 200
        expected = user_hash("demo-user-hash-secret", "demo-ada@example.com")
        assert answer.json() == {"userHash": expected}
        assert answer.headers["cache-control"] == "no-store"
        assert _guarded(answer) == {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}
        assert _guarded(live.http.get("/demo/sign")).keys() == {"default-src", "frame-ancestors"}
        assert live.http.get("/demo/sign").status_code == 400
        # a browser identify signed this way joins the visitor to the customer
        event = {"writeKey": "demo", "type": "identify", "userId": "demo-ada@example.com",
                 "anonymousId": "visitor-a", "traits": {"first_name": "Ada"},
                 "context": {"userHash": expected}}
        assert httpx.post(f"{live.url}/v1/e", json=event).status_code == 200
        profile = live.profile("user:demo-ada@example.com", key="demo-secret").json()
        assert profile["traits"]["first_name"] == "Ada"


def test_only_the_published_secret_signs():
    from edge.http.demo import signing_site
    from edge.runtime.config import DEMO_USER_HASH_SECRET, DemoSettings, Settings, Site

    def site_for(secret: str, enabled: bool = True):
        return signing_site(Settings(sites={"demo": Site(user_hash_secret=secret)},
                                     demo=DemoSettings(enabled=enabled)))

    assert site_for(DEMO_USER_HASH_SECRET) is not None
    assert site_for(DEMO_USER_HASH_SECRET, enabled=False) is None
    for secret in ("", "demo-user-hash-secret ", "gehéim-schlüssel", "x" * 64):
        assert site_for(secret) is None, secret


def _page_view(live: LiveEdge, origin: str, host: str | None = None) -> httpx.Response:
    headers = {"Origin": origin, **({"Host": host} if host else {})}
    return live.http.post("/v1/e", content=b'{"writeKey": "demo", "type": "page", "anonymousId": "v-port"}',
                          headers={**headers, "Content-Type": "text/plain"})


def test_the_demo_pages_use_the_demo_key_on_any_port(example_config, redis_url):
    """The example origins name port 8000; the shop the edge serves on any other port
    (here a free one) still uses the demo key, from the edge's own origin only."""
    with LiveEdge(example_config, redis_url) as live:
        assert live.port != 8000
        own = f"http://127.0.0.1:{live.port}"
        assert _page_view(live, own).status_code == 200
        assert _page_view(live, f"http://localhost:{live.port}", f"localhost:{live.port}").status_code == 200
        assert _page_view(live, "http://127.0.0.1:8000").status_code == 200  # listed in origins
        for origin in ("http://evil.test", f"http://evil.test:{live.port}", "http://127.0.0.1:1",
                       f"https://127.0.0.1:{live.port}.evil.test", "null"):
            refused = _page_view(live, origin)
            assert refused.status_code == 403, origin
            assert refused.json()["reason"].startswith(f"the origin {origin} is not among"), refused.text
            # readable by the page, so the snippet can say why on the console
            assert refused.headers["access-control-allow-origin"] == origin


def test_only_the_demo_site_is_served_from_the_edge_s_origin(example_config, redis_url):
    def second_site(settings):
        settings["sites"]["other"] = {"name": "Other", "write_keys": ["other-key"],
                                      "origins": ["https://other.test"]}
    _edit(example_config, second_site)
    with LiveEdge(example_config, redis_url) as live:
        own = f"http://127.0.0.1:{live.port}"
        body = b'{"writeKey": "other-key", "type": "page", "anonymousId": "v-other"}'
        answer = live.http.post("/v1/e", content=body, headers={"Origin": own, "Content-Type": "text/plain"})
        assert answer.status_code == 403
        assert _page_view(live, own).status_code == 200
    _edit(example_config, lambda s: s.update(demo={"enabled": False, "site": "demo"}))
    with LiveEdge(example_config, redis_url) as live:
        assert _page_view(live, f"http://127.0.0.1:{live.port}").status_code == 403
        assert _page_view(live, "http://127.0.0.1:8000").status_code == 200
