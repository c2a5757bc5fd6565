"""A realistic, deterministic rule corpus with matching events and profiles.

Used by bench.rules (decide() speed) and by the HTTP benchmark.  Everything
is derived from a seed, so runs are comparable across machines and commits.

    make_corpus(n_rules, seed) -> [(document name, YAML text), ...]
    make_events(n, seed)       -> normalized events
    make_profile(rng)          -> a stored profile as the edge passes it to decide()
    make_context(rng, event)   -> request context
    make_inputs(n, seed)       -> [(event, profile, context, now_ms), ...]
"""

from __future__ import annotations

import random

import yaml

from rules.arbitration import Person
from rules.localtime import WEEKDAYS

BASE_NOW_MS = 1_700_000_000_000
DAY_MS = 86_400_000
RULES_PER_DOCUMENT = 50

CATEGORIES = ["shoes", "jackets", "shirts", "bags", "watches", "outdoor", "kids", "sale"]
PLANS = ["free", "plus", "pro", "business"]
COUNTRIES = ["CZ", "DE", "US", "GB", "FR", "PL", "SK", "AT"]
TIMEZONES = [
    "Europe/Prague",
    "Europe/Berlin",
    "America/New_York",
    "Europe/London",
    "Asia/Tokyo",
    None,
]
CAMPAIGNS = ["spring_sale", "newsletter", "retargeting", "brand", "black_friday"]
SECTIONS = ["products", "category", "blog", "account", "search", "checkout", "help"]
SLOTS = [
    "hero",
    "recs",
    "banner_top",
    "sidebar",
    "footer_offer",
    "cart_upsell",
    "pdp_badge",
    "category_hero",
    "search_promo",
    "exit_offer",
    "checkout_note",
    "app_home",
]
PAGE_SLUGS = ["trail-runner", "rain-jacket", "how-to-fit", "orders", "q"]
FIRST_NAMES = ["Jana", "Petr", "Anna", "Tom", "Eva", "Lukas", "Mia", "Noah", None]

# (id, definition) -- about thirty, the scale of a mid-size shop.
AGGREGATES: list[tuple[str, dict]] = [
    ("views_1h", {"count": "Product Viewed", "window": "60m"}),
    ("views_24h", {"count": "Product Viewed", "window": "1d"}),
    ("views_7d", {"count": "Product Viewed", "window": "7d"}),
    ("views_30d", {"count": "Product Viewed", "window": "30d"}),
    ("adds_1d", {"count": "Product Added", "window": "1d"}),
    ("adds_7d", {"count": "Product Added", "window": "7d"}),
    ("adds_30d", {"count": "Product Added", "window": "30d"}),
    ("orders_30d", {"count": "Order Completed", "window": "30d"}),
    ("orders_90d", {"count": "Order Completed", "window": "90d"}),
    ("orders_365d", {"count": "Order Completed", "window": "365d"}),
    ("spend_30d", {"sum": "Order Completed", "of": "properties.revenue", "window": "30d"}),
    ("spend_90d", {"sum": "Order Completed", "of": "properties.revenue", "window": "90d"}),
    ("spend_365d", {"sum": "Order Completed", "of": "properties.revenue", "window": "365d"}),
    ("pageviews_1h", {"count": "page", "window": "60m"}),
    ("pageviews_1d", {"count": "page", "window": "1d"}),
    ("pageviews_7d", {"count": "page", "window": "7d"}),
    ("categories_7d", {"distinct": "Product Viewed", "of": "properties.category", "window": "7d"}),
    (
        "categories_30d",
        {"distinct": "Product Viewed", "of": "properties.category", "window": "30d"},
    ),
    ("products_7d", {"distinct": "Product Viewed", "of": "properties.product_id", "window": "7d"}),
    ("last_category_30d", {"last": "Product Viewed", "of": "properties.category", "window": "30d"}),
    ("last_product_7d", {"last": "Product Viewed", "of": "properties.product_id", "window": "7d"}),
    ("last_search_1d", {"last": "Products Searched", "of": "properties.query", "window": "1d"}),
    ("searches_1d", {"count": "Products Searched", "window": "1d"}),
    ("searches_7d", {"count": "Products Searched", "window": "7d"}),
    (
        "shoe_views_1h",
        {
            "count": "Product Viewed",
            "where": 'event.properties.category == "shoes"',
            "window": "60m",
        },
    ),
    (
        "sale_views_7d",
        {"count": "Product Viewed", "where": "event.properties.on_sale == true", "window": "7d"},
    ),
    ("checkouts_7d", {"count": "Checkout Started", "window": "7d"}),
    ("signups_400d", {"count": "Signed Up", "window": "400d"}),
    ("screens_1d", {"count": "screen", "window": "1d"}),
    ("identifies_30d", {"count": "identify", "window": "30d"}),
    (
        "big_orders_90d",
        {"count": "Order Completed", "where": "event.properties.revenue > 200", "window": "90d"},
    ),
]
COUNT_AGGREGATES = [name for name, spec in AGGREGATES if "count" in spec or "distinct" in spec]
SUM_AGGREGATES = [name for name, spec in AGGREGATES if "sum" in spec]

