"""Identity over HTTP: anonymous → known, aliases, signed claims, merges that lose nothing."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from edge.ingest.auth import user_hash
from tests.support import PUBLIC_KEY, USER_HASH_SECRET


def view(edge, key="sk-test", **ids):
    return edge.track("Product Viewed", key, properties={"category": "shoes"}, **ids)


def test_identify_joins_anonymous_history_to_the_customer(edge):
    view(edge, anonymousId="anon-1")
    view(edge, anonymousId="anon-1")
    edge.post("/v1/identify", {"userId": "cust-1", "anonymousId": "anon-1",
                               "traits": {"email": "Cust@Example.com", "first_name": "Ann"}})
    by_user = edge.profile("user:cust-1").json()
    by_anon = edge.profile("anon:anon-1").json()
    assert by_user["id"] == by_anon["id"]
    assert by_user["aggregates"]["views_7d"] == 2
    assert by_user["verified"] is True
    assert "user:cust-1" in by_user["identities"] and "anon:anon-1" in by_user["identities"]
    # the hashed email resolves too
    email_ids = [i for i in by_user["identities"] if i.startswith("email:")]
    assert len(email_ids) == 1
    assert edge.profile(email_ids[0]).json()["id"] == by_user["id"]


def test_second_device_merges_into_the_customer(edge):
    view(edge, anonymousId="laptop")
    edge.post("/v1/identify", {"userId": "cust-2", "anonymousId": "laptop"})
    view(edge, anonymousId="phone")
    view(edge, anonymousId="phone")
    view(edge, anonymousId="phone")
    edge.post("/v1/identify", {"userId": "cust-2", "anonymousId": "phone"})
    profile = edge.profile("user:cust-2").json()
    assert profile["aggregates"]["views_7d"] == 4
    assert edge.profile("anon:phone").json()["id"] == profile["id"]
    assert edge.profile("anon:laptop").json()["id"] == profile["id"]
    # merging again changes nothing
    edge.post("/v1/identify", {"userId": "cust-2", "anonymousId": "phone"})
    assert edge.profile("user:cust-2").json()["aggregates"]["views_7d"] == 4


def test_alias_merges_previous_id(edge):
    view(edge, userId="old-id")
    view(edge, userId="new-id")
    r = edge.post("/v1/alias", {"previousId": "old-id", "userId": "new-id"})
    assert r.status_code == 200
    profile = edge.profile("user:new-id").json()
    assert profile["aggregates"]["views_7d"] == 2
    assert edge.profile("user:old-id").json()["id"] == profile["id"]


def test_unsigned_browser_claim_is_recorded_but_never_joined(edge):
    view(edge, userId="victim")
    edge.post("/v1/identify", {"userId": "victim", "traits": {"first_name": "Vera"}})
    r = edge.post("/v1/page", {"anonymousId": "attacker", "userId": "victim"}, PUBLIC_KEY)
    assert r.status_code == 200
    body = r.json()
    assert body["slots"]["hero"]["html"] == "<p>Welcome</p>"  # not "Hello Vera"
    r = edge.post("/v1/identify", {"anonymousId": "attacker", "userId": "victim"}, PUBLIC_KEY)
    assert r.json()["slots"] == {} or "Vera" not in str(r.json())
    attacker = edge.profile("anon:attacker").json()
    assert attacker["verified"] is False
    assert attacker["unverified_claim"] == "victim"
    victim = edge.profile("user:victim").json()
    assert "anon:attacker" not in victim["identities"]
    assert victim["id"] != attacker["id"]


def test_signed_browser_claim_joins(edge):
    view(edge, userId="signed")
    edge.post("/v1/identify", {"userId": "signed", "traits": {"first_name": "Sam"}})
    sig = user_hash(USER_HASH_SECRET, "signed")
    r = edge.post("/v1/identify", {"anonymousId": "browser", "userId": "signed",
                                   "context": {"userHash": sig}}, PUBLIC_KEY)
    assert r.status_code == 200
    r = edge.post("/v1/page", {"anonymousId": "browser", "userId": "signed",
                               "context": {"userHash": sig}}, PUBLIC_KEY)
    assert r.json()["slots"]["hero"]["html"] == "<p>Hello Sam</p>"
    assert edge.profile("anon:browser").json()["id"] == edge.profile("user:signed").json()["id"]


def test_browser_cannot_claim_email_of_someone_else(edge):
    edge.post("/v1/identify", {"userId": "owner", "traits": {"email": "owner@x.io", "first_name": "Olga"}})
    sig = user_hash(USER_HASH_SECRET, "mallory")
    edge.post("/v1/identify", {"anonymousId": "m", "userId": "mallory",
                               "traits": {"email": "owner@x.io"}, "context": {"userHash": sig}}, PUBLIC_KEY)
    assert edge.profile("user:mallory").json()["id"] != edge.profile("user:owner").json()["id"]


def test_two_customers_on_one_device_are_not_merged(edge):
    edge.post("/v1/identify", {"userId": "alice", "anonymousId": "shared"})
    edge.post("/v1/identify", {"userId": "bob", "anonymousId": "shared"})
    assert edge.profile("user:alice").json()["id"] != edge.profile("user:bob").json()["id"]


# -- property: random interleavings of identify, alias and track lose nothing ---------------

ANONS = ["a0", "a1", "a2", "a3"]
USERS = ["u0", "u1", "u2"]
op = st.one_of(
    st.tuples(st.just("track_anon"), st.sampled_from(ANONS)),
    st.tuples(st.just("track_user"), st.sampled_from(USERS)),
    st.tuples(st.just("identify"), st.sampled_from(USERS), st.sampled_from(ANONS)),
    st.tuples(st.just("alias"), st.sampled_from(ANONS), st.sampled_from(USERS)),
)


def canonical_profiles(redis_client) -> list[bytes]:
    found = []
    for key in redis_client.scan_iter(match="{p:*}"):
        if redis_client.hexists(key, "id") and not redis_client.hexists(key, "->"):
            found.append(key)
    return found


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=st.lists(op, min_size=1, max_size=14))
def test_merges_lose_nothing(edge, redis_client, ops):
    redis_client.flushall()
    edge.app.state.edge.store.cache = type(edge.app.state.edge.store.cache)()
    views = 0
    events = 0
    for n, item in enumerate(ops):
        mid = f"op-{n}"
        if item[0] == "track_anon":
            view(edge, anonymousId=item[1], messageId=mid)
            views += 1
        elif item[0] == "track_user":
            view(edge, userId=item[1], messageId=mid)
            views += 1
        elif item[0] == "identify":
            edge.post("/v1/identify", {"userId": item[1], "anonymousId": item[2], "messageId": mid})
        else:
            edge.post("/v1/alias", {"previousId": item[1], "userId": item[2], "anonymousId": item[1],
                                    "messageId": mid})
        events += 1
    total_views = 0
    total_events = 0
    for key in canonical_profiles(redis_client):
        pid = redis_client.hget(key, "id").decode()
        profile = edge.profile(pid).json()
        total_views += profile["aggregates"]["views_7d"]
        total_events += profile["events"]
    assert total_views == views
    assert total_events == events
    # every identifier that was used resolves to a live profile
    for item in ops:
        for identifier in ([f"anon:{x}" for x in item[1:] if x in ANONS]
                           + [f"user:{x}" for x in item[1:] if x in USERS]):
            r = edge.profile(identifier)
            assert r.status_code == 200, identifier
            assert redis_client.hexists("{p:" + r.json()["id"] + "}", "id")


def test_traits_in_context_traits_reach_the_profile_and_join_like_traits(edge):
    """Segment-format SDKs that send an identify's traits only in context.traits."""
    answer = edge.post("/v1/identify", {"userId": "ctx-ola", "traits": {"plan": "gold"},
                                        "context": {"traits": {"email": "ola@example.com",
                                                               "plan": "free", "city": "Brno"}}})
    assert answer.status_code == 200, answer.text
    profile = edge.profile("user:ctx-ola").json()
    assert {k: profile["traits"][k] for k in ("email", "plan", "city")} == {
        "email": "ola@example.com", "plan": "gold", "city": "Brno"}
    # the email joined, as a top-level one would: its hashed identifier finds her
    from edge.ingest.normalize import email_identifier
    assert email_identifier("ola@example.com") in profile["identities"]
    assert edge.profile(email_identifier("ola@example.com")).json()["id"] == profile["id"]
