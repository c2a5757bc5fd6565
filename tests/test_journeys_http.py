"""The journey routes over HTTP: who may list, enrol, pause and resume, and what they do."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.automation_support import SharedClock, ThreadWorker, outbox, wait_until
from tests.support import SECRET_KEY, LiveEdge, basic
from tests.test_automation import HOUR, WELCOME, automation_config, quiet, signed_up

ENROLL_KEY = "sk-enroll-welcome"
ONBOARDING = """
id: onboarding
entry: { enrollment: api }
steps:
  - { id: hello, send: { channel: email, body: "Hello {{ event.properties.seller }}" } }
"""
KEYS = f"""
  {ENROLL_KEY}:
    site: shop
    scopes: [journeys:enroll]
    journeys: [onboarding]
"""


@pytest.fixture
def clock(tmp_path: Path) -> SharedClock:
    return SharedClock(tmp_path / "clock")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    config = automation_config(tmp_path / "config", {"welcome": WELCOME, "onboarding": ONBOARDING})
    settings = (config / "kairos.yaml").read_text()
    (config / "kairos.yaml").write_text(settings.replace("secret_keys:\n", "secret_keys:\n" + KEYS.lstrip("\n"), 1))
    return config


def enrol(edge: LiveEdge, body: dict, key: str = ENROLL_KEY, journey: str = "onboarding", **headers: str):
    return edge.http.post(f"/v1/journeys/{journey}/enrollments", json=body,
                          headers={**basic(key), **headers})


def test_enrolment_is_limited_to_the_journeys_the_key_names(config, redis_url, redis_client, clock):
    with LiveEdge(config, redis_url, clock=clock) as edge:
        edge.post("/v1/identify", {"userId": "cust", "traits": {"email": "c@example.com"}})
        assert enrol(edge, {"people": [{"profile": "cust"}], "idempotency_key": "a"},
                     journey="welcome").status_code == 403
        assert enrol(edge, {"people": [{"profile": "cust"}], "idempotency_key": "a"},
                     key="sk-readonly").status_code == 403
        missing_key = enrol(edge, {"people": [{"profile": "cust"}]})
        assert missing_key.status_code == 400 and missing_key.json()["field"] == "idempotency_key"
        bad = enrol(edge, {"people": [{"profile": 7}], "idempotency_key": "a"})
        assert bad.status_code == 400 and "people" in bad.json()["field"]
        assert enrol(edge, {"people": [{"profile": "cust"}], "idempotency_key": "a"},
                     journey="nope").status_code == 403  # not named by the key: not even told
        unknown = enrol(edge, {"people": [{"profile": "cust"}], "idempotency_key": "a"},
                        key=SECRET_KEY, journey="nope")
        assert unknown.status_code == 404 and unknown.json()["field"] == "journey_id"
        listed = edge.http.get("/v1/journeys", headers=basic(ENROLL_KEY)).json()
        assert [j["id"] for j in listed["journeys"]] == ["onboarding"]
        everything = edge.http.get("/v1/journeys", headers=basic(SECRET_KEY)).json()
        assert [j["id"] for j in everything["journeys"]] == ["onboarding", "welcome"]
        assert edge.http.get("/v1/journeys", headers=basic("sk-readonly")).status_code == 403


def test_an_enrolment_retried_with_its_key_enrols_each_person_once(config, redis_url, redis_client, clock):
    with LiveEdge(config, redis_url, clock=clock) as edge, ThreadWorker(config, redis_url, clock):
        for user in ("c1", "c2"):
            edge.post("/v1/identify", {"userId": user, "traits": {"email": f"{user}@example.com"}})
        body = {"people": [{"profile": "c1", "data": {"seller": "Ana"}}, {"profile": "c2"},
                           {"profile": "nobody"}]}
        first = enrol(edge, body, **{"Idempotency-Key": "meeting-17"})
        assert first.status_code == 202
        assert [p["profile"] for p in first.json()["accepted"]] == ["user:c1", "user:c2"]
        assert first.json()["rejected"] == [{"index": 2, "profile": "nobody",
                                             "reason": "no profile for this identifier"}]
        assert enrol(edge, body, **{"Idempotency-Key": "meeting-17"}).status_code == 202
        wait_until(lambda: quiet(redis_client, clock), what="the enrolments")
        assert sorted((m.profile_id, m.body) for m in outbox(redis_client)) == [
            ("user:c1", "Hello Ana"), ("user:c2", "Hello ")]
        counts = edge.http.get("/v1/journeys", headers=basic(SECRET_KEY)).json()["journeys"][0]
        assert counts["id"] == "onboarding" and counts["entered"] == 2
        assert counts["steps"][0]["counts"] == {"sent": 2}


def test_a_paused_journey_takes_no_one_in_and_holds_its_runs_until_resumed(
        config, redis_url, redis_client, clock):
    with LiveEdge(config, redis_url, clock=clock) as edge, ThreadWorker(config, redis_url, clock):
        signed_up(edge, "before")
        wait_until(lambda: quiet(redis_client, clock), what="the first sign-up")
        assert edge.http.post("/v1/journeys/welcome/pause", headers=basic(ENROLL_KEY)).status_code == 403
        assert edge.http.post("/v1/journeys/welcome/pause", headers=basic(SECRET_KEY)).json() == {
            "journey": "welcome", "paused": True}
        wait_until(lambda: edge.http.get("/v1/journeys", headers=basic(SECRET_KEY)).json()
                   ["journeys"][1]["paused"], what="the pause")
        import time
        time.sleep(2.5)  # the worker reads pauses once a second
        signed_up(edge, "during")
        clock.advance(2 * 24 * HOUR)  # the wait for a first order times out, but paused
        wait_until(lambda: quiet(redis_client, clock), what="the paused timeout")
        held = edge.profile("user:before").json()["journeys"]["runs"]
        assert [r["step"] for r in held] == ["first-order"]
        assert edge.profile("user:during").json()["journeys"]["runs"] == []
        assert sorted(m.body for m in outbox(redis_client)) == ["Welcome"]
        edge.http.post("/v1/journeys/welcome/resume", headers=basic(SECRET_KEY))
        time.sleep(2.5)
        clock.advance(61_000)  # a held run looks again a minute later
        wait_until(lambda: len(outbox(redis_client)) == 2, what="the nudge after the resume")
    assert sorted(m.body for m in outbox(redis_client)) == ["10% off your first order", "Welcome"]