SEGMENTS: list[tuple[str, str]] = [
    ("window_shopper", "aggregates.views_7d >= 5 and aggregates.orders_90d == 0"),
    ("big_spender", "aggregates.spend_365d > 1000"),
    ("new_visitor", "profile.visits <= 1"),
    ("returning", "profile.visits > 1 and days_since(profile.first_seen) > 1"),
    ("loyal", "aggregates.orders_365d >= 3"),
    ("cart_abandoner", "len(cart.items) > 0 and hours_since(cart.updated_at) > 1"),
    ("deal_hunter", "aggregates.sale_views_7d >= 3"),
    ("shoe_lover", 'aggregates.shoe_views_1h >= 2 or aggregates.last_category_30d == "shoes"'),
    ("mobile_user", 'context.device.type == "mobile"'),
    ("night_owl", "local.hour >= 22 or local.hour < 5"),
    ("weekend_browser", 'local.weekday in ["sat", "sun"]'),
    ("high_intent", "aggregates.adds_1d >= 1 and aggregates.checkouts_7d >= 1"),
    ("lapsed_customer", "aggregates.orders_365d > 0 and aggregates.orders_90d == 0"),
    ("researcher", "aggregates.categories_30d >= 4 or aggregates.searches_7d >= 5"),
    ("vip", '"vip" in profile.tags or traits.plan == "business"'),
    ("first_time_buyer", "aggregates.orders_365d == 1"),
    ("engaged_reader", 'aggregates.pageviews_7d >= 20 and context.page.path starts_with "/blog"'),
    ("app_user", 'context.channel == "app" or aggregates.screens_1d > 0'),
    ("bargain", "aggregates.spend_90d > 0 and aggregates.spend_90d < 50"),
    ("category_explorer", "aggregates.products_7d >= 10"),
]
SEGMENT_IDS = [segment_id for segment_id, _ in SEGMENTS]

# Trigger and its share of rules: pages dominate, as on a real storefront.
TRIGGER_WEIGHTS: list[tuple[object, int]] = [
    ("page", 40),
    ("Product Viewed", 18),
    ("Product Added", 10),
    ("Order Completed", 7),
    ("identify", 7),
    ("Checkout Started", 5),
    ("Products Searched", 4),
    ("screen", 4),
    ("any", 3),
    (["page", "screen"], 2),
]


