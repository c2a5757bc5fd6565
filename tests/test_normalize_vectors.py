"""rules/vectors/normalize.json specifies Segment normalization (edge/ingest/normalize.py):
an event as a Segment SDK sends it, the key kind it came with ("public": a browser's write
key; "secret": a server's), and either the fields it normalizes to (the identifier it is
stored under, its time on the server's clock, the identifiers it joins or merges, an
unverified claim, the traits it sets, and the normalized event's own fields) or the
error naming the field and the reason."""

from __future__ import annotations

import json
from importlib import resources

import msgspec
import pytest

from edge.ingest.auth import Caller
from edge.ingest.normalize import normalize
from edge.ingest.wire import Event, InputError
from edge.runtime.config import Limits, Site

VECTORS = json.loads(resources.files("rules").joinpath("vectors", "normalize.json")
                     .read_text("utf-8"))
SITE = Site(**VECTORS["site"])


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda case: case["name"])
def test_normalization(case) -> None:
    caller = Caller(case["key"], "shop", SITE, frozenset({"ingest"}))
    event = msgspec.convert(case["event"], Event)
    if "error" in case:
        with pytest.raises(InputError) as raised:
            normalize(event, caller, Limits(), VECTORS["received_ms"])
        assert {"field": raised.value.field, "reason": raised.value.reason} == case["error"]
        return
    incoming = normalize(event, caller, Limits(), VECTORS["received_ms"])
    expected = dict(case["expected"])
    fields = expected.pop("event")
    assert {name: getattr(incoming, name) for name in expected} == expected
    assert {name: incoming.event.get(name) for name in fields} == fields
    # What the vector leaves out of the normalized event is absent, not merely unlisted.
    optional = {"event", "name", "previousId", "unverifiedUserId"} - fields.keys()
    assert not optional & incoming.event.keys()
