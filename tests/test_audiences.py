"""Ad audiences: a segment's consented members, hashed per platform, exported as adds
and removes to local servers in Google's and Meta's formats, by the CLI and on the
worker's schedule. People join and leave through the edge's own ingest (a trait puts
them in the segment, `consent.advertising` lets them be exported)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings as hypothesis_settings, strategies as st

from edge.connectors.http import HttpClient
from edge.connectors.audiences import Member, member_of, normalize_email, normalize_phone
from edge.runtime.config import load_settings
from edge.worker import audiences
from tests.ad_platforms import GoogleAudiences, MetaAudiences
from tests.automation_support import SharedClock, ThreadWorker, wait_until
from tests.support import RULES_YAML, SETTINGS_YAML, LiveEdge, write_config

ROOT = Path(__file__).resolve().parent.parent
VECTORS = json.loads((Path(__file__).parent / "vectors" / "audiences.json").read_text())
TOKEN = "test-ads-token"
HOUR = 3_600_000

RULES = RULES_YAML.replace("segments:\n", """segments:
  - id: retarget
    when: traits.retarget == true
""", 1)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: f"{c['platform']}-{c['raw']}")
def test_identifiers_are_normalized_per_platform_then_hashed(case):
    if case["kind"] == "email":
        normalized = normalize_email(case["raw"], case["platform"])
    else:
        normalized = normalize_phone(case["raw"], case["platform"], VECTORS["default_region"])
    assert normalized == case["normalized"]
    member = member_of("p", {case["kind"]: case["raw"]}, case["platform"],
                       VECTORS["default_region"])
    assert member == (None if case["sha256"] is None else
                      Member("p", ((case["kind"], case["sha256"]),)))


def audience_config(target: Path, audience_yaml: str) -> Path:
    return write_config(target, rules_yaml=RULES,
                        settings_yaml=SETTINGS_YAML + "audiences:\n" + audience_yaml)


def person(edge: LiveEdge, user: str, *, retarget: bool, advertising: bool | None = True,
           email: str | None = None, phone: str | None = None) -> None:
    traits = {"retarget": retarget, **({"email": email} if email else {}),
              **({"phone": phone} if phone else {})}
    if advertising is not None:
        traits["consent"] = {"advertising": advertising, "source": "cookie banner"}
    answer = edge.post("/v1/identify", {"userId": user, "traits": traits})
    assert answer.status_code == 200, answer.text


def export(redis_url: str, config: Path, name: str, **kwargs) -> audiences.ExportReport:
    settings = load_settings(config)

    async def run() -> audiences.ExportReport:
        client = aioredis.Redis.from_url(redis_url)
        http = HttpClient()
        try:
            send = audiences.sender_for(settings, name, settings.audiences[name], 0, http,
                                        {"ADS_TOKEN": TOKEN})
            return await audiences.export_audience(client, settings, name,
                                                   settings.audiences[name], send, **kwargs)
        finally:
            await http.close()
            await client.aclose()

    return asyncio.run(run())


@pytest.fixture
def world(tmp_path, redis_url, monkeypatch) -> Iterator[tuple[GoogleAudiences, Path, LiveEdge]]:
    """Google's audience API, and an edge whose configuration exports to it."""
    monkeypatch.setenv("ADS_TOKEN", TOKEN)
    with GoogleAudiences(TOKEN, "1234567890", "555") as google:
        config = audience_config(tmp_path / "config", google_yaml(google))
        with LiveEdge(config, redis_url) as edge:
            yield google, config, edge


def google_yaml(server: GoogleAudiences) -> str:
    return f"""  retarget-google:
    segment: retarget
    format: google
    to: api
    base_url: {server.url}
    token_env: ADS_TOKEN
    account_id: "1234567890"
    audience_id: "555"
"""


