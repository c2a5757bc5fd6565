"""Lookalike audiences on a synthetic population whose true lookalikes are known.

A hidden type of person (what they browse, how often they come, the channels they
use) makes both the seed (people of the type who bought: the `buyers` segment of the
scenario's rules) and the true lookalikes (people of the same type who have not
bought yet); people of other types, and a few buyers of other types, fill the rest.
Every event goes through the edge's own batch API, so the profiles, their segments
and aggregates are the ones the edge keeps; the lookalike is then built from Redis,
and its recall at the chosen size (true lookalikes among the top N, N being how many
there are) is asserted, as is the export of only the consented among them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import redis
import redis.asyncio as aioredis
from hypothesis import given, settings as hypothesis_settings, strategies as st

from edge import cli
from edge.connectors.audiences import normalize_email, normalize_phone, sha256_hex
from edge.pipeline.rulebook import build, read_documents
from edge.runtime.clock import FakeClock
from edge.runtime.config import load_settings
from edge.store import audiences as audience_store
from edge.store import segments
from edge.store.profiles import ProfileStore
from edge.worker.lookalike import build_lookalike
from edge.worker.lookalike.features import FeatureSpace, matrix
from edge.worker.lookalike.model import separating, top_scorers
from tests.ad_platforms import GoogleAudiences
from tests.support import SETTINGS_YAML, LiveEdge, write_config

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_RULES = (ROOT / "config" / "scenarios" / "07-lookalike" / "rules.yaml").read_text()
RULES = SCENARIO_RULES + """  - id: nobody
    when: traits.never_given == true
