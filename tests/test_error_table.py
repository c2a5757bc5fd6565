"""One table answers every known failure: the same bodies from every route, fast path included;
Redis down is 503 with Retry-After everywhere, never 500; bugs are a 500 logged once."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Iterator

import msgspec
import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st
from starlette.exceptions import HTTPException
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.routing import Route

from edge.http import errors
from edge.ingest.auth import AuthError
from edge.ingest.wire import InputError
from edge.store.catalog import CatalogError
from edge.store.embedded import EmbeddedRedis
from edge.store.profiles import StoreError
from tests.support import SECRET_KEY, SETTINGS_YAML, LiveEdge, basic, write_config

WALK_KEY = "sk-walk"  # every scope, so each route gets past authorization to its Redis calls
WALK_SETTINGS = SETTINGS_YAML.replace("secret_keys:\n", f"""secret_keys:
  {WALK_KEY}:
    site: shop
    scopes: [ingest, profiles:read, profiles:delete, admin, catalog:read, catalog:write]
""")


def _request(method: str = "POST", path: str = "/v1/track") -> Request:
    # An app with one route on the path, GET only: what a 405 names as allowed.
    app = Starlette(routes=[Route(path, lambda request: None, methods=["GET"])])
    return Request({"type": "http", "method": method, "path": path, "headers": [],
                    "query_string": b"", "scheme": "http", "server": ("edge", 80), "app": app})


class _Shape(msgspec.Struct):
    a: str


def _validation_error() -> msgspec.ValidationError:
    try:
        msgspec.json.decode(b'{"a": 1}', type=_Shape)
    except msgspec.ValidationError as exc:
        return exc
    raise AssertionError("msgspec accepted an int for a str")


def _decode_error() -> msgspec.DecodeError:
    try:
        msgspec.json.decode(b"{nope")
    except msgspec.DecodeError as exc:
        return exc
    raise AssertionError("msgspec accepted broken JSON")


# (exception, status, code, field, headers it must carry)
KNOWN = [
    (InputError("event", "expected str"), 400, "invalid_request", "event", {}),
    (InputError("body", "larger than 10 bytes", status=413), 413, "invalid_request", "body", {}),
    (AuthError(401, "unknown key"), 401, "unauthorized", None,
     {"WWW-Authenticate": 'Basic realm="kairos"'}),
    (AuthError(403, "the key lacks scope 'admin'"), 403, "forbidden", None, {}),
    (_validation_error(), 400, "invalid_request", "a", {}),
    (_decode_error(), 400, "invalid_request", "body", {}),
    (redis.exceptions.ConnectionError("refused"), 503, "unavailable", None, {"Retry-After": "1"}),
    (redis.exceptions.TimeoutError("slow"), 503, "unavailable", None, {"Retry-After": "1"}),
    (redis.exceptions.ResponseError("OOM"), 503, "unavailable", None, {"Retry-After": "1"}),
    (ConnectionResetError(104, "reset"), 503, "unavailable", None, {"Retry-After": "1"}),
    (TimeoutError(), 503, "unavailable", None, {"Retry-After": "1"}),
    (StoreError("did not settle"), 503, "unavailable", None, {"Retry-After": "1"}),
    (CatalogError("kept changing"), 503, "unavailable", None, {"Retry-After": "1"}),
    (ClientDisconnect(), 400, "client_disconnected", "body", {}),
    # a route's own 404 (the router's, for a path no route has: tests/test_openapi.py)
    (HTTPException(404), 404, "not_found", None, {}),
    (HTTPException(405, headers={"Allow": "GET"}), 405, "method_not_allowed", "method",
     {"Allow": "GET, HEAD, OPTIONS"}),
]


@pytest.mark.parametrize("exc, status, code, field, headers", KNOWN,
                         ids=[type(row[0]).__name__ for row in KNOWN])
def test_each_known_failure_has_its_answer(exc, status, code, field, headers):
    failure = errors.describe(exc, _request())
    assert (failure.status, failure.code, failure.field) == (status, code, field)
    assert failure.expected
    assert headers.items() <= dict(failure.headers or {}).items()
    body = failure.body()
    assert body["code"] == body["error"] == code and body["success"] is False
    assert body["reason"] and body["message"].endswith(body["reason"])


def test_every_row_of_the_table_is_exercised_above():
    """A row added to the table without a case here would go untested."""
    assert {cls for cls in errors.TABLE} <= {cls for exc, *_ in KNOWN for cls in type(exc).__mro__}


def test_an_unknown_exception_is_a_generic_500():
    failure = errors.describe(RuntimeError("secret detail"), _request())
    assert (failure.status, failure.code, failure.expected) == (500, "internal", False)
    assert "secret detail" not in failure.message


@given(field=st.text(min_size=1, max_size=40), reason=st.text(min_size=1, max_size=80),
       status=st.sampled_from([400, 413, 415, 422]))
def test_input_errors_carry_field_reason_and_segments_code_and_message(field, reason, status):
    body = errors.describe(InputError(field, reason, status), _request()).body()
    assert body == {"success": False, "error": "invalid_request", "code": "invalid_request",
                    "message": f"{field}: {reason}", "reason": reason, "field": field}


# -- live edges --------------------------------------------------------------------------------

@pytest.fixture
def doomed(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own, to stop (the session's serves the other tests)."""
    server = EmbeddedRedis(tmp_path / "doomed", persistent=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def walk_edge(doomed: EmbeddedRedis, tmp_path: Path) -> Iterator[LiveEdge]:
    with LiveEdge(write_config(tmp_path / "config", settings_yaml=WALK_SETTINGS), doomed.url) as live:
        yield live


def test_profile_routes_answer_503_with_retry_after_when_redis_is_down(walk_edge, doomed):
    assert walk_edge.post("/v1/identify", {"userId": "down"}).status_code == 200
    assert walk_edge.profile("user:down").status_code == 200
    doomed.stop()
    for method in ("GET", "DELETE"):
        r = walk_edge.http.request(method, "/v1/profiles/user:down", headers=basic(SECRET_KEY))
        assert r.status_code == 503, (method, r.text)
        assert r.headers["retry-after"] == "1"
        body = r.json()
        assert body["code"] == "unavailable" and "Redis" in body["message"]
        assert "slots" not in body  # empty decisions are for the ingest routes only


SAMPLE_PARAMS = {"profile_id": "anon:walker", "product_id": "p1", "path": "track"}
SAMPLE_BODIES: dict[str, Any] = {
    "/v1/track": {"event": "Walked", "anonymousId": "walker"},
    "/v1/page": {"anonymousId": "walker", "name": "Home"},
    "/v1/screen": {"anonymousId": "walker", "name": "Home"},
    "/v1/identify": {"anonymousId": "walker", "traits": {"first_name": "Wal"}},
    "/v1/alias": {"previousId": "walker", "userId": "walker-1"},
    "/v1/group": {"anonymousId": "walker", "groupId": "g1"},
    "/v1/e": {"type": "track", "event": "Walked", "anonymousId": "walker"},
    "/v1/batch": {"batch": [{"type": "track", "event": "Walked", "anonymousId": "walker"}]},
    "/v1/b": {"batch": [{"type": "track", "event": "Walked", "anonymousId": "walker"}]},
    "/v1/explain": {"profile": "anon:walker", "event": {"type": "page"}},
    "/v1/catalog/products": [{"id": "p1", "price": 10, "currency": "EUR"}],
}
# Each of these reads or writes Redis, so with it down each must say 503 and when to retry.
NEEDS_REDIS = {("post", p) for p in ("/v1/track", "/v1/page", "/v1/screen", "/v1/identify",
                                     "/v1/alias", "/v1/group", "/v1/e", "/v1/batch", "/v1/b",
                                     "/v1/explain", "/v1/admin/reload")} | {
    ("get", "/v1/profiles/{profile_id}"), ("delete", "/v1/profiles/{profile_id}"),
    ("put", "/v1/catalog/products"), ("get", "/v1/catalog/products/{product_id}"),
    ("delete", "/v1/catalog/products/{product_id}"),
}


def _walk(live: LiveEdge, doc: dict[str, Any]) -> dict[tuple[str, str], Any]:
    answers = {}
    for template, operations in doc["paths"].items():
        path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: SAMPLE_PARAMS.get(m[1], "x"), template)
        # The delete last, so the reads before it find what the writes left.
        for method in sorted(operations, key=lambda m: m == "delete"):
            body = SAMPLE_BODIES.get(template) if method in ("post", "put") else None
            answers[(method, template)] = live.http.request(
                method.upper(), path, json=body, headers=basic(WALK_KEY))
    return answers