def test_google_gets_the_consented_members_then_only_who_joined_and_who_left(world, redis_url):
    google, config, edge = world
    person(edge, "ann", retarget=True, email=" Ann.Lee@GMail.com ")
    person(edge, "bob", retarget=True, advertising=False, email="bob@example.com")
    person(edge, "cid", retarget=False, email="cid@example.com")
    person(edge, "dee", retarget=True, phone="603 123 456")
    person(edge, "eve", retarget=True, advertising=None, email="eve@example.com")

    first = export(redis_url, config, "retarget-google")
    assert (first.members, first.added, first.removed) == (2, 2, 0)
    assert google.platform.identifiers() == {("email", sha("annlee@gmail.com")),
                                             ("phone", sha("+420603123456"))}
    assert export(redis_url, config, "retarget-google").requests == 0  # nothing changed

    person(edge, "ann", retarget=False)  # left the segment
    person(edge, "dee", retarget=True, advertising=False)  # withdrew consent
    person(edge, "fay", retarget=True, email="fay@example.com")  # joined
    second = export(redis_url, config, "retarget-google")
    assert (second.members, second.added, second.removed) == (1, 1, 2)
    assert google.platform.identifiers() == {("email", sha("fay@example.com"))}
    assert [call.path for call in google.platform.calls] == [
        "/v1/audienceMembers:ingest", "/v1/audienceMembers:remove",
        "/v1/audienceMembers:ingest"]


def test_a_changed_address_replaces_the_old_one_at_the_platform(world, redis_url):
    google, config, edge = world
    person(edge, "gus", retarget=True, email="gus@old.example", phone="+48512345678")
    export(redis_url, config, "retarget-google")
    person(edge, "gus", retarget=True, email="gus@new.example")
    report = export(redis_url, config, "retarget-google")
    assert (report.added, report.removed) == (1, 1)
    assert google.platform.identifiers() == {("email", sha("gus@new.example")),
                                             ("phone", sha("+48512345678"))}


def test_a_busy_platform_is_asked_again_and_a_refusal_keeps_what_was_sent(world, redis_url):
    google, config, edge = world
    for name in ("hal", "ida", "jon"):
        person(edge, name, retarget=True, email=f"{name}@example.com")
    google.platform.failures = [429, 503]  # then it accepts (after about 3 s)
    report = export(redis_url, config, "retarget-google", batch=1)
    assert report.added == 3 and [c.status for c in google.platform.calls[:3]] == [
        429, 503, 200]
    person(edge, "kim", retarget=True, email="kim@example.com")
    person(edge, "lea", retarget=True, email="lea@example.com")
    google.platform.failures = [None, 400]  # the first accepted, the second refused
    with pytest.raises(audiences.ExportFailed, match="400"):
        export(redis_url, config, "retarget-google", batch=1)
    again = export(redis_url, config, "retarget-google", batch=1)
    assert again.added == 1  # the refused one; the accepted one is not sent again
    third = export(redis_url, config, "retarget-google", batch=1)
    assert third.requests == 0
    assert len(google.platform.identifiers()) == 5


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_the_cli_writes_meta_requests_and_sends_what_changed(tmp_path, redis_url, monkeypatch):
    monkeypatch.setenv("ADS_TOKEN", TOKEN)
    with MetaAudiences(TOKEN, "238000") as meta:
        config = audience_config(tmp_path / "config", f"""  retarget-meta:
    segment: retarget
    format: meta
    to: api
    base_url: {meta.url}
    token_env: ADS_TOKEN
    audience_id: "238000"
""")
        with LiveEdge(config, redis_url) as edge:
            person(edge, "mia", retarget=True, email="Mia.Ro@gmail.com", phone="603 123 456")
            person(edge, "ned", retarget=True, email="ned@example.com")
            common = ["export", "audience", "retarget", "--format", "meta",
                      "--config", str(config), "--redis", redis_url]
            dry = run_cli(*common, "--dry-run")
            assert dry.returncode == 0, dry.stderr
            assert json.loads(dry.stderr.strip().splitlines()[-1])["added"] == 2

            written = run_cli(*common, "--out", str(tmp_path / "meta.jsonl"))
            assert written.returncode == 0, written.stderr
            [request] = [json.loads(line) for line in
                         (tmp_path / "meta.jsonl").read_text().splitlines()]
            assert (request["method"], request["path"]) == ("POST", "/v21.0/238000/users")
            assert request["body"]["payload"]["schema"] == ["EMAIL", "PHONE"]
            assert sorted(request["body"]["payload"]["data"]) == sorted([
                [sha("mia.ro@gmail.com"), sha("420603123456")],  # Meta keeps Gmail's dots
                [sha("ned@example.com"), ""]])
            assert meta.platform.calls == []  # written, not sent

            person(edge, "ned", retarget=False)
            person(edge, "oli", retarget=True, email="oli@example.com")
            sent = run_cli(*common, "--send")
            assert sent.returncode == 0, sent.stderr
            assert [(c.method, c.status) for c in meta.platform.calls] == [("DELETE", 200),
                                                                           ("POST", 200)]
            assert meta.platform.identifiers() == {("email", sha("oli@example.com"))}
            assert run_cli(*common, "--send").returncode == 0
            assert len(meta.platform.calls) == 2  # nothing changed: nothing sent