"""
TOKEN = "test-ads-token"
DAY = 86_400_000
REGION = "CZ"

CATEGORIES = {
    "outdoor": {"Outdoor": 5, "Camping": 4, "Bikes": 3},
    "fashion": {"Clothing": 5, "Shoes": 4, "Beauty": 3},
    "electronics": {"Phones": 5, "Computers": 4, "Gaming": 3},
    "home": {"Kitchen": 5, "Garden": 4, "Furniture": 3},
}
EVERY_CATEGORY = sorted({c for weights in CATEGORIES.values() for c in weights} | {"Books", "Toys"})
OTHER_TYPES = ("fashion", "electronics", "home", "casual")


@dataclass
class Person:
    user_id: str
    kind: str  # the hidden type
    buys: bool
    email: str | None
    phone: str | None
    push: bool
    advertising: bool | None
    anonymous: bool = False  # a visitor never identified: nothing to match an ad on
    events: list[dict[str, Any]] = field(default_factory=list)


def synthetic_population(now_ms: int, rng: random.Random) -> list[Person]:
    """Seed: 140 outdoor buyers and 30 buyers of other types; true lookalikes: 120 outdoor
    people without an order; 610 others of other types; and 30 outdoor visitors who never
    signed in, whom no ad platform could match. The outdoor type browses
    outdoor categories (others do too, less), comes back often and lately, has a push
    subscription and opens pushes more than others do: tendencies, not rules, so the
    types overlap."""
    groups = ([("outdoor", True)] * 140 + [("outdoor", False)] * 120
              + [(rng.choice(OTHER_TYPES), True) for _ in range(30)]
              + [(rng.choice(OTHER_TYPES), False) for _ in range(610)])
    rng.shuffle(groups)
    people = []
    for number, (kind, buys) in enumerate(groups):
        outdoor = kind == "outdoor"
        has_email = rng.random() < 0.92
        person = Person(
            user_id=f"u{number:04d}", kind=kind, buys=buys,
            email=f"Person.{number}@example.com" if has_email else None,
            phone=f"603 {number:06d}" if (not has_email or rng.random() < 0.4) else None,
            push=rng.random() < (0.65 if outdoor else 0.3),
            advertising=rng.choices([True, False, None], [0.75, 0.15, 0.10])[0])
        person.events = _history(person, now_ms, rng)
        people.append(person)
    for number in range(30):
        visitor = Person(f"visitor{number:02d}", "outdoor", buys=False, email=None, phone=None,
                         push=False, advertising=None, anonymous=True)
        visitor.events = _history(visitor, now_ms, rng)[1:]  # no identify
        people.append(visitor)
    return people


def _history(person: Person, now_ms: int, rng: random.Random) -> list[dict[str, Any]]:
    outdoor = person.kind == "outdoor"
    visits = rng.randint(3, 9) if outdoor else rng.randint(1, 6)
    last_day = rng.uniform(0, 20) if outdoor else rng.uniform(0, 60)
    first_day = last_day + rng.uniform(5, 80)
    days = sorted((rng.uniform(last_day, first_day) for _ in range(visits - 1)),
                  reverse=True) + [last_day]
    weights = CATEGORIES.get(person.kind, {})
    categories = [c for c in EVERY_CATEGORY]
    category_weights = [weights.get(c, 1.4 if outdoor else 1.0) for c in categories]
    traits: dict[str, Any] = {"consent": {"source": "cookie banner"}}
    for name, value in (("email", person.email), ("phone", person.phone)):
        if value:
            traits[name] = value
    if person.push:
        traits["push_token"] = f"token-{person.user_id}"
    if person.advertising is not None:
        traits["consent"]["advertising"] = person.advertising
    else:
        del traits["consent"]
    events: list[dict[str, Any]] = [_event(person, "identify", now_ms - days[0] * DAY,
                                           traits=traits)]
    order_visits = set(rng.sample(range(len(days)), min(len(days), rng.randint(1, 2)))
                       ) if person.buys else set()
    for visit, day in enumerate(days):
        moment = now_ms - day * DAY
        for view in range(rng.randint(1, 3)):
            category = rng.choices(categories, category_weights)[0]
            events.append(_event(person, "track", moment + view * 60_000,
                                 event="Product Viewed",
                                 properties={"product_id": f"{category[:3]}-{rng.randint(1, 40)}",
                                             "category": category, "price": 30}))
        if visit in order_visits:
            events.append(_event(person, "track", moment + 600_000, event="Order Completed",
                                 properties={"order_id": f"{person.user_id}-{visit}",
                                             "revenue": rng.randint(40, 140)}))
        if person.push and rng.random() < (0.5 if outdoor else 0.2):
            events.append(_event(person, "track", moment + 900_000, event="Push Opened"))
        elif person.email and rng.random() < 0.25:
            events.append(_event(person, "track", moment + 900_000, event="Email Opened"))
    return events


def _event(person: Person, kind: str, at_ms: float, **fields: Any) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(int(at_ms) / 1000, tz=timezone.utc)
    who = "anonymousId" if person.anonymous else "userId"
    return {"type": kind, who: person.user_id,
            "timestamp": stamp.isoformat().replace("+00:00", "Z"), **fields}


def post_everyone(edge: LiveEdge, people: list[Person], per_batch: int = 500) -> None:
    """Through /v1/batch, each person's events in order (a batch keeps them so)."""
    batch: list[dict[str, Any]] = []
    for person in people:
        if len(batch) + len(person.events) > per_batch:
            _post(edge, batch)
            batch = []
        batch += person.events
    if batch:
        _post(edge, batch)


def _post(edge: LiveEdge, batch: list[dict[str, Any]]) -> None:
    answer = edge.post("/v1/batch", {"batch": batch})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == len(batch)


@dataclass
class World:
    config: Path
    redis_url: str
    clock: FakeClock
    people: list[Person]
    google: GoogleAudiences
    edge: LiveEdge

    @property
    def seed(self) -> set[str]:
        return {f"user:{p.user_id}" for p in self.people if p.buys}

    @property
    def true_lookalikes(self) -> set[str]:
        return {f"user:{p.user_id}" for p in self.people
                if p.kind == "outdoor" and not p.buys and not p.anonymous}

    def person(self, profile_id: str) -> Person:
        return next(p for p in self.people if f"user:{p.user_id}" == profile_id)


