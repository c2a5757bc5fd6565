"""Every class of bad input gets a 4xx JSON error naming the field and the reason."""

from __future__ import annotations

import orjson
import pytest

from tests.support import (PUBLIC_KEY, READ_ONLY_KEY, SECRET_KEY, SETTINGS_YAML, LiveEdge, basic,
                           write_config)


def error(r, status: int, field: str | None = None):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False
    assert body["reason"]
    if field is not None:
        assert body["field"] == field, body
    return body


def raw(edge, path: str, content: bytes, key: str = SECRET_KEY, content_type: str = "application/json"):
    return edge.http.post(path, content=content, headers={**basic(key), "Content-Type": content_type})


def test_not_json(edge):
    error(raw(edge, "/v1/track", b"{nope"), 400, "body")


def test_empty_body(edge):
    error(raw(edge, "/v1/track", b""), 400, "body")


def test_body_not_an_object(edge):
    error(raw(edge, "/v1/track", b"[1,2]"), 400)


def test_wrong_type_names_the_field(edge):
    body = error(edge.post("/v1/track", {"event": 5, "anonymousId": "x"}), 400, "event")
    assert "str" in body["reason"]


def test_bad_timestamp(edge):
    error(edge.post("/v1/track", {"event": "E", "anonymousId": "x", "timestamp": "yesterday"}), 400, "timestamp")


def test_missing_event_name(edge):
    error(edge.post("/v1/track", {"anonymousId": "x"}), 400, "event")


def test_missing_ids(edge):
    error(edge.post("/v1/track", {"event": "E"}), 400, "userId")


def test_alias_needs_previous_id(edge):
    error(edge.post("/v1/alias", {"userId": "u"}), 400, "previousId")


def test_group_needs_group_id(edge):
    error(edge.post("/v1/group", {"userId": "u"}), 400, "groupId")


def test_body_too_large(edge):
    big = orjson.dumps({"event": "E", "anonymousId": "x", "properties": {"s": "x" * 70_000}})
    error(raw(edge, "/v1/track", big), 413, "body")


