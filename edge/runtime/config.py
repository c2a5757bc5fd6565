"""Settings: the YAML configuration file, validated at load.

Everything the edge reads from `config/kairos.yaml` is turned into frozen
msgspec Structs here, so a typo is reported once, at start, in plain words at the
file, line and column of the offending setting (edge/runtime/config_errors.py), and
the rest of the code can trust the values.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import yaml

from edge.runtime import config_errors
from edge.runtime.config_errors import SettingPath
from rules.definitions import CHANNELS, PURPOSES
from rules.runtime import DEFAULT_SUMMAND_BOUND
from rules.suggest import did_you_mean

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


class MetricsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # /metrics tells traffic, errors and rule timings: private unless said otherwise, read
    # with a secret key that has the scope `metrics`. Public suits a scraper on a private
    # network that cannot send a key.
    public: bool = False


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
    metrics: MetricsSettings = MetricsSettings()
    # Filled in by load_settings, not read from the file.
    config_dir: str = "."

    @property
    def rules_dir(self) -> Path:
        return Path(self.config_dir) / self.rules


KNOWN_SCOPES = frozenset({"ingest", "profiles:read", "profiles:delete", "admin", "journeys:enroll",
                          "catalog:read", "catalog:write", "metrics"})
DEMO_KEYS = frozenset({"demo", "demo-secret"})
# The demo site's user hash secret as the example configuration publishes it.
DEMO_USER_HASH_SECRET = "demo-user-hash-secret"


class SettingsError(Exception):
    """The configuration is invalid; the message names the file and the field."""


def load_settings(config_dir: str | os.PathLike[str]) -> Settings:
    config_dir = Path(config_dir)
    path = config_dir / CONFIG_FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"{path}: file not found") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(_yaml_problem(path, exc)) from None
    root = config_errors.compose(text)
    try:
        settings = msgspec.convert(raw, Settings)
    except msgspec.ValidationError as exc:
        where, at_key, message = config_errors.explain_validation(exc, raw, Settings, hide_secrets)
        raise SettingsError(config_errors.located(path, root, where, message, at_key)) from None
    settings = msgspec.structs.replace(settings, config_dir=str(config_dir))
    problems = validate(settings)
    if problems:
        raise SettingsError("\n".join(
            config_errors.located(path, root, where, f"{config_errors.describe(where, hide_secrets)}"
                                                     f": {message}")
            for where, message in problems))
    return settings


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return f"{path}: {exc}"
    what = " ".join(part for part in (getattr(exc, "context", None), getattr(exc, "problem", None))
                    if part)
    return f"{path}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {what or exc}"


def hide_secrets(where: SettingPath) -> SettingPath:
    """A path to show: a secret key is shown by its first four characters only."""
    if len(where) > 1 and where[0] == "secret_keys" and where[1] not in DEMO_KEYS:
        return (where[0], f"{str(where[1])[:4]}…", *where[2:])
    return where


def validate(settings: Settings) -> list[tuple[SettingPath, str]]:
    """Cross-field checks msgspec cannot express: (the setting's path, what is wrong)."""
    problems: list[tuple[SettingPath, str]] = []
    seen_keys: dict[str, str] = {}
    for site_id, site in settings.sites.items():
        for index, key in enumerate(site.write_keys):
            if key in seen_keys:
                problems.append((("sites", site_id, "write_keys", index),
                                 f"key already used by {seen_keys[key]}"))
            seen_keys[key] = f"sites.{site_id}"
        for index, origin in enumerate(site.origins):
            if not origin.startswith(("http://", "https://")) or origin.endswith("/"):
                problems.append((("sites", site_id, "origins", index),
                                 f"{origin!r} must look like https://host[:port]"))
        for name in site.consent_defaults:
            if name not in CONSENT_NAMES:
                problems.append((("sites", site_id, "consent_defaults", name),
                                 f"unknown purpose or channel {name!r}; expected one of: "
                                 f"{', '.join(CONSENT_NAMES)}"))
    for key, secret in settings.secret_keys.items():
        label = config_errors.describe(("secret_keys", key), hide_secrets)
        if key in seen_keys:
            problems.append((("secret_keys", key), f"key already used by {seen_keys[key]}"))
        seen_keys[key] = label
        if secret.site not in settings.sites:
            problems.append((("secret_keys", key, "site"), f"unknown site {secret.site!r}"))
        for index, scope in enumerate(secret.scopes):
            if scope not in KNOWN_SCOPES:
                problems.append((("secret_keys", key, "scopes", index),
                                 f"unknown scope {scope!r}{did_you_mean(scope, KNOWN_SCOPES)}"))
    if settings.demo.enabled and settings.demo.site not in settings.sites:
        problems.append((("demo", "site"), f"unknown site {settings.demo.site!r}"))
    for section in ("limits", "profiles", "catalog"):
        for name, value in msgspec.structs.asdict(getattr(settings, section)).items():
            if value < 0 or (value == 0 and name != "upsell_step"):
                problems.append(((section, name), "must be positive"))
    return problems
