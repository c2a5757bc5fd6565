"""The demo shop's routes: static files from demo/ (never outside it) and the demo-only signer."""

from __future__ import annotations

import httpx

from edge.ingest.auth import user_hash
from edge.http.demo import DEMO_DIR, resolve
from tests.support import LiveEdge


def test_pages_are_served_under_pretty_paths(edge):
    home = edge.http.get("/demo")
    assert home.status_code == 200
    assert home.headers["content-type"].startswith("text/html")
    assert 'data-kairos-slot="hero"' in home.text
    assert edge.http.get("/demo/").text == home.text
    assert edge.http.get("/demo/category/shoes").text == home.text
    assert "Your cart" in edge.http.get("/demo/cart").text
    assert edge.http.get("/demo/product.html").status_code == 200
    script = edge.http.get("/demo/demo.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert edge.http.get("/demo/demo.css").headers["content-type"].startswith("text/css")


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
    # the test configuration has no site called "demo"
    assert edge.http.get("/demo/sign", params={"user_id": "42"}).status_code == 404


def test_the_signer_signs_for_the_demo_site(example_config, redis_url):
    with LiveEdge(example_config, redis_url) as live:
        answer = live.http.get("/demo/sign", params={"user_id": "demo-ada@example.com"})
        assert answer.status_code == 200
        expected = user_hash("demo-user-hash-secret", "demo-ada@example.com")
        assert answer.json() == {"userHash": expected}
        assert answer.headers["cache-control"] == "no-store"
        assert live.http.get("/demo/sign").status_code == 400
        # a browser identify signed this way joins the visitor to the customer
        event = {"writeKey": "demo", "type": "identify", "userId": "demo-ada@example.com",
                 "anonymousId": "visitor-a", "traits": {"first_name": "Ada"},
                 "context": {"userHash": expected}}
        assert httpx.post(f"{live.url}/v1/e", json=event).status_code == 200
        profile = live.profile("user:demo-ada@example.com", key="demo-secret").json()
        assert profile["traits"]["first_name"] == "Ada"
