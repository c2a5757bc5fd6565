"""Tracking a sent email through the real edge: signed click redirects with UTM, the open
pixel, machines told from people, one-click unsubscribe and the preference page."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from edge.ingest.machines import click_by_machine, open_by_machine
from edge.ingest.tracking import CLICK, BadToken, Token, Tokens, with_utm
from edge.store.embedded import free_port
from tests.automation_support import ThreadWorker, wait_until
from tests.channel_servers import SmtpCatcher
from tests.support import LiveEdge, basic, SECRET_KEY
from tests.test_delivery import (clock, hook_secrets, ledger_state, delivery_config, person, queue,  # noqa: F401
                                 status_events)

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
BODY = ('<p>New shoes: <a href="https://shop.test/shoes?color=red">see them</a> and '
        '<a href="https://shop.test/sale?utm_source=own">the sale</a>.</p>')


def links_of(html: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', html)


def events_named(client, name: str) -> list[dict]:
    return [e for e in status_events(client) if e.get("event") == name] if name.startswith("Message") \
        else [e for e in all_events(client) if e.get("event") == name]


def all_events(client) -> list[dict]:
    from edge.store import streams
    return [record.event for _, fields in client.xrange("kairos:events")
            if isinstance(record := streams.decode(fields), streams.Event)]


@pytest.fixture
def tracked(tmp_path, redis_url, redis_client, clock):  # noqa: F811
    port = free_port()
    with SmtpCatcher() as smtp:
        config = delivery_config(tmp_path / "config", smtp.port,
                                 extra=f"  public_url: http://127.0.0.1:{port}\n")
        with LiveEdge(config, redis_url, clock=clock, port=port) as edge, \
                ThreadWorker(config, redis_url, clock):
            person(edge, "gi")
            queue(redis_client, "user:gi", "t-1", title="Shoes", body=BODY)
            wait_until(lambda: smtp.messages, what="the email")
            clock.advance(60_000)  # a minute after sending: a person's click, not a scanner's
            yield edge, smtp, redis_client


def test_links_go_through_signed_redirects_with_utm_and_clicks_are_recorded(tracked):
    edge, smtp, client = tracked
    html = smtp.messages[0].get_body(("html",)).get_content()
    shoes, sale, unsubscribe = links_of(html)
    assert shoes.startswith(f"{edge.url}/go/") and sale.startswith(f"{edge.url}/go/")
    answer = httpx.get(shoes, headers={"user-agent": BROWSER})
    assert answer.status_code == 302
    target = urlsplit(answer.headers["location"])
    assert (target.netloc, target.path) == ("shop.test", "/shoes")
    assert parse_qs(target.query) == {"color": ["red"], "utm_source": ["shop"],
                                      "utm_medium": ["email"], "utm_campaign": ["kairos"]}
    answer = httpx.get(sale, headers={"user-agent": BROWSER})
    assert parse_qs(urlsplit(answer.headers["location"]).query) == {"utm_source": ["own"]}
    [clicked, _] = wait_until(lambda: len(events_named(client, "Email Clicked")) == 2
                              and events_named(client, "Email Clicked"), what="the clicks")
    assert clicked["userId"] == "gi" and clicked["properties"]["message_id"] == "t-1"
    profile = edge.http.get("/v1/profiles/user:gi", headers=basic(SECRET_KEY)).json()
    assert profile["last_channel"] == "email"


def test_a_forged_or_altered_token_is_refused_and_redirects_nowhere(tracked):
    edge, smtp, client = tracked
    shoes = links_of(smtp.messages[0].get_body(("html",)).get_content())[0]
    body, _, mac = shoes.rpartition("/")[2].partition(".")
    other = Token(kind=CLICK, message_id="t-1", profile_id="user:gi", channel="email",
                  url="https://evil.test/")
    forged = Tokens(b"not the edge's key!").sign(other)
    for url in (f"{edge.url}/go/{forged}", f"{edge.url}/go/{body}x.{mac}",
                f"{edge.url}/go/nonsense", f"{edge.url}/go/{body}.{mac}?url=https://evil.test/"):
        answer = httpx.get(url, headers={"user-agent": BROWSER})
        if url.endswith("evil.test/"):  # a free parameter changes nothing
            assert answer.status_code == 302 and "evil" not in answer.headers["location"]
        else:
            assert answer.status_code == 400, url
            assert "location" not in answer.headers
            assert answer.json()["field"] == "token"


def test_opens_and_clicks_of_machines_count_for_nothing(tracked):
    edge, smtp, client = tracked
    html = smtp.messages[0].get_body(("html",)).get_content()
    pixel = re.search(r'<img src="([^"]+)"', html).group(1)
    assert httpx.get(pixel, headers={"user-agent": "Mozilla/5.0"}).headers["content-type"] == "image/png"
    shoes = links_of(html)[0]
    assert httpx.head(shoes, headers={"user-agent": BROWSER}).status_code == 302  # a scanner's HEAD
    httpx.get(shoes, headers={"user-agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)"})
    wait_until(lambda: events_named(client, "Email Prefetched") and events_named(client, "Email Scanned"),
               what="the machines' events")
    assert events_named(client, "Email Opened") == [] and events_named(client, "Email Clicked") == []
    profile = edge.http.get("/v1/profiles/user:gi", headers=basic(SECRET_KEY)).json()
    assert profile["last_channel"] is None
    httpx.get(pixel, headers={"user-agent": BROWSER})
    wait_until(lambda: events_named(client, "Email Opened"), what="a person's open")


def test_one_click_unsubscribe_withdraws_consent_before_the_next_send(tracked):
    edge, smtp, client = tracked
    mail = smtp.messages[0]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = mail["List-Unsubscribe"].strip("<>")
    assert url == links_of(mail.get_body(("html",)).get_content())[-1]
    page = httpx.get(url)
    assert page.status_code == 200 and "Unsubscribe from email" in page.text
    answer = httpx.post(url, content="List-Unsubscribe=One-Click",
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200, answer.text
    profile = edge.http.get("/v1/profiles/user:gi", headers=basic(SECRET_KEY)).json()
    assert profile["consent"]["email"]["granted"] is False
    assert profile["consent"]["email"]["source"] == "one-click unsubscribe"
    queue(client, "user:gi", "t-2")
    wait_until(lambda: ledger_state(client, "t-2") == "failed", what="the next message")
    assert len(smtp.messages) == 1


def test_the_preference_page_writes_each_choice(tracked):
    edge, smtp, client = tracked
    url = smtp.messages[0]["List-Unsubscribe"].strip("<>")
    answer = httpx.post(url, data={"action": "preferences", "marketing": "on", "sms": "on"})
    assert answer.status_code == 200, answer.text
    consent = edge.http.get("/v1/profiles/user:gi", headers=basic(SECRET_KEY)).json()["consent"]
    assert {name: consent[name]["granted"] for name in ("marketing", "email", "sms", "push")} == \
        {"marketing": True, "email": False, "sms": True, "push": False}
    assert consent["sms"]["source"] == "preference page"
    page = httpx.get(url).text  # shows what the person allows now, to save unchanged
    boxes = dict(re.findall(r'name="(\w+)" value="on"( checked)?', page))
    assert boxes == {"marketing": " checked", "email": "", "sms": " checked", "whatsapp": "",
                     "push": "", "advertising": ""}
    assert httpx.post(url, content="junk=1").status_code == 400


# -- vectors -------------------------------------------------------------------------------

@pytest.mark.parametrize("url, expected", [
    ("https://a.test/x", "https://a.test/x?utm_source=s&utm_medium=email&utm_campaign=c"),
    ("https://a.test/x?q=1#top", "https://a.test/x?q=1&utm_source=s&utm_medium=email&utm_campaign=c#top"),
    ("https://a.test/x?utm_medium=ad", "https://a.test/x?utm_medium=ad"),
])
def test_utm_vectors(url, expected):
    assert with_utm(url, "s", "email", "c") == expected


@pytest.mark.parametrize("agent, method, since_ms, machine", [
    (BROWSER, "GET", 60_000, False),
    (BROWSER, "HEAD", 60_000, True),
    (BROWSER, "GET", 2_000, True),       # seconds after sending: a mail filter
    ("", "GET", 60_000, True),
    ("Mozilla/5.0 (compatible; MSOffice; SafeLinks)", "GET", 60_000, True),
    ("python-requests/2.31", "GET", 60_000, True),
])
def test_click_machine_vectors(agent, method, since_ms, machine):
    assert click_by_machine(agent, method, 1_000_000, 1_000_000 + since_ms) is machine


@pytest.mark.parametrize("agent, machine", [
    (BROWSER, False), ("Mozilla/5.0", True), ("", True),
    ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)", False),
])
def test_open_machine_vectors(agent, machine):
    assert open_by_machine(agent) is machine


def test_a_token_signed_with_another_key_does_not_verify():
    token = Token(kind=CLICK, message_id="m", profile_id="user:a", channel="email", url="https://a.test/")
    signed = Tokens(b"k" * 32).sign(token)
    assert Tokens(b"k" * 32).verify(signed) == token
    with pytest.raises(BadToken):
        Tokens(b"j" * 32).verify(signed)
