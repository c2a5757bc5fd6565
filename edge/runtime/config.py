"""Settings: the YAML configuration file, validated at load.

Everything the edge reads from `config/kairos.yaml` is turned into frozen
msgspec Structs here, so a typo is reported once, at start, in plain words at the
file, line and column of the offending setting (edge/runtime/config_errors.py), and
the rest of the code can trust the values.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Mapping

import msgspec
import yaml

from edge.runtime import config_errors
from edge.runtime.config_errors import SettingPath
from rules.definitions import CHANNELS, PURPOSES
from rules.runtime import DEFAULT_SUMMAND_BOUND
from rules.suggest import did_you_mean

CONSENT_NAMES = (*PURPOSES, *CHANNELS)

CONFIG_FILE_NAME = "kairos.yaml"


class ShopSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # A shop as a geofence (rules/geo.py, edge/ingest/location.py): an app event whose
    # context.location lies within `radius` metres of its point, or a `Hotspot Login`
    # naming one of its hotspots, places the person in it.
    latitude: float
    longitude: float
    radius: float                   # metres
    # per day, on the shop's clock: {mon-fri: "09:00-19:00", sat: "10:00-14:00"}
    # (rules/opening_hours.py); days not named are closed
    hours: dict[str, str | list[str]]
    name: str = ""
    timezone: str = ""              # an IANA zone; "": the site's
    hotspots: list[str] = []        # Wi-Fi network names or hotspot device ids


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
    # The sender of the site's email, "Name <address>".
    email_from: str = ""
    # The site's shops as geofences, by id (for geo offers, docs/scenarios.md).
    shops: dict[str, ShopSettings] = {}


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
    # The demo's inbox: an SMTP server on this local port, run by the automation worker,
    # that keeps what it receives for /demo/inbox. 0: none. Point delivery.email at it.
    inbox_port: int = 0


class MetricsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # /metrics tells traffic, errors and rule timings: private unless said otherwise, read
    # with a secret key that has the scope `metrics`. Public suits a scraper on a private
    # network that cannot send a key.
    public: bool = False


class AutomationSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # The automation worker (`kairos worker`): journeys, its consumer group, its timers.
    journeys: str = "journeys"      # journey files, relative to the configuration folder
    namedays: str = "namedays"      # name-day calendars (<country>.tsv), relative to it too
    group: str = "kairos-automation"
    start: str = "new"              # where a new consumer group begins: new events, or all
    visibility_ms: int = 30_000     # a pending event unacknowledged this long goes to another worker
    batch: int = 200                # events read at once
    timer_shards: int = 8
    timer_lease_ms: int = 30_000    # a claimed timer whose worker died fires again after this
    poll_ms: int = 100              # how often due timers are claimed


class EmailSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # SMTP; the credentials are read from the environment variables named here.
    host: str = "127.0.0.1"
    port: int = 25
    security: str = "none"          # none | starttls | tls (implicit, usually port 465)
    verify_certificates: bool = True
    username_env: str = ""
    password_env: str = ""
    pool: int = 4                   # connections kept open, and messages sent at once
    rate_per_s: float = 0           # at most this many a second on average; 0: no limit
    timeout_ms: int = 10_000


class SmsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # A Twilio-compatible Messages API; the credentials come from the environment.
    base_url: str = "https://api.twilio.com"
    account_sid_env: str = ""
    auth_token_env: str = ""        # also the key status callbacks are signed with
    sender: str = ""                # From: a number (E.164) or an alphanumeric sender id
    messaging_service_sid: str = "" # instead of a sender
    status_callback_url: str = ""   # this edge's /v1/callbacks/sms, as the provider reaches it
    default_region: str = "CZ"      # numbers written without +country are read as this
    concurrency: int = 8
    rate_per_s: float = 0
    timeout_ms: int = 10_000


class WhatsAppSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # The WhatsApp Cloud API; the credentials come from the environment.
    base_url: str = "https://graph.facebook.com"
    api_version: str = "v21.0"
    phone_number_id: str = ""
    access_token_env: str = ""
    app_secret_env: str = ""        # callbacks are signed with it (X-Hub-Signature-256)
    verify_token_env: str = ""      # the callback URL's subscription check
    # Outside the 24 hours after the person last wrote, only an approved template may be
    # sent: this one, with the message's text as its body parameter.
    template: str = ""
    language: str = "en"
    default_region: str = "CZ"
    concurrency: int = 8
    rate_per_s: float = 0
    timeout_ms: int = 10_000


class WebhookEndpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str
    secret_env: str                 # the signing secret (whsec_<base64>), from the environment
    previous_secret_env: str = ""   # while rotating: the old secret, signed with as well


class WebhookSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    endpoints: dict[str, WebhookEndpoint] = {}
    concurrency: int = 32
    rate_per_s: float = 0
    timeout_ms: int = 5_000


class WebPushSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Web Push with VAPID; the private key (base64url of its 32 bytes, or PEM) comes
    # from the environment. Its public key is what each site's vapid_public_key says.
    private_key_env: str = ""
    subject: str = ""               # who sends: mailto:ops@shop.example or https://shop.example
    ttl_s: int = 86_400             # how long a push service keeps it for an offline browser
    urgency: str = "normal"         # very-low | low | normal | high (RFC 8030)
    # The push services a subscription may point at (a host, or a domain and its
    # subdomains): a subscription is written by a browser, so anyone could give one
    # aimed at an internal address. The browsers' services by default.
    push_hosts: tuple[str, ...] = ("fcm.googleapis.com", "android.googleapis.com",
                                   "push.services.mozilla.com", "notify.windows.com",
                                   "push.apple.com")
    ca_file: str = ""               # a private CA to trust for the push service (a test one)
    concurrency: int = 32
    rate_per_s: float = 0
    timeout_ms: int = 10_000


class DeliverySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # The delivery service (kairos worker): reads the outbox, sends through the connectors.
    enabled: bool = True
    group: str = "kairos-delivery"
    visibility_ms: int = 60_000     # an outbox entry a dead worker held goes to another after this
    lease_ms: int = 60_000          # how long one attempt may take before it counts as interrupted
    batch: int = 200
    max_attempts: int = 6           # then the message is dead-lettered
    backoff_ms: int = 2_000         # the first retry's delay; doubled each time, with jitter
    max_backoff_ms: int = 600_000
    ledger_days: int = 14           # how long a message id is remembered against resending
    # This edge's address as readers reach it (https://edge.shop.example): tracking links,
    # the open pixel and unsubscribe point here. Empty: messages go out without them.
    public_url: str = ""
    track_opens: bool = True
    track_clicks: bool = True
    short_link_days: int = 90       # how long a text's short links lead somewhere
    email: EmailSettings | None = None
    sms: SmsSettings | None = None
    whatsapp: WhatsAppSettings | None = None
    webhooks: WebhookSettings = WebhookSettings()
    push: WebPushSettings | None = None


class AudienceSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # A segment exported as a hashed ad audience (edge/connectors/audiences.py): by
    # `kairos export audience`, and by the worker every `every_s` seconds. Each export
    # sends what changed since the last one: the people who joined, the people who left.
    segment: str
    format: str                     # google | meta
    stored: bool = False            # the segment is a stored one (kairos lookalike), not the rules'
    site: str = ""                  # whose consent defaults apply ("": the first site)
    consent: tuple[str, ...] = ("advertising",)  # each must be granted to be exported
    every_s: int = 0                # 0: only when asked (kairos export audience)
    to: str = "file"                # file: request bodies into `folder`; api: the platform's
    folder: str = "exports/audiences"  # relative to the configuration's folder
    base_url: str = ""              # to: api ("": the platform's own)
    token_env: str = ""             # to: api: the OAuth access token's environment variable
    audience_id: str = ""           # Google's user list, Meta's custom audience
    account_id: str = ""            # Google: the operating account
    account_type: str = "GOOGLE_ADS"
    api_version: str = "v21.0"      # Meta's Graph API
    default_region: str = "CZ"      # phone numbers written without +country
    timeout_ms: int = 30_000


class DestinationSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Another system kept in step (edge/worker/destinations.py): the events, as they
    # arrive, POSTed in batches and signed as webhooks are; erasures as deletion requests.
    url: str
    secret_env: str                 # the signing secret (whsec_<base64>), from the environment
    previous_secret_env: str = ""   # while rotating: the old secret, signed with as well
    # which events: track events by name, or page, screen, identify, group, alias by type
    # (empty: every event); `when`: a condition on the event in the rules' language
    events: tuple[str, ...] = ()
    when: str = ""
    erasures: bool = True           # an erased person is sent as {"type": "profile.deleted"}
    batch: int = 100                # events per request at most
    max_attempts: int = 8           # a batch refused this often (timeouts, 5xx, 429) is dead-lettered
    backoff_ms: int = 1_000         # the first retry's delay; doubled each time, with jitter
    max_backoff_ms: int = 60_000
    timeout_ms: int = 10_000


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    sites: dict[str, Site] = {}
    secret_keys: dict[str, SecretKey] = {}
    rules: str = "rules"
    # The scenario pack: a folder per scenario, its journeys (journey*.yaml) and its rules
    scenarios: str = "scenarios"
    limits: Limits = Limits()
    profiles: ProfileLimits = ProfileLimits()
    stream: StreamSettings = StreamSettings()
    redis: RedisSettings = RedisSettings()
    catalog: CatalogSettings = CatalogSettings()
    demo: DemoSettings = DemoSettings()
    metrics: MetricsSettings = MetricsSettings()
    automation: AutomationSettings = AutomationSettings()
    delivery: DeliverySettings = DeliverySettings()
    audiences: dict[str, AudienceSettings] = {}
    destinations: dict[str, DestinationSettings] = {}
    # Filled in by load_settings, not read from the file.
    config_dir: str = "."

    @property
    def rules_dir(self) -> Path:
        return Path(self.config_dir) / self.rules

    @property
    def scenarios_dir(self) -> Path:
        return Path(self.config_dir) / self.scenarios

    @property
    def journeys_dir(self) -> Path:
        return Path(self.config_dir) / self.automation.journeys

    @property
    def namedays_dir(self) -> Path:
        return Path(self.config_dir) / self.automation.namedays


KNOWN_SCOPES = frozenset({"ingest", "profiles:read", "profiles:delete", "admin", "journeys:enroll",
                          "catalog:read", "catalog:write", "metrics", "delivery:report"})
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
    automation = settings.automation
    if automation.start not in ("new", "all"):
        problems.append((("automation", "start"), "must be new or all"))
    for name in ("visibility_ms", "batch", "timer_shards", "timer_lease_ms", "poll_ms"):
        if getattr(automation, name) <= 0:
            problems.append((("automation", name), "must be positive"))
    problems += delivery_problems(settings, os.environ)
    problems += audience_problems(settings, os.environ)
    problems += destination_problems(settings, os.environ)
    problems += shop_problems(settings)
    return problems


def destination_problems(settings: Settings, environ: Mapping[str, str]
                         ) -> list[tuple[SettingPath, str]]:
    from rules.expression import ExpressionInvalid, parse_checked

    problems: list[tuple[SettingPath, str]] = []
    for name, destination in settings.destinations.items():
        where = ("destinations", name)
        problems += _name_problems(where, "it names a consumer group")
        if not destination.secret_env:
            problems.append(((*where, "secret_env"), "must name the environment variable that "
                                                     "holds the signing secret"))
        problems += _signed_endpoint_problems(where, destination, environ)
        if not 1 <= destination.batch <= 1000:
            problems.append(((*where, "batch"), "must be between 1 and 1000"))
        for field in ("max_attempts", "backoff_ms", "max_backoff_ms", "timeout_ms"):
            if getattr(destination, field) <= 0:
                problems.append(((*where, field), "must be positive"))
        if destination.when:
            try:
                parse_checked(destination.when, roots=frozenset({"event"}))
            except ExpressionInvalid as exc:
                problems.append(((*where, "when"), f"{exc} (a condition on the event only)"))
    return problems


# A fence wider than a town is a slip of units (kilometres for metres).
MAX_SHOP_RADIUS_M = 50_000


def shop_problems(settings: Settings) -> list[tuple[SettingPath, str]]:
    """Each site's shops: a point on the Earth, a radius, opening hours that parse, a
    zone that exists, and hotspots that name one shop each."""
    from zoneinfo import available_timezones

    from rules.opening_hours import parse_opening_hours
    from rules.runtime import ANY_SHOP

    problems: list[tuple[SettingPath, str]] = []
    for site_id, site in settings.sites.items():
        hotspot_of: dict[str, str] = {}
        for shop_id, shop in site.shops.items():
            where = ("sites", site_id, "shops", shop_id)
            problems += _name_problems(where, "rules name it, as near(\"<id>\")")
            if shop_id == ANY_SHOP:
                problems.append((where, f"{ANY_SHOP!r} is not a shop id: near(\"any\") means "
                                        "any shop"))
            if not -90 <= shop.latitude <= 90:
                problems.append(((*where, "latitude"), "must be a latitude, -90 to 90 degrees"))
            if not -180 <= shop.longitude <= 180:
                problems.append(((*where, "longitude"),
                                 "must be a longitude, -180 to 180 degrees"))
            if not 0 < shop.radius <= MAX_SHOP_RADIUS_M:
                problems.append(((*where, "radius"), "must be more than 0 metres and at most "
                                                     f"{MAX_SHOP_RADIUS_M:,}"))
            if shop.timezone and shop.timezone not in available_timezones():
                problems.append(((*where, "timezone"),
                                 f"unknown time zone {shop.timezone!r}: expected an IANA "
                                 "name such as Europe/Prague"))
            if not shop.hours:
                problems.append(((*where, "hours"), 'needs the opening hours, e.g. '
                                                    'mon-fri: "09:00-18:00"'))
            for key, message in parse_opening_hours(shop.hours)[1]:
                problems.append(((*where, "hours", key), message))
            for index, hotspot in enumerate(shop.hotspots):
                if not hotspot.strip():
                    problems.append(((*where, "hotspots", index), "must not be empty"))
                elif hotspot in hotspot_of:
                    problems.append(((*where, "hotspots", index),
                                     f"{hotspot!r} is already a hotspot of {hotspot_of[hotspot]!r}"))
                hotspot_of.setdefault(hotspot, shop_id)
    return problems


def _name_problems(where: SettingPath, why: str) -> list[tuple[SettingPath, str]]:
    name = str(where[-1])
    if name and all(c.isalnum() or c in "-_" for c in name):
        return []
    return [(where, f"a name of letters, digits, - and _ ({why})")]


def _signed_endpoint_problems(where: SettingPath,
                              endpoint: "WebhookEndpoint | DestinationSettings",
                              environ: Mapping[str, str]) -> list[tuple[SettingPath, str]]:
    """A URL that requests are POSTed to, signed (Standard Webhooks) under the secrets
    its `secret_env` and `previous_secret_env` name."""
    problems: list[tuple[SettingPath, str]] = []
    if not endpoint.url.startswith(("https://", "http://")):
        problems.append(((*where, "url"), "must be an http(s) URL"))
    for field in ("secret_env", "previous_secret_env"):
        variable = getattr(endpoint, field)
        if not variable:
            continue
        secret = environ.get(variable)
        if not secret:
            problems.append(((*where, field), f"the environment variable {variable} is not set"))
        elif not _webhook_secret_ok(secret):
            problems.append(((*where, field), f"{variable} must hold whsec_ and base64 "
                                              "(at least 24 bytes)"))
    return problems


AUDIENCE_FORMATS = ("google", "meta")


def audience_problems(settings: Settings, environ: Mapping[str, str]
                      ) -> list[tuple[SettingPath, str]]:
    problems: list[tuple[SettingPath, str]] = []
    for name, audience in settings.audiences.items():
        where = ("audiences", name)
        problems += _name_problems(where, "it names files")
        if audience.format not in AUDIENCE_FORMATS:
            problems.append(((*where, "format"), "must be google or meta"))
        if audience.site and audience.site not in settings.sites:
            problems.append(((*where, "site"), f"unknown site {audience.site!r}"))
        for index, consent_name in enumerate(audience.consent):
            if consent_name not in CONSENT_NAMES:
                problems.append(((*where, "consent", index),
                                 f"unknown purpose or channel {consent_name!r}; expected one "
                                 f"of: {', '.join(CONSENT_NAMES)}"))
        if audience.every_s < 0:
            problems.append(((*where, "every_s"), "must not be negative"))
        if audience.timeout_ms <= 0:
            problems.append(((*where, "timeout_ms"), "must be positive"))
        if audience.to not in ("file", "api"):
            problems.append(((*where, "to"), "must be file or api"))
        if audience.to != "api":
            continue
        if not audience.audience_id:
            problems.append(((*where, "audience_id"), "is required to send to the platform"))
        if audience.format == "google" and not audience.account_id:
            problems.append(((*where, "account_id"), "is required to send to Google"))
        if audience.base_url and not audience.base_url.startswith(("https://", "http://")):
            problems.append(((*where, "base_url"), "must be an http(s) URL"))
        if not audience.token_env:
            problems.append(((*where, "token_env"), "must name the environment variable that "
                                                    "holds the access token"))
        elif not environ.get(audience.token_env):
            problems.append(((*where, "token_env"),
                             f"the environment variable {audience.token_env} is not set"))
    return problems


def delivery_problems(settings: Settings, environ: Mapping[str, str]
                      ) -> list[tuple[SettingPath, str]]:
    """The delivery section's checks, the environment's secrets included: a connector
    whose secret is missing is reported at load, not at its first send."""
    problems: list[tuple[SettingPath, str]] = []
    delivery = settings.delivery
    for name in ("visibility_ms", "lease_ms", "batch", "max_attempts", "backoff_ms",
                 "max_backoff_ms", "ledger_days", "short_link_days"):
        if getattr(delivery, name) <= 0:
            problems.append((("delivery", name), "must be positive"))
    if delivery.public_url and (not delivery.public_url.startswith(("https://", "http://"))
                                or delivery.public_url.endswith("/")):
        problems.append((("delivery", "public_url"), "must look like https://host[:port]"))
    email = delivery.email
    if email is not None:
        if email.security not in ("none", "starttls", "tls"):
            problems.append((("delivery", "email", "security"), "must be none, starttls or tls"))
        if not 0 < email.port < 65536:
            problems.append((("delivery", "email", "port"), "must be a TCP port (1-65535)"))
        if email.pool <= 0:
            problems.append((("delivery", "email", "pool"), "must be positive"))
        for field in ("username_env", "password_env"):
            variable = getattr(email, field)
            if variable and not environ.get(variable):
                problems.append((("delivery", "email", field),
                                 f"the environment variable {variable} is not set"))
        for site_id, site in settings.sites.items():
            if site.email_from and "@" not in site.email_from:
                problems.append((("sites", site_id, "email_from"),
                                 "must be an address, e.g. Shop <shop@example.com>"))
    hooks = delivery.webhooks
    if hooks.concurrency <= 0:
        problems.append((("delivery", "webhooks", "concurrency"), "must be positive"))
    for name, endpoint in hooks.endpoints.items():
        where = ("delivery", "webhooks", "endpoints", name)
        problems += _signed_endpoint_problems(where, endpoint, environ)
    sms = delivery.sms
    if sms is not None:
        where = ("delivery", "sms")
        problems += _provider_problems(where, sms, environ, required=("account_sid_env",
                                                                      "auth_token_env"))
        if not sms.sender and not sms.messaging_service_sid:
            problems.append(((*where, "sender"), "a sender (or messaging_service_sid) is required"))
        if sms.status_callback_url and not sms.status_callback_url.startswith(
                ("https://", "http://")):
            problems.append(((*where, "status_callback_url"), "must be an http(s) URL"))
    whatsapp = delivery.whatsapp
    if whatsapp is not None:
        where = ("delivery", "whatsapp")
        problems += _provider_problems(where, whatsapp, environ, required=("access_token_env",),
                                       optional=("app_secret_env", "verify_token_env"))
        for field in ("phone_number_id", "template", "language", "api_version"):
            if not getattr(whatsapp, field):
                problems.append(((*where, field), "is required"))
    if delivery.push is not None:
        problems += _push_problems(settings, delivery.push, environ)
    return problems


def _push_problems(settings: Settings, push: WebPushSettings, environ: Mapping[str, str]
                   ) -> list[tuple[SettingPath, str]]:
    """The push section, and that every site's public key is the private key's."""
    where = ("delivery", "push")
    problems: list[tuple[SettingPath, str]] = []
    if not push.subject.startswith(("mailto:", "https://")):
        problems.append(((*where, "subject"), "must be a mailto: or https: URL naming who "
                                              "sends (push services write to it)"))
    if push.urgency not in ("very-low", "low", "normal", "high"):
        problems.append(((*where, "urgency"), "must be very-low, low, normal or high"))
    if push.ttl_s < 0:
        problems.append(((*where, "ttl_s"), "must not be negative"))
    for name in ("concurrency", "timeout_ms"):
        if getattr(push, name) <= 0:
            problems.append(((*where, name), "must be positive"))
    if push.ca_file and not Path(push.ca_file).is_file():
        problems.append(((*where, "ca_file"), f"{push.ca_file} is not a file"))
    if not push.push_hosts:
        problems.append(((*where, "push_hosts"), "must list at least one push service"))
    if not push.private_key_env:
        problems.append(((*where, "private_key_env"), "must name the environment variable "
                                                      "that holds it"))
        return problems
    text = environ.get(push.private_key_env)
    if not text:
        problems.append(((*where, "private_key_env"),
                         f"the environment variable {push.private_key_env} is not set"))
        return problems
    from edge.runtime.vapid import load_vapid, public_key_text  # only where push is set

    try:
        public = public_key_text(load_vapid(text))
    except (ValueError, TypeError, binascii.Error):
        problems.append(((*where, "private_key_env"), f"{push.private_key_env} must hold a "
                                                      "P-256 key: base64url of 32 bytes, or PEM"))
        return problems
    for site_id, site in settings.sites.items():
        if site.vapid_public_key and site.vapid_public_key != public:
            problems.append((("sites", site_id, "vapid_public_key"),
                             f"is not the public key of {push.private_key_env}'s key "
                             f"({public})"))
    return problems


def _provider_problems(where: SettingPath, section: SmsSettings | WhatsAppSettings,
                       environ: Mapping[str, str], required: tuple[str, ...],
                       optional: tuple[str, ...] = ()) -> list[tuple[SettingPath, str]]:
    """What the SMS and WhatsApp sections share: the URL, the limits, the region and the
    environment variables holding the credentials."""
    import phonenumbers  # only where SMS or WhatsApp is configured

    problems: list[tuple[SettingPath, str]] = []
    if not section.base_url.startswith(("https://", "http://")):
        problems.append(((*where, "base_url"), "must be an http(s) URL"))
    for name in ("concurrency", "timeout_ms"):
        if getattr(section, name) <= 0:
            problems.append(((*where, name), "must be positive"))
    if section.rate_per_s < 0:
        problems.append(((*where, "rate_per_s"), "must not be negative"))
    if section.default_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        problems.append(((*where, "default_region"),
                         f"unknown region {section.default_region!r}: expected a country code "
                         "such as CZ"))
    for field in (*required, *optional):
        variable = getattr(section, field)
        if not variable:
            if field in required:
                problems.append(((*where, field), "must name the environment variable that "
                                                  "holds it"))
        elif not environ.get(variable):
            problems.append(((*where, field), f"the environment variable {variable} is not set"))
    return problems


def _webhook_secret_ok(secret: str) -> bool:
    body = secret.removeprefix("whsec_")
    try:
        return len(base64.b64decode(body + "=" * (-len(body) % 4), validate=True)) >= 24
    except (binascii.Error, ValueError):
        return False