def test_the_worker_exports_on_its_schedule_into_a_folder(tmp_path, redis_url):
    clock = SharedClock(tmp_path / "clock")
    folder = tmp_path / "exports"
    config = audience_config(tmp_path / "config", f"""  nightly:
    segment: retarget
    format: google
    account_id: "42"
    audience_id: "7"
    every_s: 86400
    to: file
    folder: {folder}
""")
    with LiveEdge(config, redis_url, clock=clock) as edge, \
            ThreadWorker(config, redis_url, clock):
        person(edge, "pam", retarget=True, email="pam@example.com")
        [first] = wait_until(lambda: sorted(folder.glob("nightly-*.json")), what="an export")
        body = json.loads(first.read_text())["body"]
        assert body["audienceMembers"] == [
            {"userData": {"userIdentifiers": [{"emailAddress": sha("pam@example.com")}]}}]
        person(edge, "pam", retarget=False)
        clock.advance(HOUR)  # not due yet
        person(edge, "quin", retarget=True, email="quin@example.com")
        clock.advance(23 * HOUR)
        files = wait_until(lambda: (found := sorted(folder.glob("nightly-*.json")))[2:]
                           and found, what="the next day's export")
        operations = [json.loads(path.read_text())["path"] for path in files[1:]]
        assert operations == ["/v1/audienceMembers:remove", "/v1/audienceMembers:ingest"]


def test_check_names_an_unknown_segment_and_a_missing_token(tmp_path, monkeypatch):
    monkeypatch.delenv("ADS_TOKEN", raising=False)
    config = audience_config(tmp_path / "config", """  a:
    segment: retarget
    format: google
    to: api
    token_env: ADS_TOKEN
    audience_id: "1"
""")
    answer = run_cli("check", str(config))
    assert answer.returncode == 1
    assert "audiences.a.account_id" in answer.stderr and "ADS_TOKEN is not set" in answer.stderr
    config = audience_config(tmp_path / "other", """  a:
    segment: retargeting
    format: meta
""")
    answer = run_cli("check", str(config))
    assert answer.returncode == 1
    assert f"{config / 'kairos.yaml'}:" in answer.stderr
    assert "no segment 'retargeting' in the rules" in answer.stderr


identifier = st.tuples(st.sampled_from(["email", "phone"]), st.sampled_from("abcdef"))
membership = st.dictionaries(st.sampled_from(["p1", "p2", "p3", "p4"]),
                             st.frozensets(identifier, min_size=1, max_size=2), max_size=4)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.lists(membership, min_size=1, max_size=6))
def test_after_every_export_the_platform_holds_exactly_the_current_members(rounds):
    """The platform's view (members added, then every member holding a removed identifier
    dropped) equals the segment after each export of what changed."""
    platform: set[frozenset] = set()
    state: dict[str, Member] = {}
    for people in rounds:
        current = {pid: Member(pid, tuple(sorted(ids))) for pid, ids in people.items()
                   if not any(ids & other for o, other in people.items() if o != pid)}
        adds, removes = audiences.changes(state, current)
        for member in removes:
            platform = {m for m in platform if not m & set(member.hashes)}
        for member in adds:
            platform.add(frozenset(member.hashes))
        state = {pid: m for pid, m in current.items()}
        assert {pair for m in platform for pair in m} == \
            {pair for m in current.values() for pair in m.hashes}
