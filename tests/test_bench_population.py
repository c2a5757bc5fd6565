"""The benchmark's preloaded population is real: the edge reads and updates it as its own.

A small population goes into a real redis-server with bench.population; a live
edge then answers GET /v1/profiles with the aggregates, traits and identities
that were written (aggregates checked against their reference definition in
rules.aggregates), joins a known customer by user id and email, counts a new
event on top of the preloaded buckets, and recognises a preloaded message id.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
import redis

from bench.population import Population, sampled_memory
from edge.runtime.clock import FakeClock
from tests.support import LiveEdge, write_config

PROFILES = 2_000


@pytest.fixture
def loaded(redis_url: str, tmp_path: Path):
    # Real time: the loaded keys' expiry is absolute, on Redis's own clock.
    now = int(time.time() * 1000)
    config = write_config(tmp_path / "config")
    population = Population(config, now, personas=60, seed=3)
    report = population.load(redis_url, PROFILES)
    with LiveEdge(config, redis_url, clock=FakeClock(now)) as edge:
        yield population, edge, report


def _pick(population: Population, known: bool, busy: bool = False) -> int:
    """A profile of the wanted kind (busy: with product views in the last week)."""
    for i in range(PROFILES):
        expected = population.expected(i)
        if expected["known"] == known and (not busy or expected["aggregates"]["views_7d"] > 0):
            return i
    raise AssertionError("no such profile in the population")


def _assert_matches(body: dict, expected: dict) -> None:
    assert body["id"] == expected["id"]
    assert body["visits"] == expected["visits"]
    assert body["events"] == expected["events"]
    assert body["traits"] == expected["traits"]
    assert body["identities"] == expected["identities"]
    assert body["recent_products"] == expected["recent_products"]
    assert body["recent_categories"] == expected["recent_categories"]
    assert body["segments"] == expected["segments"]
    assert body["verified"] == expected["known"]
    assert body["aggregates"] == pytest.approx(expected["aggregates"])


def test_the_edge_reads_preloaded_profiles(loaded) -> None:
    population, edge, report = loaded
    assert report["commands"] > PROFILES
    held: set[str] = set()
    # One profile of every persona, at both ends of the id range.
    for i in [*range(len(population.personas)), *range(PROFILES - 60, PROFILES)]:
        expected = population.expected(i)
        response = edge.profile(expected["id"])
        assert response.status_code == 200, response.text
        _assert_matches(response.json(), expected)
        held |= {name for name, value in expected["aggregates"].items() if value}
    # Every kind of aggregate (count, sum, distinct, last) held something somewhere.
    assert held >= {"views_7d", "spend_30d", "cats_30d", "last_cat"}


def test_a_known_customer_is_found_by_user_id_and_email(loaded) -> None:
    population, edge, _ = loaded
    expected = population.expected(_pick(population, known=True))
    ids = expected["ids"]
    by_user = edge.profile(ids["user_id"]).json()
    assert by_user["id"] == expected["id"]
    assert by_user["user_id"] == ids["user_id"]
    assert edge.profile(ids["eident"]).json()["id"] == expected["id"]
    # Logging in again joins nothing new: the same profile answers.
    answer = edge.post("/v1/identify", {"userId": ids["user_id"], "anonymousId": ids["anonymous_id"],
                                        "traits": {"email": ids["email"]}}).json()
    assert answer["profileId"] == expected["id"]


def test_an_event_adds_to_the_preloaded_aggregates(loaded) -> None:
    population, edge, _ = loaded
    i = _pick(population, known=False, busy=True)
    expected = population.expected(i)
    before = edge.profile(expected["id"]).json()
    answer = edge.track("Product Viewed", anonymousId=expected["ids"]["anonymous_id"],
                        properties={"product_id": "sku-new", "category": "shoes"}).json()
    assert answer["profileId"] == expected["id"]
    after = edge.profile(expected["id"]).json()
    assert after["events"] == before["events"] + 1
    for name in ("views_1h", "views_7d", "shoe_views_1d"):
        assert after["aggregates"][name] == before["aggregates"][name] + 1
    assert after["aggregates"]["last_cat"] == "shoes"
    assert after["aggregates"]["spend_30d"] == pytest.approx(before["aggregates"]["spend_30d"])
    assert after["recent_products"][0] == "sku-new"


def test_a_preloaded_message_id_is_a_duplicate(loaded) -> None:
    population, edge, _ = loaded
    # A retry is recognised within the dedupe window: take an id seen inside it.
    window_ms = population.settings.profiles.dedupe_window_hours * 3_600_000
    recent = [(i, message_id) for i in range(PROFILES)
              if not population.expected(i)["known"]
              for message_id, at in population.persona_of(i).state.seen.items()
              if at > population.now_ms - window_ms]
    assert recent, "no anonymous profile with a message id inside the dedupe window"
    i, message_id = recent[0]
    expected = population.expected(i)
    answer = edge.track("Product Viewed", anonymousId=expected["ids"]["anonymous_id"],
                        messageId=message_id, properties={"product_id": "sku-1"}).json()
    assert answer["duplicate"] is True
    assert edge.profile(expected["id"]).json()["events"] == expected["events"]


def test_memory_is_measured_per_profile(loaded, redis_url: str) -> None:
    population, _, _ = loaded
    client = redis.Redis.from_url(redis_url)
    sampled = sampled_memory(client, population, PROFILES, samples=50)
    client.close()
    assert 200 < sampled["per_profile"] < 20_000
    assert sampled["by_key"]["hash"] > 0 and sampled["by_key"][":ids"] > 0


def test_locust_traffic_is_accepted(redis_url: str, tmp_path: Path) -> None:
    """A few seconds of the locustfile's three kinds of user: nothing is refused."""
    # Only looked up, never imported here: importing locust patches the whole process
    # for gevent (sockets, ssl), which breaks what other tests have imported already.
    if importlib.util.find_spec("locust") is None:
        pytest.skip("locust (bench extras) is not installed")
    import json
    import os
    import subprocess
    import sys

    from tests.support import ORIGIN, PUBLIC_KEY, SECRET_KEY, USER_HASH_SECRET

    config = write_config(tmp_path / "config")
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "KAIROS_WRITE_KEY": PUBLIC_KEY, "KAIROS_SECRET_KEY": SECRET_KEY,
           "KAIROS_ORIGIN": ORIGIN, "KAIROS_USER_HASH_SECRET": USER_HASH_SECRET,
           "KAIROS_POPULATION": "50", "KAIROS_WEB_WEIGHT": "1", "KAIROS_APP_WEIGHT": "1",
           "KAIROS_POS_WEIGHT": "1", "KAIROS_THINK_MIN": "0.02", "KAIROS_THINK_MAX": "0.05",
           "KAIROS_POS_BATCH": "20", "KAIROS_POS_EVERY": "0.5", "KAIROS_LOGIN_RATE": "0.5"}
    with LiveEdge(config, redis_url) as edge:
        stats = tmp_path / "stats"
        subprocess.run([sys.executable, "-m", "locust", "-f", str(root / "bench" / "locustfile.py"),
                        "--headless", "--only-summary", "--host", edge.url, "-u", "3", "-r", "3",
                        "-t", "4s", "--json-file", str(stats), "--loglevel", "WARNING"],
                       env=env, cwd=root, check=False, capture_output=True, timeout=60)
    entries = json.loads((tmp_path / "stats.json").read_text())
    names = {e["name"] for e in entries}
    assert {"page", "screen", "batch of 20"} <= names, names
    assert sum(e["num_failures"] for e in entries) == 0, entries