def chunks(data: bytes, size: int):
    """A body sent in pieces, without Content-Length (chunked transfer encoding)."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


def test_a_chunked_body_is_read_whole_and_held_to_the_limit(edge):
    body = orjson.dumps({"event": "Chunked", "anonymousId": "chunky", "properties": {"n": 1}})
    r = edge.http.post("/v1/track", content=chunks(body, 7),
                       headers={**basic(SECRET_KEY), "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    big = orjson.dumps({"event": "E", "anonymousId": "x", "properties": {"s": "x" * 70_000}})
    r = edge.http.post("/v1/track", content=chunks(big, 4096),
                       headers={**basic(SECRET_KEY), "Content-Type": "application/json"})
    error(r, 413, "body")


def test_too_deep(edge):
    nested: dict = {}
    cur = nested
    for _ in range(8):
        cur["a"] = {}
        cur = cur["a"]
    body = error(edge.post("/v1/track", {"event": "E", "anonymousId": "x", "properties": nested}), 400)
    assert body["field"].startswith("properties.a")
    assert "nested deeper" in body["reason"]


BIG = 100_000_000_000_000_000_000  # past 64 bits


@pytest.mark.parametrize("key", [SECRET_KEY, PUBLIC_KEY])
@pytest.mark.parametrize(("path", "event", "field"), [
    ("/v1/track", {"event": "E", "properties": {"n": BIG}}, "properties.n"),
    ("/v1/page", {"properties": {"n": [1, -BIG]}}, "properties.n[1]"),
    ("/v1/identify", {"traits": {"n": BIG}}, "traits.n"),
    ("/v1/screen", {"context": {"n": BIG}}, "context.n"),
    ("/v1/group", {"groupId": "g", "traits": {"n": BIG}}, "traits.n"),
    ("/v1/e", {"type": "track", "event": "E", "properties": {"n": BIG}}, "properties.n"),
    ("/v1/batch", {"batch": [{"type": "track", "event": "E", "properties": {"n": BIG}}]},
     "batch[0].properties.n"),
    ("/v1/b", {"batch": [{"type": "track", "event": "E", "properties": {"n": BIG}}]},
     "batch[0].properties.n"),
])
def test_whole_numbers_past_64_bits_are_named(edge, redis_client, key, path, event, field):
    body = dict(event)
    if "batch" in body:
        body["batch"] = [{**item, "anonymousId": "big"} for item in body["batch"]]
    else:
        body["anonymousId"] = "big"
    answer = edge.post(path, body, key=key, Origin="http://shop.test")
    assert "64-bit" in error(answer, 400, field)["reason"]
    assert redis_client.xlen("kairos:events") == 0


def test_the_largest_64_bit_numbers_are_kept(edge):
    extremes = {"low": -(2**63), "high": 2**64 - 1}
    assert edge.post("/v1/identify", {"userId": "extremes", "traits": extremes}).status_code == 200
    traits = edge.profile("user:extremes").json()["traits"]
    assert (traits["low"], traits["high"]) == (-(2**63), 2**64 - 1)


@pytest.fixture
def catalog_writer(redis_url, tmp_path):
    """The test edge with a secret key that may write the catalog."""
    config = write_config(tmp_path / "catalog-config", settings_yaml=SETTINGS_YAML.replace(
        "scopes: [ingest, profiles:read, profiles:delete, admin, metrics]",
        "scopes: [ingest, profiles:read, profiles:delete, admin, metrics, catalog:write]", 1))
    with LiveEdge(config, redis_url) as live:
        yield live


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v1/track"), ("POST", "/v1/e"), ("POST", "/v1/batch"), ("POST", "/v1/explain"),
    ("PUT", "/v1/catalog/products")])
@pytest.mark.parametrize("key", [None, SECRET_KEY])
def test_deep_nesting_is_refused_before_anything_recurses(edge, request, caplog, method, path,
                                                         key):
    """10,000 levels fit in 60 KB, under the test limit (60,000 in 360 KB under the
    default one): refused with 400, with a key or without one (the catalog asks for its
    key first), and logged as one line rather than a traceback. Explain and the catalog
    ask for their key before they read a body: without one, 401, and nothing was read."""
    asks_key_first = path.startswith(("/v1/explain", "/v1/catalog"))
    if path.startswith("/v1/catalog"):
        edge = request.getfixturevalue("catalog_writer")
    levels = 10_000
    body = b'{"event":"E","anonymousId":"x","properties":' + b'{"a":' * levels + b"1" + b"}" * (levels + 1)
    headers = {"Content-Type": "application/json", **(basic(key) if key else {})}
    with caplog.at_level("INFO"):
        answer = edge.http.request(method, path, content=body, headers=headers)
    if key is None and asks_key_first:
        assert "missing key" in error(answer, 401)["reason"]
    else:
        assert "nested deeper than 14 levels" in error(answer, 400, "body")["reason"]
    assert not [record for record in caplog.records if record.exc_info]
    assert "Traceback" not in caplog.text


def test_nesting_within_the_limits_is_not_refused(edge):
    # five levels of properties inside a batch: as deep as the test limits allow
    nested: dict = {"v": 1}
    for _ in range(4):
        nested = {"a": nested}
    answer = edge.post("/v1/batch", {"batch": [{"type": "track", "event": "E", "anonymousId": "x",
                                                "properties": nested}]})
    assert answer.status_code == 200, answer.text


def test_too_many_properties(edge):
    props = {f"k{i}": i for i in range(41)}
    body = error(edge.post("/v1/track", {"event": "E", "anonymousId": "x", "properties": props}), 400, "properties")
    assert "more than 40 keys" in body["reason"]


def test_string_too_long(edge):
    body = error(edge.post("/v1/track", {"event": "E", "anonymousId": "x", "properties": {"s": "y" * 501}}),
                 400, "properties.s")
    assert "longer than 500" in body["reason"]


def test_id_too_long_and_control_characters(edge):
    error(edge.post("/v1/track", {"event": "E", "anonymousId": "x" * 101}), 400, "anonymousId")
    error(edge.post("/v1/track", {"event": "E", "anonymousId": "a\nb"}), 400, "anonymousId")


def test_unknown_type_in_batch_names_the_index(edge, redis_client):
    batch = {"batch": [{"type": "track", "event": "E", "anonymousId": "ok"},
                       {"type": "explode", "anonymousId": "x"}]}
    error(edge.post("/v1/batch", batch), 400, "batch[1].type")
    # nothing of the rejected batch was written
    assert redis_client.xlen("kairos:events") == 0


def test_bad_field_deep_in_batch(edge):
    batch = {"batch": [{"type": "track", "event": "E", "anonymousId": "ok"},
                       {"type": "track", "event": "E", "userId": True}]}
    error(edge.post("/v1/batch", batch), 400, "batch[1].userId")


def test_batch_too_large_and_empty(edge):
    error(edge.post("/v1/batch", {"batch": []}), 400, "batch")
    many = {"batch": [{"type": "track", "event": "E", "anonymousId": "x"}] * 51}
    error(edge.post("/v1/batch", many), 400, "batch")


def test_unsupported_content_type(edge):
    error(raw(edge, "/v1/track", b"event=E", content_type="application/x-www-form-urlencoded"),
          415, "Content-Type")


def test_missing_and_unknown_key(edge):
    r = edge.http.post("/v1/track", json={"event": "E", "anonymousId": "x"})
    error(r, 401)
    error(edge.post("/v1/track", {"event": "E", "anonymousId": "x"}, key="nope"), 401)


def test_origin_not_allowed_for_public_key(edge):
    r = edge.post("/v1/track", {"event": "E", "anonymousId": "x"}, PUBLIC_KEY, Origin="http://evil.test")
    error(r, 403)


def test_public_key_cannot_read_or_delete_profiles(edge):
    edge.track("E", anonymousId="p1")
    error(edge.profile("anon:p1", key=PUBLIC_KEY), 403)
    error(edge.http.delete("/v1/profiles/anon:p1", headers=basic(PUBLIC_KEY)), 403)


def test_scopes_are_enforced(edge):
    edge.track("E", anonymousId="p2")
    assert edge.profile("anon:p2", key=READ_ONLY_KEY).status_code == 200
    error(edge.http.delete("/v1/profiles/anon:p2", headers=basic(READ_ONLY_KEY)), 403)
    error(edge.track("E", key=READ_ONLY_KEY, anonymousId="p2"), 403)
    error(edge.http.post("/v1/admin/reload", headers=basic(READ_ONLY_KEY)), 403)


def test_unsigned_user_id_from_browser_needs_anonymous_id(edge):
    error(edge.post("/v1/track", {"event": "E", "userId": "u"}, PUBLIC_KEY), 400, "anonymousId")


def test_unknown_route_and_method(edge):
    error(edge.http.get("/nothing"), 404, "path")
    error(edge.http.get("/v1/track"), 405)


def test_profile_not_found(edge):
    error(edge.profile("user:ghost"), 404, "id")


@pytest.mark.parametrize("payload", [b"null", b"1", b'"s"', b"{\"properties\": []}"])
def test_odd_json_never_500(edge, payload):
    r = raw(edge, "/v1/track", payload)
    assert 400 <= r.status_code < 500


def test_gzip_body_accepted_and_bomb_refused(edge):
    import gzip

    body = gzip.compress(orjson.dumps({"event": "Zipped", "anonymousId": "gz"}))
    r = edge.http.post("/v1/track", content=body, headers={**basic(SECRET_KEY), "Content-Encoding": "gzip",
                                                           "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    bomb = gzip.compress(b"{" + b" " * 200_000 + b"}")
    r = edge.http.post("/v1/track", content=bomb, headers={**basic(SECRET_KEY), "Content-Encoding": "gzip"})
    error(r, 413, "body")
    r = edge.http.post("/v1/track", content=b"not gzip", headers={**basic(SECRET_KEY), "Content-Encoding": "gzip"})
    error(r, 400, "body")


def test_unexpected_error_on_the_ingest_fast_path_is_json_500(edge, monkeypatch):
    async def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(edge.app.state.edge.pipeline, "handle", broken)
    r = edge.post("/v1/track", {"event": "E", "anonymousId": "x"})
    assert r.status_code == 500
    assert r.json()["error"] == "internal" and "a bug" not in r.text