def _clause(rng: random.Random, trigger: object) -> str:
    """One condition typical of a personalization rule."""
    choice = rng.randrange(22)
    if choice == 0:
        return f'traits.plan == "{rng.choice(PLANS)}"'
    if choice == 1:
        return f'traits.plan in ["{rng.choice(PLANS)}", "{rng.choice(PLANS)}"]'
    if choice == 2:
        return f'context.location.country == "{rng.choice(COUNTRIES)}"'
    if choice == 3:
        return f"aggregates.{rng.choice(COUNT_AGGREGATES)} >= {rng.randint(1, 8)}"
    if choice == 4:
        return f"aggregates.{rng.choice(SUM_AGGREGATES)} > {rng.choice([0, 50, 100, 250, 500])}"
    if choice == 5:
        return f"cart.value > {rng.choice([20, 50, 75, 100, 200])}"
    if choice == 6:
        return f"len(cart.items) >= {rng.randint(1, 3)}"
    if choice == 7:
        return f'context.page.path starts_with "/{rng.choice(SECTIONS)}"'
    if choice == 8:
        return f'context.page.path == "/{rng.choice(["cart", "", "checkout", "account", "sale"])}"'
    if choice == 9:
        return f"local.hour {rng.choice(['>=', '<'])} {rng.randint(6, 22)}"
    if choice == 10:
        return f'"{rng.choice(SEGMENT_IDS)}" in segments'
    if choice == 11:
        return f'"{rng.choice(SEGMENT_IDS)}" not in segments'
    if choice == 12:
        return f'context.device.type == "{rng.choice(["mobile", "desktop", "tablet"])}"'
    if choice == 13:
        return f"days_since(profile.first_seen) > {rng.choice([1, 7, 30, 90])}"
    if choice == 14:
        return f"profile.visits {rng.choice(['<=', '>'])} {rng.randint(1, 10)}"
    if choice == 15:
        if trigger in ("Product Viewed", "Product Added"):
            return f'event.properties.category == "{rng.choice(CATEGORIES)}"'
        return f'traits.country == "{rng.choice(COUNTRIES)}"'
    if choice == 16:
        if trigger in ("Product Viewed", "Product Added"):
            return f"event.properties.price > {rng.choice([25, 50, 100, 200])}"
        return f'context.utm.campaign == "{rng.choice(CAMPAIGNS)}"'
    if choice == 17:
        return f'"{rng.choice(["vip", "beta", "newsletter", "staff"])}" in profile.tags'
    if choice == 18:
        return 'lower(traits.email) ends_with "@example.com"'
    if choice == 19:
        if trigger == "Order Completed":
            return f"event.properties.revenue > {rng.choice([50, 100, 200])}"
        return f'aggregates.last_category_30d == "{rng.choice(CATEGORIES)}"'
    if choice == 20:
        return f'context.page.path matches "^/{rng.choice(SECTIONS)}/[a-z0-9-]+$"'
    return f'"{rng.choice(SEGMENT_IDS)}" in profile.segments'


def _condition(rng: random.Random, trigger: object) -> str | None:
    count = rng.choices([0, 1, 2, 3], weights=[5, 35, 40, 20])[0]
    if count == 0:
        return None
    clauses = [_clause(rng, trigger) for _ in range(count)]
    if count == 3 and rng.random() < 0.3:
        return f"{clauses[0]} and ({clauses[1]} or {clauses[2]})"
    return " and ".join(clauses)


def _action(rng: random.Random, trigger: object, index: int) -> dict:
    choice = rng.choices(
        ["html", "json", "message", "push", "set_trait", "tag"], weights=[45, 15, 15, 8, 8, 9]
    )[0]
    if choice == "html":
        greeting = rng.choice(
            [
                "<h2>Welcome back, {{ traits.first_name | default('friend') }}</h2>",
                "<p>Your cart: {{ cart['items'] | length }} items, {{ cart.value | money('EUR') }}</p>",
                '<div class="promo">Still thinking about {{ aggregates.last_category_30d }}?</div>',
                '<a href="/sale">Offer {{ index }} for {{ traits.plan }} members</a>',
                "<span>Free shipping over 50 EUR</span>",
            ]
        ).replace("{{ index }}", str(index))
        return {"slot": rng.choice(SLOTS), "html": greeting}
    if choice == "json":
        return {
            "slot": rng.choice(["recs", "sidebar", "cart_upsell"]),
            "json": {
                "products": "{{ profile.recent_products }}",
                "strategy": f"rule-{index}",
                "limit": rng.randint(3, 8),
            },
        }
    if choice == "message":
        return {
            "message": {
                "type": rng.choice(["banner", "modal", "toast"]),
                "title": "Hi {{ traits.first_name | default('there') }}",
                "body": f"Offer {index}: {rng.randint(5, 30)}% off today",
                "cta": {"label": "Shop now", "url": f"/sale?o={index}"},
            }
        }
    if choice == "push" and trigger not in (
        "screen",
        "identify",
        "Order Completed",
        "Checkout Started",
    ):
        choice = "tag"  # push notifications follow app and purchase events, not web page views
    if choice == "push":
        return {
            "push": {
                "title": "Your cart misses you",
                "body": "{{ cart['items'] | length }} items waiting",
                "link": "app://cart",
            }
        }
    if choice == "set_trait":
        return {"set_trait": {rng.choice(["engaged", "offer_seen", "nudged"]): True}}
    return {"tag": rng.choice(["returning", "offer-seen", "high-intent", "nudged"])}


