"""Problems in kairos.yaml are named at file:line:column, in plain words, for any setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.runtime.config import SettingsError, load_settings

# (the file, the line:column and the message that come after the file's path)
CASES = [
    ("limits:\n  max_batch_event: 5\n",
     "2:3: unknown setting 'max_batch_event' in limits (did you mean 'max_batch_events'?); "
     "expected one of: max_body_bytes, max_batch_events, max_depth, max_properties, "
     "max_string_length, max_id_length, max_amount"),
    ("limitz: {}\n", "1:1: unknown setting 'limitz' at the top level (did you mean 'limits'?); "
     "expected one of: sites, secret_keys, rules, scenarios, limits, profiles, stream, redis, "
     "catalog, demo, "
     "metrics, automation, delivery, audiences, destinations"),
    ("limits:\n  max_depth: deep\n", "2:14: limits.max_depth must be a whole number, not text"),
    ("limits:\n  max_amount: lots\n", "2:15: limits.max_amount must be a number, not text"),
    ("sites:\n  a: {name: A}\n  b:\n    origins: [https://b.test, 7]\n",
     "4:31: sites.b.origins[1] must be text, not a whole number"),
    ("sites:\n  a:\n    colour: red\n",
     "3:5: unknown setting 'colour' in sites.a; expected one of: name, write_keys, origins, "
     "user_hash_secret, timezone, cookie_domain, vapid_public_key, consent_defaults, email_from, "
     "shops"),
    ("sites: [a, b]\n", "1:8: sites must be a mapping, not a list"),
    ("demo:\n  enabled: yes please\n", "2:12: demo.enabled must be true or false, not text"),
    # a secret key is shown by its first four characters only
    ("sites: {a: {}}\nsecret_keys:\n  sk-live-0123456789:\n    scopes: [ingest]\n",
     "3:3: secret_keys.sk-l… needs 'site'"),
    ("sites: {a: {}}\nsecret_keys:\n  sk-live-0123456789: {site: a, scopes: [ingest, admn]}\n",
     "3:50: secret_keys.sk-l….scopes[1]: unknown scope 'admn' (did you mean 'admin'?)"),
    ("sites: {a: {}}\nsecret_keys:\n  sk-live-0123456789: {site: b}\n",
     "3:30: secret_keys.sk-l….site: unknown site 'b'"),
    ("sites:\n  a:\n    origins: ['https://a.test/']\n",
     "3:15: sites.a.origins[0]: 'https://a.test/' must look like https://host[:port]"),
    ("profiles:\n  max_traits: 0\n", "2:15: profiles.max_traits: must be positive"),
    ("limits: [\n", "2:1: not valid YAML: while parsing a flow node expected the node content, "
     "but found '<stream end>'"),
]


@pytest.mark.parametrize("text, expected", CASES)
def test_a_bad_setting_is_named_where_it_is(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "kairos.yaml").write_text(text)
    with pytest.raises(SettingsError) as raised:
        load_settings(tmp_path)
    assert str(raised.value) == f"{tmp_path / 'kairos.yaml'}:{expected}"
    assert "0123456789" not in str(raised.value)


def test_the_example_configuration_loads() -> None:
    assert load_settings(Path(__file__).resolve().parents[1] / "config").sites
