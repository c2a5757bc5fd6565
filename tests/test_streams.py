"""The stream records (edge/store/streams.py): what the edge writes decodes to typed
records, messages go to the untrimmed outbox, and erasure takes a person's out of both."""

from __future__ import annotations

import itertools
from contextlib import ExitStack

import msgspec
import pytest
from hypothesis import given, strategies as st

from edge.store import streams
from tests.support import SECRET_KEY, SETTINGS_YAML, LiveEdge, basic, write_config

NOTIFY_RULES = """
rules:
  - id: restock
    on: Restocked
    actions:
      - notify:
          channels: [email]
          title: "Back in stock"
          body: "{{ event.properties.name }} is back"
          link: "/p/lamp"
"""

text = st.text(max_size=20)
ids = st.text(min_size=1, max_size=20)
times = st.integers(0, 2**53)
prices = st.none() | st.floats(min_value=0, max_value=1e9, allow_nan=False)
json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | text,
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(text, inner, max_size=3), max_leaves=8)

records = st.one_of(
    st.builds(streams.Event, profile_id=ids,
              event=st.dictionaries(text, json_values, max_size=5)),
    st.builds(streams.Exposure, profile_id=ids, message_id=ids, timestamp=times,
              experiment=ids, variant=ids, rule=ids, exposed=st.booleans()),
    st.builds(streams.OutboundMessage, profile_id=ids, message_id=ids, timestamp=times,
              rule=ids, channel=st.sampled_from(["email", "sms", "whatsapp"]),
              title=st.none() | text, body=text, link=st.none() | text),
    st.builds(streams.CatalogChange, change=st.just(streams.PRICE_DROPPED), message_id=ids,
              timestamp=times, product_id=ids, name=text, currency=st.just("EUR"),
              category=text, price=prices, sale_price=prices, new_price=prices, old_price=prices),
    st.builds(streams.CatalogChange, change=st.just(streams.BACK_IN_STOCK), message_id=ids,
              timestamp=times, product_id=ids, url=text, brand=text, price=prices,
              new_stock=st.none() | st.integers(1, 10**6), old_stock=st.just(0)),
)


@given(records)
def test_a_record_decodes_to_itself(record):
    fields = streams.encode(record)
    assert list(fields) == list(streams.FIELDS[:len(fields)])
    as_redis_returns_them = {name.encode(): value.encode() for name, value in fields.items()}
    assert streams.decode(as_redis_returns_them) == record
    assert streams.decode(fields) == record  # a client that decodes responses


def test_a_record_of_unknown_kind_or_shape_is_refused():
    with pytest.raises(msgspec.ValidationError, match="unknown record kind"):
        streams.decode({b"p": b"anon:a", b"e": b"{}", b"k": b"archive"})
    with pytest.raises(msgspec.ValidationError):
        streams.decode({b"p": b"anon:a", b"e": b'{"properties": {"experiment": 1}}', b"k": b"exposure"})


@pytest.fixture
def notify_edge(redis_url, tmp_path):
    with ExitStack() as stack:
        numbers = itertools.count()

        def start(settings_yaml: str = SETTINGS_YAML) -> LiveEdge:
            config = write_config(tmp_path / f"config-{next(numbers)}", NOTIFY_RULES, settings_yaml)
            return stack.enter_context(LiveEdge(config, redis_url))
        yield start


def post(edge: LiveEdge, path: str, body: dict) -> dict:
    response = edge.post(path, body)
    assert response.status_code == 200, response.text
    return response.json()


def reachable_by_email(edge: LiveEdge, who: str) -> None:
    post(edge, "/v1/identify", {"anonymousId": who,
                                "traits": {"email": f"{who}@example.com", "consent": {"email": True}}})


def decoded(redis_client, key: str) -> list[streams.Record]:
    return [streams.decode(fields) for _, fields in redis_client.xrange(key)]


def test_messages_go_to_the_outbox_and_events_stay_on_the_event_stream(notify_edge, redis_client):
    edge = notify_edge()
    reachable_by_email(edge, "ob-1")
    post(edge, "/v1/track", {"anonymousId": "ob-1", "event": "Restocked",
                             "properties": {"name": "Lamp"}, "messageId": "r-1"})
    # a client's own "Experiment Viewed" is an event like any other, not the edge's record
    post(edge, "/v1/track", {"anonymousId": "ob-1", "event": "Experiment Viewed",
                             "properties": {"experiment": "x", "variant": "a"}})

    events = decoded(redis_client, streams.EVENTS)
    assert all(isinstance(record, streams.Event) for record in events), events
    assert [e.name for e in events] == [None, "Restocked", "Experiment Viewed"]
    assert events[1].message_id == "r-1" and events[1].profile_id == "anon:ob-1"

    (message,) = decoded(redis_client, streams.OUTBOX)
    assert isinstance(message, streams.OutboundMessage)
    assert (message.profile_id, message.rule, message.channel, message.title, message.body,
            message.link) == ("anon:ob-1", "restock", "email", "Back in stock", "Lamp is back", "/p/lamp")
    assert message.timestamp == edge.clock.now_ms() and message.message_id.startswith("kairos-")


def test_the_outbox_is_never_trimmed(notify_edge, redis_client):
    """The event stream is trimmed (MAXLEN ~, a whole node of 100 entries at a time);
    an undelivered message must never be."""
    edge = notify_edge(SETTINGS_YAML + "\nstream:\n  max_length: 1\n")
    people = [f"tr-{n}" for n in range(3)]
    for who in people:
        reachable_by_email(edge, who)
    for round_ in range(40):
        for who in people:
            post(edge, "/v1/track", {"anonymousId": who, "event": "Restocked",
                                     "properties": {"name": f"Lamp {round_}"}})
    assert redis_client.xlen(streams.EVENTS) < 123  # trimmed
    assert redis_client.xlen(streams.OUTBOX) == 120


def test_erasure_takes_the_persons_messages_out_of_the_outbox(notify_edge, redis_client):
    edge = notify_edge()
    for who in ("er-1", "er-2"):
        reachable_by_email(edge, who)
        for n in range(2):
            post(edge, "/v1/track", {"anonymousId": who, "event": "Restocked",
                                     "properties": {"name": f"Lamp {n}"}})
    assert redis_client.xlen(streams.OUTBOX) == 4

    r = edge.http.delete("/v1/profiles/anon:er-1", headers=basic(SECRET_KEY))
    assert r.status_code == 200, r.text
    assert r.json()["messages"] == 2 and r.json()["events"] == 3
    left = decoded(redis_client, streams.OUTBOX)
    assert [m.profile_id for m in left] == ["anon:er-2", "anon:er-2"]
    assert {e.profile_id for e in decoded(redis_client, streams.EVENTS)} == {"anon:er-2"}
