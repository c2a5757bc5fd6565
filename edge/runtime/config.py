"""Settings: the YAML configuration file, validated at load.

Everything the edge reads from `config/kairos.yaml` is turned into frozen
msgspec Structs here, so a typo is reported once, at start, with the path of the
offending field, and the rest of the code can trust the values.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import yaml

from rules.definitions import CHANNELS, PURPOSES
from rules.runtime import DEFAULT_SUMMAND_BOUND

CONSENT_NAMES = (*PURPOSES, *CHANNELS)

CONFIG_FILE_NAME = "kairos.yaml"


class Site(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str = ""
    write_keys: list[str] = []
    origins: list[str] = []
    user_hash_secret: str = ""
    timezone: str = "UTC"
    # The site's registrable domain (e.g. "shop.example") when the edge runs on a
    # subdomain of it: the visitor cookie is then first-party for the whole site.
    cookie_domain: str = ""
    # Web Push: the site's VAPID public key (base64url). The snippet's service
    # worker subscribes with it; empty means the site does not use Web Push.
    vapid_public_key: str = ""
    # Consent assumed for a purpose or channel the person has not answered yet
    # (edge.ingest.consent.DEFAULTS fills the rest: opt-in for marketing and for push,
    # email, SMS and WhatsApp).
    consent_defaults: dict[str, bool] = {}


class SecretKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    site: str
    scopes: list[str] = []
    journeys: list[str] = []


class Limits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max_body_bytes: int = 512 * 1024
    max_batch_events: int = 500
    max_depth: int = 8
    max_properties: int = 200
    max_string_length: int = 8192
    max_id_length: int = 256
    # The largest amount (revenue, price, quantity, ...) an event may carry, either sign.
    max_amount: float = DEFAULT_SUMMAND_BOUND


class ProfileLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    anonymous_ttl_days: int = 90
    max_traits: int = 200
    recent_products: int = 20
    recent_categories: int = 10
    max_cart_items: int = 100
    max_distinct_values: int = 500
    dedupe_window_hours: int = 48
    dedupe_max_ids: int = 2000
    session_gap_minutes: int = 30


class StreamSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    key: str = "kairos:events"
    max_length: int = 1_000_000


class CatalogSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Upsell offers products of the same category that cost at least this much
    # more (0.10 = 10% more): a step small enough to be an easy yes, big enough
    # not to look like the same product.
    upsell_step: float = 0.10
    # Cross-sell counts pairs within one order: an order of n products costs
    # n·(n−1) increments, so huge (B2B) orders are cut to their first products.
    max_order_products: int = 50
    # Co-purchase counts kept per product; the rarest pairs are forgotten beyond it.
    max_cross_sell_per_product: int = 500


class RedisSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    deadline_ms: int = 1000


class DemoSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # The demo shop at /demo, off unless enabled. Its stand-in sign-in (/demo/sign)
    # signs any user id it is given, so it works only while `site` keeps the secret the
    # example configuration publishes (DEMO_USER_HASH_SECRET), never with a real one.
    enabled: bool = False
    site: str = "demo"


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    sites: dict[str, Site] = {}
    secret_keys: dict[str, SecretKey] = {}
    rules: str = "rules"
    limits: Limits = Limits()
    profiles: ProfileLimits = ProfileLimits()
    stream: StreamSettings = StreamSettings()
    redis: RedisSettings = RedisSettings()
    catalog: CatalogSettings = CatalogSettings()
    demo: DemoSettings = DemoSettings()
    # Filled in by load_settings, not read from the file.
    config_dir: str = "."

    @property
    def rules_dir(self) -> Path:
        return Path(self.config_dir) / self.rules


KNOWN_SCOPES = frozenset({"ingest", "profiles:read", "profiles:delete", "admin", "journeys:enroll",
                          "catalog:read", "catalog:write"})
DEMO_KEYS = frozenset({"demo", "demo-secret"})
# The demo site's user hash secret as the example configuration publishes it.
DEMO_USER_HASH_SECRET = "demo-user-hash-secret"


class SettingsError(Exception):
    """The configuration is invalid; the message names the file and the field."""


def load_settings(config_dir: str | os.PathLike[str]) -> Settings:
    config_dir = Path(config_dir)
    path = config_dir / CONFIG_FILE_NAME
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise SettingsError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: {exc}") from None
    try:
        settings = msgspec.convert(raw, Settings)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"{path}: {exc}") from None
    settings = msgspec.structs.replace(settings, config_dir=str(config_dir))
    problems = validate(settings)
    if problems:
        raise SettingsError("\n".join(f"{path}: {p}" for p in problems))
    return settings


def validate(settings: Settings) -> list[str]:
    """Cross-field checks msgspec cannot express."""
    problems: list[str] = []
    seen_keys: dict[str, str] = {}
    for site_id, site in settings.sites.items():
        for key in site.write_keys:
            if key in seen_keys:
                problems.append(f"sites.{site_id}.write_keys: key already used by {seen_keys[key]}")
            seen_keys[key] = f"sites.{site_id}"
        for origin in site.origins:
            if not origin.startswith(("http://", "https://")) or origin.endswith("/"):
                problems.append(
                    f"sites.{site_id}.origins: {origin!r} must look like https://host[:port]"
                )
        for name in site.consent_defaults:
            if name not in CONSENT_NAMES:
                problems.append(f"sites.{site_id}.consent_defaults: unknown purpose or channel "
                                f"{name!r}; expected one of: {', '.join(CONSENT_NAMES)}")
    for key, secret in settings.secret_keys.items():
        label = f"secret_keys.{key if key in DEMO_KEYS else key[:4] + '…'}"
        if key in seen_keys:
            problems.append(f"{label}: key already used by {seen_keys[key]}")
        seen_keys[key] = label
        if secret.site not in settings.sites:
            problems.append(f"{label}.site: unknown site {secret.site!r}")
        for scope in secret.scopes:
            if scope not in KNOWN_SCOPES:
                problems.append(f"{label}.scopes: unknown scope {scope!r}")
    if settings.demo.enabled and settings.demo.site not in settings.sites:
        problems.append(f"demo.site: unknown site {settings.demo.site!r}")
    for name, value in msgspec.structs.asdict(settings.limits).items():
        if value <= 0:
            problems.append(f"limits.{name}: must be positive")
    for name, value in msgspec.structs.asdict(settings.profiles).items():
        if value <= 0:
            problems.append(f"profiles.{name}: must be positive")
    for name, value in msgspec.structs.asdict(settings.catalog).items():
        if value < 0 or (value == 0 and name != "upsell_step"):
            problems.append(f"catalog.{name}: must be positive")
    return problems