def test_no_route_answers_500_with_redis_down(walk_edge, doomed):
    doc = walk_edge.http.get("/openapi.json").json()
    assert NEEDS_REDIS <= {(m, p) for p, ops in doc["paths"].items() for m in ops}
    up = _walk(walk_edge, doc)
    assert all(r.status_code < 500 for r in up.values()), {k: r.text for k, r in up.items()
                                                           if r.status_code >= 500}
    # With Redis up the samples get past validation, so the walk below reaches Redis.
    assert all(up[route].status_code in (200, 404) for route in NEEDS_REDIS), {
        route: up[route].text for route in NEEDS_REDIS}

    doomed.stop()
    down = _walk(walk_edge, doc)
    for route, r in [*up.items(), *down.items()]:  # every error speaks Segment's shape
        if route == ("get", "/readyz"):
            continue  # a probe's report of its checks, for load balancers, not an error
        if r.status_code >= 400 and r.headers["content-type"] == "application/json":
            assert {"code", "message", "reason"} <= set(r.json()), (route, r.text)
    for route, r in down.items():
        assert r.status_code != 500, (route, r.text)
        if route in NEEDS_REDIS:
            assert r.status_code == 503 and r.headers["retry-after"] == "1", (route, r.text)
            assert r.json()["code"] == "unavailable"
        else:  # answers without Redis: as it did, or (readiness) says it is not ready
            assert r.status_code in (up[route].status_code, 503), (route, r.text)
    assert down[("post", "/v1/track")].json()["slots"] == {}  # ingest keeps its empty decisions
    assert down[("get", "/healthz")].status_code == 200


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logged(edge) -> Iterator[list[logging.LogRecord]]:
    """What the edge and the server under it log (uvicorn's logger does not propagate)."""
    handler = _Records()
    loggers = [logging.getLogger("kairos"), logging.getLogger("uvicorn.error")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield handler.records
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)