def make_rules(n_rules: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    triggers, weights = zip(*TRIGGER_WEIGHTS, strict=False)
    rules = []
    for index in range(n_rules):
        trigger = rng.choices(triggers, weights=weights)[0]
        rule: dict = {"id": f"rule-{index:04d}", "on": trigger}
        condition = _condition(rng, trigger)
        if condition is not None:
            rule["when"] = condition
        rule["priority"] = rng.randint(0, 100)
        rule["actions"] = [
            _action(rng, trigger, index) for _ in range(rng.choices([1, 2], weights=[70, 30])[0])
        ]
        # What marketers add on top: caps on a third of the rules, an experiment
        # on a tenth, a score on a tenth, mutual-exclusion groups on some offers.
        if rng.random() < 0.33:
            rule["cap"] = {"max": rng.choice([1, 2, 3]), "per": rng.choice(["1d", "7d", "12h"])}
        if rng.random() < 0.10:
            rule["experiment"] = rng.choice([e["id"] for e in EXPERIMENTS])
        if rng.random() < 0.10:
            rule["score"] = "aggregates.views_7d + aggregates.pageviews_1d"
        if rng.random() < 0.15:
            rule["group"] = rng.choice(["offers", "onboarding", "cart"])
        rules.append(rule)
    return rules


EXPERIMENTS = [
    {"id": "hero-copy", "variants": {"a": 45, "b": 45}, "control": 10},
    {"id": "discount-depth", "variants": {"ten": 50, "fifteen": 40}, "control": 10},
    {"id": "global-holdout", "control": 5, "variants": {"treated": 95}},
]
POLICY = {
    "max_messages": 1,
    "caps": {"in_app": [{"max": 3, "per": "1d"}], "push": [{"max": 1, "per": "6h"}],
             "global": [{"max": 6, "per": "1d"}]},
    "quiet_hours": "22:00-07:00",
}


def make_corpus(n_rules: int, seed: int = 7) -> list[tuple[str, str]]:
    """Rule documents as (name, YAML text): aggregates, segments, then rules in files of 50."""
    documents = [
        ("aggregates.yaml", yaml.safe_dump({"aggregates": dict(AGGREGATES)}, sort_keys=False)),
        ("policy.yaml", yaml.safe_dump({"policy": POLICY, "experiments": EXPERIMENTS},
                                       sort_keys=False)),
        (
            "segments.yaml",
            yaml.safe_dump(
                {"segments": [{"id": i, "when": w} for i, w in SEGMENTS]}, sort_keys=False
            ),
        ),
    ]
    rules = make_rules(n_rules, seed)
    for start in range(0, len(rules), RULES_PER_DOCUMENT):
        chunk = rules[start : start + RULES_PER_DOCUMENT]
        name = f"rules-{start // RULES_PER_DOCUMENT:02d}.yaml"
        documents.append((name, yaml.safe_dump({"rules": chunk}, sort_keys=False, width=200)))
    return documents


# -- events, profiles, contexts ----------------------------------------------------
def _product(rng: random.Random) -> dict:
    category = rng.choice(CATEGORIES)
    product_id = f"p{rng.randint(1, 400)}"
    return {
        "product_id": product_id,
        "sku": f"SKU-{product_id[1:]:0>5}",
        "category": category,
        "name": f"{category.title()} {product_id}",
        "price": round(rng.uniform(9, 350), 2),
        "brand": rng.choice(["Acme", "Northwind", "Globex"]),
        "on_sale": rng.random() < 0.25,
    }


def make_event(rng: random.Random, now_ms: int) -> dict:
    kind = rng.choices(
        [
            "page",
            "Product Viewed",
            "Product Added",
            "Order Completed",
            "identify",
            "Products Searched",
            "Checkout Started",
            "screen",
            "Signed Up",
        ],
        weights=[45, 22, 8, 3, 6, 6, 4, 5, 1],
    )[0]
    event: dict = {
        "type": "track",
        "event": None,
        "name": None,
        "properties": {},
        "traits": {},
        "context": {},
        "timestamp": now_ms,
        "messageId": f"m-{rng.getrandbits(48):012x}",
        "userId": None,
        "anonymousId": f"a-{rng.getrandbits(32):08x}",
    }
    if kind == "page":
        section = rng.choice(SECTIONS + ["", "sale", "cart"])
        path = (
            f"/{section}"
            if section in ("", "sale", "cart")
            else f"/{section}/{rng.choice(PAGE_SLUGS)}"
        )
        event.update(
            type="page",
            name=section or "home",
            properties={
                "path": path,
                "url": f"https://shop.example{path}",
                "title": section.title(),
            },
        )
    elif kind == "screen":
        event.update(type="screen", name=rng.choice(["Home", "Cart", "Product"]))
    elif kind == "identify":
        event.update(
            type="identify",
            userId=f"u{rng.randint(1, 500)}",
            traits={"email": "jana@example.com", "plan": rng.choice(PLANS)},
        )
    elif kind in ("Product Viewed", "Product Added"):
        event.update(
            event=kind,
            properties=_product(rng)
            | ({"quantity": rng.randint(1, 3)} if kind == "Product Added" else {}),
        )
    elif kind == "Order Completed":
        revenue = round(rng.uniform(15, 600), 2)
        event.update(
            event=kind,
            properties={
                "order_id": f"o{rng.getrandbits(24)}",
                "revenue": revenue,
                "total": revenue,
                "currency": "EUR",
            },
        )
    elif kind == "Products Searched":
        event.update(
            event=kind,
            properties={"query": rng.choice(["running shoes", "jacket", "gift", "watch"])},
        )
    elif kind == "Checkout Started":
        event.update(event=kind, properties={"value": round(rng.uniform(20, 400), 2)})
    else:
        event.update(event=kind, properties={"method": "email"})
    return event


def make_events(n: int, seed: int = 11) -> list[dict]:
    rng = random.Random(seed)
    return [make_event(rng, BASE_NOW_MS + i * 1_000) for i in range(n)]


def make_profile(rng: random.Random, now_ms: int = BASE_NOW_MS) -> dict:
    first_seen = now_ms - rng.randint(0, 400) * DAY_MS - rng.randint(0, DAY_MS)
    cart_items = [
        {
            "product_id": p["product_id"],
            "quantity": rng.randint(1, 2),
            "price": p["price"],
            "name": p["name"],
            "category": p["category"],
        }
        for p in (_product(rng) for _ in range(rng.choice([0, 0, 1, 2, 3])))
    ]
    aggregates: dict = {}
    for name, spec in AGGREGATES:
        if rng.random() < 0.2:
            continue  # nothing recorded yet
        if "count" in spec or "distinct" in spec:
            aggregates[name] = rng.choice([0, 0, 1, 2, 3, 5, 8, 13, 25])
        elif "sum" in spec:
            aggregates[name] = rng.choice([0.0, 0.0, 35.5, 120.0, 480.9, 1250.0])
        else:
            aggregates[name] = rng.choice(CATEGORIES + [f"p{rng.randint(1, 400)}", None])
    return {
        "id": f"u{rng.randint(1, 10_000)}",
        "traits": {
            "first_name": rng.choice(FIRST_NAMES),
            "email": rng.choice(["jana@example.com", "tom@Example.COM", "eva@mail.test", None]),
            "plan": rng.choice(PLANS),
            "country": rng.choice(COUNTRIES),
        },
        "tags": rng.sample(["vip", "beta", "newsletter", "staff"], rng.randint(0, 2)),
        "segments": rng.sample(SEGMENT_IDS, rng.randint(0, 4)),
        "aggregates": aggregates,
        "cart": {
            "items": cart_items,
            "value": round(sum(item["price"] * item["quantity"] for item in cart_items), 2),
            "updated_at": now_ms - rng.randint(0, 5 * 3_600_000) if cart_items else None,
        },
        "recent_products": [f"p{rng.randint(1, 400)}" for _ in range(rng.randint(0, 8))],
        "recent_categories": rng.sample(CATEGORIES, rng.randint(0, 3)),
        "first_seen": first_seen,
        "last_seen": now_ms - rng.randint(0, 3 * DAY_MS),
        "visits": rng.choice([1, 1, 2, 3, 5, 8, 20]),
        "events": rng.randint(1, 500),
        "verified": rng.random() < 0.4,
    }


def make_context(rng: random.Random, event: dict) -> dict:
    path = (
        event["properties"].get("path")
        if event["type"] == "page"
        else rng.choice(["/products/trail-runner", "/", "/cart"])
    )
    channel = (
        "app"
        if event["type"] == "screen"
        else rng.choices(["web", "app", "server"], weights=[80, 15, 5])[0]
    )
    context = {
        "page": {
            "url": f"https://shop.example{path}",
            "path": path,
            "referrer": rng.choice(["", "https://www.google.com/", "https://news.example/"]),
            "title": "Shop",
            "search": "",
        },
        "device": {
            "type": rng.choices(["mobile", "desktop", "tablet", "bot"], weights=[55, 38, 6, 1])[0],
            "os": rng.choice(["iOS", "Android", "Windows", "macOS"]),
        },
        "location": {"country": rng.choice(COUNTRIES), "region": "", "city": ""},
        "timezone": rng.choice(TIMEZONES),
        "channel": channel,
        "site": "shop",
        "utm": {"campaign": rng.choice(CAMPAIGNS), "source": "newsletter"}
        if rng.random() < 0.3
        else {},
    }
    return context


def make_inputs(
    n: int, seed: int = 11, n_profiles: int = 200
) -> list[tuple[dict, dict, dict, int]]:
    """(event, profile, context, now_ms) tuples for decide(), a few events per profile."""
    rng = random.Random(seed)
    profiles = [make_profile(rng) for _ in range(n_profiles)]
    inputs = []
    for index in range(n):
        now_ms = BASE_NOW_MS + index * 1_000
        event = make_event(rng, now_ms)
        inputs.append((event, rng.choice(profiles), make_context(rng, event), now_ms))
    return inputs


def make_person(rng: random.Random, profile: dict, context: dict, now_ms: int) -> Person:
    """What arbitration reads about a person: mostly consenting, some delivery history."""
    deliveries: dict[str, list[int]] = {}
    for _ in range(rng.choice([0, 0, 1, 3, 6])):
        key = rng.choice([f"rule:rule-{rng.randint(0, 199):04d}", "channel:in_app",
                          "channel:push", "global"])
        deliveries.setdefault(key, []).append(now_ms - rng.randint(0, 3 * DAY_MS))
    marketing = rng.random() < 0.6
    consent = {"personalization": rng.random() < 0.97, "marketing": marketing, "web": True,
               "in_app": True, "push": marketing and rng.random() < 0.5, "email": marketing,
               "sms": False, "whatsapp": False}
    return Person(
        profile_id=profile["id"], now_ms=now_ms, weekday=rng.choice(WEEKDAYS),
        minute=rng.randint(0, 1439), consent=consent, deliveries=deliveries, variants={},
        reachable=frozenset({"web", "in_app", "push", "email"} if profile["traits"]["email"]
                            else {"web", "in_app"}),
    )


def make_full_inputs(n: int, seed: int = 11) -> list[tuple[tuple, Person]]:
    """make_inputs plus the person arbitration sees for each."""
    rng = random.Random(seed + 1)
    return [(item, make_person(rng, item[1], item[2], item[3]))
            for item in make_inputs(n, seed)]
