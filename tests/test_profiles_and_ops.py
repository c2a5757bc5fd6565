"""Profile read and erasure, reloads, health, metrics, OpenAPI."""

from __future__ import annotations

import time

from edge.http.openapi import documented_path
from edge.store import streams
from tests.support import (PUBLIC_KEY, READ_ONLY_KEY, RULES_YAML, SECRET_KEY, SETTINGS_YAML, LiveEdge,
                           basic, write_config)


def test_erase_removes_every_key_identity_and_event(edge, redis_client):
    edge.track("Product Viewed", anonymousId="e-anon", properties={"category": "shoes", "product_id": "p"})
    edge.post("/v1/identify", {"userId": "e-user", "anonymousId": "e-anon",
                               "traits": {"email": "e@x.io", "first_name": "Eve"}})
    edge.track("Product Added", userId="e-user", properties={"product_id": "p", "price": 1})
    edge.track("Product Viewed", anonymousId="other", properties={"category": "bags"})
    assert redis_client.xlen("kairos:events") == 4

    r = edge.http.delete("/v1/profiles/user:e-user", headers=basic(SECRET_KEY))
    assert r.status_code == 200, r.text
    assert r.json()["events"] == 3
    for identifier in ("user:e-user", "anon:e-anon"):
        assert edge.profile(identifier).status_code == 404
    remaining = [k.decode() for k in redis_client.scan_iter("{p:*")]
    assert remaining and all(k.startswith("{p:anon:other}") for k in remaining)
    entries = redis_client.xrange("kairos:events")
    assert len(entries) == 1 and entries[0][1][b"p"] == b"anon:other"
    # the same visitor coming back starts from nothing
    edge.track("Product Viewed", anonymousId="e-anon", properties={"category": "shoes"})
    profile = edge.profile("anon:e-anon").json()
    assert profile["events"] == 1 and profile["traits"] == {}


def test_admin_reload_swaps_rules(edge):
    rules_file = edge.config_dir / "rules" / "test.yaml"
    rules_file.write_text(RULES_YAML.replace("<p>Welcome</p>", "<p>Welcome v2</p>"))
    r = edge.http.post("/v1/admin/reload", headers=basic(SECRET_KEY))
    assert r.status_code == 200, r.text
    assert r.json()["rules"] == 5
    r = edge.post("/v1/page", {"anonymousId": "rl"})
    assert r.json()["slots"]["hero"]["html"] == "<p>Welcome v2</p>"


def test_invalid_rules_keep_the_running_ones(edge):
    rules_file = edge.config_dir / "rules" / "test.yaml"
    rules_file.write_text(RULES_YAML.replace("when: traits.first_name != null", "when: traits.first_name !="))
    r = edge.http.post("/v1/admin/reload", headers=basic(SECRET_KEY))
    assert r.status_code == 422
    problems = r.json()["problems"]
    assert problems and problems[0].startswith("rules/test.yaml:")
    r = edge.post("/v1/page", {"anonymousId": "keep"})
    assert r.json()["slots"]["hero"]["html"] == "<p>Welcome</p>"


def test_rules_reload_when_files_change(edge):
    rules_file = edge.config_dir / "rules" / "test.yaml"
    rules_file.write_text(RULES_YAML.replace("<p>Welcome</p>", "<p>Hot</p>"))
    deadline = time.monotonic() + 10
    html = None
    while time.monotonic() < deadline:
        html = edge.post("/v1/page", {"anonymousId": "hot"}).json()["slots"]["hero"]["html"]
        if html == "<p>Hot</p>":
            break
        time.sleep(0.1)
    assert html == "<p>Hot</p>"


def test_health_ready_metrics(edge):
    assert edge.http.get("/healthz").json() == {"status": "ok"}
    ready = edge.http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"rules": True, "redis": True}
    edge.post("/v1/page", {"anonymousId": "m"})
    text = edge.http.get("/metrics", headers=basic(SECRET_KEY)).text
    assert 'kairos_requests_total{route="/v1/page",status="200"} 1.0' in text
    assert "kairos_request_seconds_bucket" in text
    assert "kairos_rule_evaluation_seconds_count 1.0" in text
    assert "kairos_redis_errors_total 0.0" in text


def test_openapi_lists_every_route(edge):
    doc = edge.http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for route in edge.app.routes:
        path = documented_path(route.path)
        assert path in doc["paths"], route.path
        for method in route.methods - {"HEAD"}:
            assert method.lower() in doc["paths"][path]
    assert "Event" in doc["components"]["schemas"]
    assert doc["paths"]["/v1/track"]["post"]["requestBody"]


def test_redis_down_answers_503_with_empty_decisions(redis_url, tmp_path):
    from edge.store.embedded import EmbeddedRedis
    from tests.support import LiveEdge, write_config

    doomed = EmbeddedRedis(tmp_path / "doomed", persistent=False)
    doomed.start()
    with LiveEdge(write_config(tmp_path / "config"), doomed.url) as live:
        assert live.post("/v1/page", {"anonymousId": "x"}).status_code == 200
        doomed.stop()
        started = time.monotonic()
        r = live.post("/v1/page", {"anonymousId": "x"})
        assert time.monotonic() - started < 3
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        body = r.json()
        assert body["slots"] == {} and body["messages"] == []
        assert live.http.get("/readyz").status_code == 503
        metrics = live.http.get("/metrics", headers=basic(SECRET_KEY)).text
        assert "kairos_redis_errors_total 1.0" in metrics