def _bug(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("a bug with a secret in it")


@pytest.mark.parametrize("route", ["fast path", "starlette route"])
def test_a_bug_is_a_json_500_logged_once_with_its_traceback(edge, logged, monkeypatch, route):
    state = edge.app.state.edge
    if route == "fast path":
        monkeypatch.setattr(state.pipeline, "handle", _bug)
        r = edge.post("/v1/track", {"event": "E", "anonymousId": "bug"})
    else:
        monkeypatch.setattr(state.store, "read", _bug)
        r = edge.profile("anon:bug")
    assert r.status_code == 500
    assert r.json()["code"] == "internal" and "secret" not in r.text
    tracebacks = [rec for rec in logged if rec.exc_info]
    assert len(tracebacks) == 1, [rec.getMessage() for rec in logged]
    assert "a bug with a secret" in str(tracebacks[0].exc_info[1])


def test_bad_input_is_logged_as_one_line_without_traceback(edge, logged):
    r = edge.post("/v1/track", {"event": 5, "anonymousId": "x"})
    assert r.status_code == 400 and r.json()["field"] == "event"
    (line,) = [rec for rec in logged if rec.name == "kairos"]
    assert line.exc_info is None and line.levelno == logging.INFO
    message = line.getMessage()
    assert "\n" not in message and "/v1/track" in message and "400 event:" in message


def test_router_errors_come_from_the_table(edge):
    r = edge.http.get("/nowhere")
    assert r.status_code == 404 and r.json()["code"] == "not_found" and r.json()["field"] == "path"
    r = edge.http.put("/v1/track")
    assert r.status_code == 405 and r.json()["field"] == "method"
    assert "POST" in r.headers["allow"]
