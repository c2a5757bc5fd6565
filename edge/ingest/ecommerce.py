"""Segment's e-commerce events and what they change on a profile.

The names follow Segment's E-commerce v2 spec, which SDKs and shops already send:
"Product Viewed" feeds recently viewed products and categories, "Product Added"
and "Product Removed" edit the cart, "Order Completed" empties it and counts its
products as bought together (for the catalog's cross-sell).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from edge.ingest.wire import InputError
from rules.event_names import ECOMMERCE_EVENTS

PRODUCT_VIEWED = "Product Viewed"
PRODUCT_ADDED = "Product Added"
PRODUCT_REMOVED = "Product Removed"
ORDER_COMPLETED = "Order Completed"
CART_CLEARED = "Cart Cleared"

# Segment's Track spec reserves `revenue` and `value` as numbers on every track call;
# the e-commerce spec adds these on its own events (and price and quantity on each of
# an order's products). Text there ("12abc", "12.50") would be summed as something it
# is not, so it is refused rather than guessed at.
TRACK_AMOUNTS = ("revenue", "value")
ECOMMERCE_AMOUNTS = ("total", "subtotal", "shipping", "tax", "discount", "price", "quantity")
PRODUCT_AMOUNTS = ("price", "quantity")

ITEM_FIELDS = ("name", "price", "currency", "category", "brand", "url", "image_url", "variant")


@dataclass(slots=True, frozen=True)
class CartChange:
    op: str  # "add" | "remove" | "clear"
    product_id: str = ""
    item_json: bytes = b""
    quantity: int = 1


def amount_problem(value: Any, bound: float) -> str | None:
    """Why `value` cannot be one of the spec's amounts; None when it can (or is absent)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a number (Segment's spec), not " + (
            "text" if isinstance(value, str) else type(value).__name__)
    if not -bound <= value <= bound:
        return f"must be within ±{bound:g} (limits.max_amount)"
    return None


def check_amounts(event_name: str, properties: dict[str, Any], path: str, bound: float) -> None:
    """Raises InputError naming the first of the spec's amounts that is not a bounded number."""
    fields = TRACK_AMOUNTS + ECOMMERCE_AMOUNTS if event_name in ECOMMERCE_EVENTS else TRACK_AMOUNTS
    for key in fields:
        problem = amount_problem(properties.get(key), bound)
        if problem is not None:
            raise InputError(f"{path}.{key}", problem)
    products = properties.get("products") if event_name in ECOMMERCE_EVENTS else None
    if isinstance(products, list):
        for index, item in enumerate(products):
            if not isinstance(item, dict):
                continue
            for key in PRODUCT_AMOUNTS:
                problem = amount_problem(item.get(key), bound)
                if problem is not None:
                    raise InputError(f"{path}.products[{index}].{key}", problem)


def product_id_of(properties: dict[str, Any]) -> str:
    for key in ("product_id", "sku", "id"):
        value = properties.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return str(value)
    return ""


def _quantity(properties: dict[str, Any]) -> int:
    value = properties.get("quantity", 1)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 1
    return max(1, min(int(value), 10_000))


@dataclass(slots=True, frozen=True)
class ShopChange:
    """What one e-commerce event changes: recently viewed, the cart, an order's products."""
    product: str = ""
    category: str = ""
    cart: CartChange | None = None
    purchased: tuple[str, ...] = ()


NO_CHANGE = ShopChange()


def shop_change(event_name: str, properties: dict[str, Any]) -> ShopChange:
    if event_name == PRODUCT_VIEWED:
        category = properties.get("category")
        return ShopChange(product=product_id_of(properties),
                          category=category if isinstance(category, str) else "")
    if event_name == PRODUCT_ADDED:
        product_id = product_id_of(properties)
        if product_id:
            item = {key: properties[key] for key in ITEM_FIELDS if key in properties}
            item["product_id"] = product_id
            return ShopChange(cart=CartChange("add", product_id, orjson.dumps(item),
                                              _quantity(properties)))
    elif event_name == PRODUCT_REMOVED:
        product_id = product_id_of(properties)
        if product_id:
            return ShopChange(cart=CartChange("remove", product_id, b"", _quantity(properties)))
    elif event_name == CART_CLEARED:
        return ShopChange(cart=CartChange("clear"))
    elif event_name == ORDER_COMPLETED:
        return ShopChange(cart=CartChange("clear"),
                          purchased=tuple(ordered_products(properties.get("products"))))
    return NO_CHANGE


def ordered_products(products: Any) -> list[str]:
    """Product ids of an order's `products` list, without repeats."""
    if not isinstance(products, list):
        return []
    found = (product_id_of(item) for item in products if isinstance(item, dict))
    return list(dict.fromkeys(product_id for product_id in found if product_id))
