"""Ingestion over real HTTP against real Redis: Segment shapes in, decisions out."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest

from edge.store import streams
from tests.support import PUBLIC_KEY, SECRET_KEY, basic

HOUR = 3_600_000


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def test_page_answers_with_decisions_shape(edge):
    r = edge.post("/v1/page", {"anonymousId": "a1", "name": "Home",
                               "properties": {"path": "/"}}, PUBLIC_KEY)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    assert set(body) >= {"slots", "messages", "push", "segments"}
    assert body["slots"]["hero"]["html"] == "<p>Welcome</p>"
    assert body["slots"]["hero"]["rule"] == "first-visit"
    assert "profileId" not in body  # a public key learns nothing about the profile


def test_slot_winner_by_priority_and_escaping(edge):
    edge.post("/v1/identify", {"userId": "u-esc", "traits": {"first_name": "<script>x</script>"}})
    r = edge.post("/v1/page", {"userId": "u-esc"})
    hero = r.json()["slots"]["hero"]
    assert hero["rule"] == "hello"
    assert hero["html"] == "<p>Hello &lt;script&gt;x&lt;/script&gt;</p>"


def test_track_updates_aggregates_and_segments(edge):
    for i in range(3):
        r = edge.track("Product Viewed", anonymousId="a2", messageId=f"m{i}",
                       properties={"product_id": f"p{i}", "category": "shoes" if i else "bags"})
    body = r.json()
    assert body["segments"] == ["viewer"]
    assert body["slots"]["stats"]["json"] == {"views": 3, "cats": 2, "last": "shoes", "spend": 0.0}
    assert body["messages"][0]["title"] == "Shoes!"
    assert body["messages"][0]["body"] == "You viewed 2 shoes"
    profile = edge.profile("anon:a2").json()
    assert profile["recent_products"] == ["p2", "p1", "p0"]
    assert profile["recent_categories"] == ["shoes", "bags"]
    assert profile["segments"] == ["viewer"]
    assert profile["events"] == 3
    # only the referenced aggregates are maintained
    assert "unused_1d" not in profile["aggregates"]
    assert profile["aggregates"]["views_7d"] == 3


def test_retry_with_same_message_id_is_counted_once(edge, redis_client):
    for _ in range(3):
        r = edge.track("Product Viewed", anonymousId="a3", messageId="same",
                       properties={"product_id": "p1", "category": "shoes"})
        assert r.status_code == 200
    assert r.json()["duplicate"] is True
    profile = edge.profile("anon:a3").json()
    assert profile["events"] == 1
    assert profile["aggregates"]["views_7d"] == 1
    assert redis_client.xlen("kairos:events") == 1


def test_every_accepted_event_lands_in_the_stream(edge, redis_client):
    edge.post("/v1/page", {"anonymousId": "s1", "messageId": "x1"}, PUBLIC_KEY)
    edge.track("Signed Up", anonymousId="s1", messageId="x2")
    records = [streams.decode(fields) for _, fields in redis_client.xrange(streams.EVENTS)]
    assert [r.message_id for r in records] == ["x1", "x2"]
    assert all(isinstance(r, streams.Event) and r.profile_id == "anon:s1" for r in records)


def test_cart_and_order(edge):
    edge.track("Product Added", anonymousId="c1", properties={"product_id": "p1", "price": 10.5, "quantity": 2, "name": "Sock"})
    edge.track("Product Added", anonymousId="c1", properties={"product_id": "p2", "price": 3})
    edge.track("Product Removed", anonymousId="c1", properties={"product_id": "p1"})
    cart = edge.profile("anon:c1").json()["cart"]
    assert [(i["product_id"], i["quantity"]) for i in cart["items"]] == [("p1", 1), ("p2", 1)]
    assert cart["value"] == 13.5
    # A push needs the person's consent and an address.
    edge.post("/v1/identify", {"anonymousId": "c1",
                               "traits": {"push_token": "t1", "consent": {"push": True}}})
    r = edge.track("Order Completed", anonymousId="c1", properties={"revenue": 120})
    body = r.json()
    assert body["push"] == [{"rule": "buyer", "title": "Thanks", "body": "Order received", "link": "app://orders"}]
    assert "spender" in body["segments"]
    profile = edge.profile("anon:c1").json()
    assert profile["cart"]["items"] == []
    assert profile["traits"]["customer"] is True
    assert profile["tags"] == ["buyer"]


def test_traits_set_set_once_unset(edge):
    edge.post("/v1/identify", {"userId": "t1", "traits": {"plan": "free", "email": "a@b.c",
                                                          "$set_once": {"source": "ads"}}})
    edge.post("/v1/identify", {"userId": "t1", "traits": {"plan": "pro", "$set_once": {"source": "seo"},
                                                          "$unset": ["email"]}})
    traits = edge.profile("user:t1").json()["traits"]
    assert traits == {"plan": "pro", "source": "ads"}


def test_text_plain_body_is_accepted(edge):
    r = edge.http.post("/v1/track", content=orjson.dumps({"event": "X", "anonymousId": "tp"}),
                       headers={**basic(PUBLIC_KEY), "Content-Type": "text/plain"})
    assert r.status_code == 200, r.text


def test_write_key_in_body(edge):
    r = edge.http.post("/v1/track", json={"event": "X", "anonymousId": "wk", "writeKey": PUBLIC_KEY})
    assert r.status_code == 200, r.text


def test_clock_skew_corrected_from_sent_at(edge):
    now = edge.clock.now_ms()
    # the device clock runs two hours fast: its timestamp and sentAt are both +2h
    r = edge.track("Product Viewed", anonymousId="sk", properties={"category": "x"},
                   timestamp=iso(now + 2 * HOUR - 60_000), sentAt=iso(now + 2 * HOUR))
    assert r.status_code == 200
    profile = edge.profile("anon:sk").json()
    assert profile["first_seen"] == now - 60_000
    # without sentAt, a timestamp in the future is clamped to the time of receipt
    edge.track("Product Viewed", anonymousId="sk2", timestamp=iso(now + HOUR))
    assert edge.profile("anon:sk2").json()["first_seen"] == now


def test_windowed_count_expires_with_the_clock(edge):
    edge.track("Product Viewed", anonymousId="w1", properties={"category": "shoes"})
    edge.clock.advance(30 * 60_000)
    edge.track("Product Viewed", anonymousId="w1", properties={"category": "shoes"})
    assert edge.profile("anon:w1").json()["aggregates"]["views_1h"] == 2
    edge.clock.advance(45 * 60_000)
    assert edge.profile("anon:w1").json()["aggregates"]["views_1h"] == 1
    edge.clock.advance(60 * 60_000)
    aggs = edge.profile("anon:w1").json()["aggregates"]
    assert aggs["views_1h"] == 0
    assert aggs["views_7d"] == 2


def test_visits_count_sessions(edge):
    edge.post("/v1/page", {"anonymousId": "v1"}, PUBLIC_KEY)
    edge.clock.advance(10 * 60_000)
    edge.post("/v1/page", {"anonymousId": "v1"}, PUBLIC_KEY)
    edge.clock.advance(31 * 60_000)
    edge.post("/v1/page", {"anonymousId": "v1"}, PUBLIC_KEY)
    assert edge.profile("anon:v1").json()["visits"] == 2


def test_batch_mixed_types_and_idempotent_retry(edge, redis_client):
    batch = {"batch": [
        {"type": "identify", "userId": "b1", "traits": {"first_name": "Bo"}, "messageId": "b-1"},
        {"type": "track", "userId": "b1", "event": "Product Viewed", "messageId": "b-2",
         "properties": {"category": "shoes"}},
        {"type": "page", "anonymousId": "b2", "messageId": "b-3"},
        {"type": "screen", "userId": "b1", "name": "Home", "messageId": "b-4"},
    ]}
    r = edge.post("/v1/batch", batch)
    assert r.json() == {"success": True, "accepted": 4, "duplicates": 0}
    r = edge.post("/v1/batch", batch)
    assert r.json() == {"success": True, "accepted": 0, "duplicates": 4}
    assert redis_client.xlen("kairos:events") == 4
    assert edge.profile("user:b1").json()["events"] == 3


def test_cors_preflight_and_headers(edge):
    r = edge.http.options("/v1/track", headers={"Origin": "http://shop.test",
                                                "Access-Control-Request-Method": "POST"})
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "http://shop.test"
    r = edge.post("/v1/page", {"anonymousId": "o1"}, PUBLIC_KEY, Origin="http://shop.test")
    assert r.headers["access-control-allow-origin"] == "http://shop.test"
    r = edge.http.options("/v1/track", headers={"Origin": "http://evil.test"})
    assert r.status_code == 403


@pytest.mark.parametrize("path", ["/v1/track", "/v1/page", "/v1/screen", "/v1/identify", "/v1/group", "/v1/alias"])
def test_every_segment_route_accepts_its_event(edge, path):
    body = {"userId": "r1", "anonymousId": "ra", "event": "E", "groupId": "g1", "previousId": "ra"}
    r = edge.post(path, body, SECRET_KEY)
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True


def test_snippet_paths_take_any_type_and_batches(edge, redis_client):
    body = {"type": "page", "anonymousId": "sn", "writeKey": PUBLIC_KEY, "messageId": "sn-1"}
    r = edge.http.post("/v1/e", content=orjson.dumps(body), headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    assert r.json()["slots"]["hero"]["rule"] == "first-visit"
    r = edge.http.post("/v1/e", json={"anonymousId": "sn", "writeKey": PUBLIC_KEY})
    assert r.status_code == 400 and r.json()["field"] == "type"
    batch = {"writeKey": PUBLIC_KEY, "batch": [
        {"type": "track", "event": "Product Viewed", "anonymousId": "sn", "messageId": "sn-2",
         "properties": {"category": "shoes"}}]}
    r = edge.http.post("/v1/b", content=orjson.dumps(batch), headers={"Content-Type": "text/plain"})
    assert r.json() == {"success": True, "accepted": 1, "duplicates": 0}
    assert edge.profile("anon:sn").json()["events"] == 2


def test_browser_gets_a_first_party_visitor_cookie(edge):
    r = edge.post("/v1/page", {"anonymousId": "cookie-1"}, PUBLIC_KEY, Origin="http://shop.test")
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("kairos_aid=cookie-1;")
    assert "Max-Age=31536000" in cookie and "SameSite=lax" in cookie and "HttpOnly" not in cookie
    # servers (secret keys) and ids unsafe in a cookie get none
    assert "set-cookie" not in edge.post("/v1/page", {"anonymousId": "c2"}, SECRET_KEY, Origin="http://shop.test").headers
    assert "set-cookie" not in edge.post("/v1/page", {"anonymousId": "a b;c"}, PUBLIC_KEY, Origin="http://shop.test").headers


def test_snippet_is_served(edge):
    r = edge.http.get("/k.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert b"kairos" in r.content
    again = edge.http.get("/k.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


def test_web_push_key_and_subscription_become_the_push_address(edge):
    from tests.support import VAPID_PUBLIC_KEY

    r = edge.http.get("/v1/push-key", params={"writeKey": PUBLIC_KEY})
    assert r.json() == {"vapidPublicKey": VAPID_PUBLIC_KEY}
    assert edge.http.get("/v1/push-key", params={"writeKey": "nope"}).status_code == 401
    subscription = {"endpoint": "https://push.example/send/abc", "expirationTime": None,
                    "keys": {"p256dh": "BPx", "auth": "k1"}}
    r = edge.http.post("/v1/e", content=orjson.dumps({
        "type": "track", "event": "Push Subscribed", "anonymousId": "pushy", "writeKey": PUBLIC_KEY,
        "properties": {"subscription": subscription}}), headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    assert edge.profile("anon:pushy").json()["traits"]["push_subscription"] == subscription
    bad = {**subscription, "endpoint": "http://push.example/plain"}
    r = edge.post("/v1/track", {"event": "Push Subscribed", "anonymousId": "pushy",
                                "properties": {"subscription": bad}}, PUBLIC_KEY)
    assert r.status_code == 400 and r.json()["field"] == "properties.subscription.endpoint"
    r = edge.http.get("/kairos-sw.js")
    assert r.status_code == 200 and b"pushManager" in r.content