def test_stream_payload_is_the_normalized_event(edge, redis_client):
    edge.track("Signed Up", anonymousId="sp", properties={"plan": "pro"}, messageId="sp-1")
    (record,) = [streams.decode(fields) for _, fields in redis_client.xrange(streams.EVENTS)]
    assert isinstance(record, streams.Event) and record.profile_id == "anon:sp"
    event = record.event
    assert event["event"] == "Signed Up" and event["properties"] == {"plan": "pro"}
    assert event["site"] == "shop" and event["timestamp"] == edge.clock.now_ms()


def test_reload_under_traffic_drops_no_request(edge):
    import threading

    rules_file = edge.config_dir / "rules" / "test.yaml"
    seen: list[tuple[int, str]] = []
    stop = threading.Event()

    def traffic() -> None:
        import httpx

        with httpx.Client(base_url=edge.url, headers=basic(SECRET_KEY), timeout=10) as client:
            n = 0
            while not stop.is_set():
                r = client.post("/v1/page", json={"anonymousId": f"t{n % 5}"})
                seen.append((r.status_code, r.json()["slots"]["hero"]["html"] if r.status_code == 200 else r.text))
                n += 1

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        for version in range(6):
            rules_file.write_text(RULES_YAML.replace("<p>Welcome</p>", f"<p>Welcome {version}</p>"))
            assert edge.http.post("/v1/admin/reload", headers=basic(SECRET_KEY)).status_code == 200
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join()
    assert len(seen) > 10
    assert all(status == 200 for status, _ in seen), [s for s in seen if s[0] != 200][:3]
    allowed = {"<p>Welcome</p>"} | {f"<p>Welcome {v}</p>" for v in range(6)}
    assert {html for _, html in seen} <= allowed


def test_profiles_are_bounded(edge, redis_client):
    for i in range(25):
        edge.track("Product Viewed", anonymousId="bounded", properties={"product_id": f"p{i}", "category": f"c{i}"})
    profile = edge.profile("anon:bounded").json()
    assert profile["recent_products"] == [f"p{i}" for i in range(24, 4, -1)]  # 20 newest
    assert len(profile["recent_categories"]) == 10
    # anonymous profiles expire; a known customer's do not
    assert 0 < redis_client.pttl("{p:anon:bounded}") <= 90 * 86_400_000
    edge.post("/v1/identify", {"userId": "known", "traits": {f"t{i}": i for i in range(30)}})
    assert redis_client.pttl("{p:user:known}") == -1
    # the number of traits is capped (10 in the test settings); traits keep their types
    traits = edge.profile("user:known").json()["traits"]
    assert len(traits) == 10 and all(traits[name] == int(name[1:]) for name in traits)


def test_a_stalled_redis_answers_503_at_the_deadline_and_then_recovers(redis_url, tmp_path):
    import redis as redis_sync

    from edge.store.embedded import EmbeddedRedis
    from tests.support import LiveEdge, write_config

    stalled = EmbeddedRedis(tmp_path / "stalled", persistent=False)
    stalled.start()
    try:
        with LiveEdge(write_config(tmp_path / "config"), stalled.url) as live:
            assert live.post("/v1/page", {"anonymousId": "s"}).status_code == 200
            # Redis holds every command for 2.5 s; the edge waits 1 s (redis.deadline_ms).
            redis_sync.Redis.from_url(stalled.url).execute_command("CLIENT", "PAUSE", 2500, "ALL")
            started = time.monotonic()
            r = live.post("/v1/page", {"anonymousId": "s"})
            waited = time.monotonic() - started
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert 0.9 < waited < 2.4
            time.sleep(2.5 - waited + 0.2)
            after = live.post("/v1/page", {"anonymousId": "s"})
            assert after.status_code == 200 and after.json()["success"] is True
    finally:
        stalled.stop()


def test_metrics_are_private_unless_the_setting_says_public(redis_url, tmp_path):
    config = write_config(tmp_path / "private")
    with LiveEdge(config, redis_url) as live:
        assert live.http.get("/metrics").status_code == 401
        for key, status in ((PUBLIC_KEY, 403), (READ_ONLY_KEY, 403), (SECRET_KEY, 200)):
            answer = live.http.get("/metrics", headers=basic(key))
            assert answer.status_code == status, (key, answer.text)
        assert "scope 'metrics'" in live.http.get("/metrics", headers=basic(READ_ONLY_KEY)).text
    public = write_config(tmp_path / "public", settings_yaml=SETTINGS_YAML + "metrics:\n  public: true\n")
    with LiveEdge(public, redis_url) as live:
        answer = live.http.get("/metrics")
        assert answer.status_code == 200 and "kairos_requests_total" in answer.text