def settings_yaml(google: GoogleAudiences) -> str:
    limits = (SETTINGS_YAML.replace("max_batch_events: 50", "max_batch_events: 500")
              .replace("max_body_bytes: 65536", "max_body_bytes: 1048576"))
    return limits + f"""audiences:
  buyers-lookalike-google:
    segment: buyers-lookalike
    stored: true
    format: google
    to: api
    base_url: {google.url}
    token_env: ADS_TOKEN
    account_id: "1234567890"
    audience_id: "777"
"""


@pytest.fixture(scope="module")
def world(redis_server, tmp_path_factory) -> Iterator[World]:
    """The population, posted once for the module: the edge's clock at the wall clock's
    time, since the command reads the wall clock as any command does."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("ADS_TOKEN", TOKEN)
    clock = FakeClock(int(time.time() * 1000))
    people = synthetic_population(clock.now_ms(), random.Random(20261204))
    with GoogleAudiences(TOKEN, "1234567890", "777") as google:
        config = write_config(tmp_path_factory.mktemp("config"), rules_yaml=RULES,
                              settings_yaml=settings_yaml(google))
        with LiveEdge(config, redis_server.url, clock=clock) as edge:
            post_everyone(edge, people)
            yield World(config, redis_server.url, clock, people, google, edge)
    monkeypatch.undo()


def lookalike(world: World, seed: str = "buyers", size: int = 120, **kwargs: Any):
    settings = load_settings(world.config)
    active = build(read_documents(settings.rules_dir, settings.scenarios_dir))

    async def run():
        client = aioredis.Redis.from_url(world.redis_url)
        store = ProfileStore(client, settings, world.redis_url)
        try:
            return await build_lookalike(
                client, store, active, next(iter(settings.sites.values())).consent_defaults,
                seed, size, kwargs.pop("name", f"{seed}-lookalike"), world.clock.now_ms(),
                **kwargs)
        finally:
            store.batcher.close()
            await client.aclose()

    return asyncio.run(run())


def stored_members(world: World, name: str) -> set[str]:
    client = redis.Redis.from_url(world.redis_url)
    try:
        return {m.decode() for m in client.smembers(segments.members_key(name))}
    finally:
        client.close()


# -- recall on the synthetic population --------------------------------------------------------

def test_the_lookalike_recovers_the_hidden_type_and_leaves_the_seed_out(world):
    truth = world.true_lookalikes
    report = lookalike(world, size=len(truth))
    assert report.seed_size == len(world.seed)
    assert report.unmatchable == 30  # the visitors: not scored, whatever they look like
    chosen = set(report.members)
    recall = len(chosen & truth) / len(truth)
    print(f"recall at {len(truth)}: {recall:.3f}; cross-validated AUC {report.cv_auc:.3f}")
    assert recall >= 0.7, recall
    # a random draw of the same size would find about a fifth of them
    assert recall > 3 * len(truth) / report.scored
    assert not chosen & world.seed
    assert stored_members(world, "buyers-lookalike") == chosen
    # the order count and spend are the seed's definition: left out, and said so
    assert {"aggregates.orders_365d", "aggregates.spend_365d"} <= set(report.left_out)
    assert "days_since_last_event" in report.features
    assert 0.6 < report.cv_auc < 1.0


def test_the_same_data_and_time_write_the_same_people(world):
    first = lookalike(world, size=50, name="again")
    second = lookalike(world, size=50, name="again")
    assert first.members == second.members and len(first.members) == 50


def test_a_stored_seed_grows_the_same_lookalike_as_the_rules_segment(world):
    client = redis.Redis.from_url(world.redis_url)
    try:
        asyncio.run(_write(world, "my-buyers", sorted(world.seed)))
    finally:
        client.close()
    from_rules = lookalike(world, size=60, name="from-rules")
    from_stored = lookalike(world, seed="my-buyers", size=60, name="from-stored")
    assert from_stored.seed_size == from_rules.seed_size == len(world.seed)
    assert from_stored.members == from_rules.members


async def _write(world: World, name: str, ids: list[str]) -> None:
    client = aioredis.Redis.from_url(world.redis_url)
    try:
        await segments.write_segment(client, name, ids, {"source": "test"},
                                     world.clock.now_ms())
    finally:
        await client.aclose()


# -- the command, and the export of what it wrote ----------------------------------------------

def hashed_identifiers(person: Person, platform: str) -> set[tuple[str, str]]:
    found = set()
    if person.email:
        found.add(("email", sha256_hex(normalize_email(person.email, platform))))
    if person.phone:
        found.add(("phone", sha256_hex(normalize_phone(person.phone, platform, REGION))))
    return found


def test_the_command_writes_the_segment_and_sends_only_the_consented_to_google(world, capsys):
    common = ["--config", str(world.config), "--redis", world.redis_url]
    code = cli.main(["lookalike", "--seed", "buyers", "--size", "120", "--export", "google",
                     "--send", *common])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "seed buyers: 170 members" in out
    assert "wrote 120 people to the stored segment buyers-lookalike" in out
    members = stored_members(world, "buyers-lookalike")
    assert len(members) == 120 and not members & world.seed
    consented = [world.person(m) for m in members if world.person(m).advertising]
    assert 0 < len(consented) < len(members)  # some of them said no, or nothing
    expected = set().union(*(hashed_identifiers(p, "google") for p in consented))
    assert world.google.platform.identifiers() == expected
    exported = orjson.loads(err.strip().splitlines()[-1])
    assert (exported["audience"], exported["added"]) == ("buyers-lookalike-google",
                                                         len(consented))

    # the person's next event recomputes the rules' segments: the stored one stays
    someone = next(p for p in consented)
    world.edge.post("/v1/track", {"userId": someone.user_id, "event": "Product Viewed",
                                  "properties": {"product_id": "Out-1", "category": "Outdoor"}})
    assert f"user:{someone.user_id}" in stored_members(world, "buyers-lookalike")
    again = cli.main(["export", "audience", "buyers-lookalike", "--format", "google",
                      "--send", *common])
    assert again == 0
    # nothing changed, nothing sent
    assert orjson.loads(capsys.readouterr().err.strip().splitlines()[-1])["requests"] == 0


def test_without_an_audience_in_the_settings_the_requests_go_to_a_file(world, tmp_path, capsys):
    out_file = tmp_path / "meta.jsonl"
    code = cli.main(["lookalike", "--seed", "buyers", "--size", "40", "--name", "outdoor-40",
                     "--export", "meta", "--out", str(out_file), "--config", str(world.config),
                     "--redis", world.redis_url])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "wrote 40 people to the stored segment outdoor-40" in out  # stdout is free
    members = stored_members(world, "outdoor-40")
    rows = [row for line in out_file.read_text().splitlines()
            for row in orjson.loads(line)["body"]["payload"]["data"]]
    consented = [world.person(m) for m in members if world.person(m).advertising]
    assert len(rows) == len(consented)
    sent = {digest for row in rows for digest in row if digest}
    assert sent == {digest for p in consented for _, digest in hashed_identifiers(p, "meta")}


@pytest.mark.parametrize(("arguments", "reason"), [
    (["--seed", "no_such_segment", "--size", "10"],
     "--seed: no segment 'no_such_segment' in the rules, and no stored segment"),
    (["--seed", "nobody", "--size", "10"], "--seed: segment 'nobody' has no members"),
    (["--seed", "tiny", "--size", "10"],
     "--seed: segment 'tiny' has 2 members; at least 10 are needed"),
    (["--seed", "buyers", "--size", "0"], "--size: must be at least 1, not 0"),
    (["--seed", "buyers", "--size", "-3"], "--size: must be at least 1, not -3"),
    (["--seed", "buyers", "--size", "5", "--sample", "0"], "--sample: must be at least 1"),
    (["--seed", "buyers", "--size", "5", "--name", "high_value_buyers"],
     "--name: 'high_value_buyers' is a segment of the rules"),
    (["--seed", "buyers", "--size", "5", "--name", "buyers"],
     "--name: the lookalike needs a name of its own"),
    (["--seed", "buyers", "--size", "5", "--name", "a{b}"], "--name: 'a{b}' must be letters"),
    (["--seed", "buyers", "--size", "5", "--export", "meta", "--send"],
     "--send: no audience in kairos.yaml exports buyers-lookalike as meta"),
    (["--seed", "buyers", "--size", "5", "--send"], "--send and --out are for --export"),
], ids=["unknown seed", "empty seed", "tiny seed", "size 0", "negative size", "sample 0",
        "a rules segment's name", "the seed's name", "braces in the name",
        "send without an audience", "send without export"])
def test_bad_input_is_named_and_exits_1(world, capsys, arguments, reason):
    asyncio.run(_write(world, "tiny", ["user:u0001", "user:u0002"]))
    name = arguments[arguments.index("--name") + 1] if "--name" in arguments else \
        f"{arguments[1]}-lookalike"
    before = about(world, name)
    code = cli.main(["lookalike", *arguments, "--config", str(world.config),
                     "--redis", world.redis_url])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("kairos lookalike: ") and reason in err, err
    assert "Traceback" not in err
    assert about(world, name) == before  # nothing written


def about(world: World, name: str) -> dict[str, str]:
    async def read() -> dict[str, str]:
        client = aioredis.Redis.from_url(world.redis_url)
        try:
            return await segments.about_segment(client, name)
        finally:
            await client.aclose()

    return asyncio.run(read())


def test_without_redis_the_command_says_so(tmp_path, capsys):
    config = write_config(tmp_path / "config", rules_yaml=RULES)
    code = cli.main(["lookalike", "--seed", "buyers", "--size", "5", "--config", str(config),
                     "--data-dir", str(tmp_path / "var")])
    assert code == 1
    assert "kairos lookalike: no Redis" in capsys.readouterr().err


def test_check_accepts_a_stored_audience_and_still_refuses_an_unknown_segment(tmp_path, capsys):
    def check(audience: str) -> int:
        config = write_config(tmp_path / "config", rules_yaml=RULES,
                              settings_yaml=SETTINGS_YAML + "audiences:\n" + audience)
        return cli.check_command(str(config))

    assert check("  ads: { segment: buyers-lookalike, stored: true, format: meta }\n") == 0
    assert check("  ads: { segment: buyers-lookalike, format: meta }\n") == 1
    assert "no segment 'buyers-lookalike' in the rules" in capsys.readouterr().err


# -- the stored segment, as the export reads it ------------------------------------------------

def members_now(world: World, name: str) -> list[audience_store.SegmentMember]:
    async def read() -> list[audience_store.SegmentMember]:
        client = aioredis.Redis.from_url(world.redis_url)
        try:
            return [m async for m in audience_store.segment_members(client, name, page=7)]
        finally:
            await client.aclose()

    return asyncio.run(read())


def test_a_stored_segment_is_replaced_whole_and_stays_stored_when_empty(world):
    asyncio.run(_write(world, "replaced", ["user:u0001", "user:u0002", "user:u0003"]))
    asyncio.run(_write(world, "replaced", ["user:u0003", "user:u0004"]))
    assert {m.profile_id for m in members_now(world, "replaced")} == {"user:u0003",
                                                                     "user:u0004"}
    assert about(world, "replaced")["size"] == "2"
    asyncio.run(_write(world, "replaced", []))
    assert members_now(world, "replaced") == [] and about(world, "replaced")["size"] == "0"
    # a rules' segment is still found on the profiles
    assert {m.profile_id for m in members_now(world, "buyers")} == world.seed


def test_a_stored_member_merged_into_another_profile_is_followed_to_it(world):
    visitor = "visitor-joined-later"
    assert world.edge.post("/v1/track", {"anonymousId": visitor, "event": "Product Viewed",
                                         "properties": {"category": "Outdoor"}}
                           ).status_code == 200
    asyncio.run(_write(world, "merged", [f"anon:{visitor}", "user:u0005", "erased:nobody"]))
    # the customer has a profile of their own: signing in on the visitor's browser merges
    for body in ({"userId": "joined", "traits": {"email": "joined@example.com"}},
                 {"userId": "joined", "anonymousId": visitor}):
        answer = world.edge.post("/v1/identify", body)
        assert answer.status_code == 200, answer.text
    now_at = world.edge.profile(f"anon:{visitor}").json()["id"]
    assert now_at != f"anon:{visitor}"  # the visitor's profile was merged into another
    found = members_now(world, "merged")
    assert sorted(m.profile_id for m in found) == sorted([now_at, "user:u0005"])
    assert next(m for m in found if m.profile_id == now_at).traits == {
        "email": "joined@example.com"}


# -- properties ----------------------------------------------------------------------------------

@hypothesis_settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=4), st.floats(-5, 5, allow_nan=False),
                       max_size=30),
       st.integers(0, 40), st.randoms(use_true_random=False))
def test_the_top_scorers_are_the_highest_scores_in_any_input_order(scores, size, shuffle):
    ids = list(scores)
    chosen = top_scorers(ids, np.array([scores[i] for i in ids]), size)
    assert len(chosen) == min(size, len(ids)) and len(set(chosen)) == len(chosen)
    left = set(ids) - set(chosen)
    assert all(scores[c] >= scores[o] for c in chosen for o in left)
    shuffle.shuffle(ids)
    assert top_scorers(ids, np.array([scores[i] for i in ids]), size) == chosen


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)),
                min_size=2, max_size=40))
def test_a_feature_is_left_out_exactly_when_it_alone_separates_the_seed(rows):
    labels = np.array([int(label) for label, _, _ in rows])
    values = np.array([[a, b] for _, a, b in rows])
    flagged = separating(values, labels)
    seed, others = values[labels == 1], values[labels == 0]
    for column in range(2):
        expected = bool(len(seed) and len(others) and (
            seed[:, column].min() > others[:, column].max()
            or seed[:, column].max() < others[:, column].min()))
        assert flagged[column] == expected


JUNK = st.one_of(st.none(), st.booleans(), st.integers(), st.just(10 ** 400), st.floats(),
                 st.text(max_size=5),
                 st.lists(st.one_of(st.text(max_size=5), st.integers(), st.none()), max_size=5),
                 st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({"id": st.text(min_size=1, max_size=8)}, optional={
    "last_seen": JUNK, "first_seen": JUNK, "visits": JUNK, "recent_products": JUNK,
    "aggregates": st.dictionaries(st.sampled_from(["orders", "spend", "cats"]), JUNK),
    "cart": st.fixed_dictionaries({}, optional={"value": JUNK, "items": st.lists(
        st.dictionaries(st.just("quantity"), JUNK), max_size=3)}),
    "traits": st.dictionaries(st.sampled_from(["email", "phone", "push_token"]), JUNK),
    "consent": st.dictionaries(st.sampled_from(["email", "marketing", "nonsense"]),
                               st.fixed_dictionaries({"granted": st.booleans()})),
    "last_channel": JUNK, "engagement_hours": st.lists(JUNK, max_size=24),
    "recent_categories": st.lists(st.text(max_size=6), max_size=10),
}))
def test_any_profile_becomes_a_finite_vector_of_the_same_length(profile):
    space = FeatureSpace.of(["orders", "spend", "cats", "last_cat"],
                            ["count", "sum", "distinct", "last"], {"email": True})
    described = space.describe(profile, now_ms=1_767_225_600_000)
    rows = matrix([described], ["Outdoor", "Books"])
    assert rows.shape == (1, len(space.names(["Outdoor", "Books"])))
    assert np.isfinite(rows).all()
