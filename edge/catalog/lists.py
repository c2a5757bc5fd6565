"""Catalog data for rules and content: fetched only when a condition or a winning
template names it.

recent_products: the products the person viewed last, with current prices;
cross_sell: products most often bought together with what is in the cart (for a
journey's message, else with the order its run began with);
upsell: same category as the last viewed product, a higher price tier, in stock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rules.names import CATALOG_LISTS

CATALOG_NAMES = frozenset(CATALOG_LISTS)
SHOWN = 4  # products per list: what a slot or message has room for


async def catalog_variables(catalog: Any, profile: dict[str, Any], needed: set[str],
                            bought: Sequence[str] = ()) -> dict[str, Any]:
    """`bought`: what cross-sell starts from when the cart is empty (the order a
    journey's run began with)."""
    found: dict[str, Any] = {}
    recent = profile["recent_products"]
    if "recent_products" in needed:
        products = await catalog.get(recent[:SHOWN])
        found["recent_products"] = [product_view(p) for p in products if p is not None]
    if "cross_sell" in needed:
        cart_ids = [item["product_id"] for item in profile["cart"].get("items", [])
                    if isinstance(item, dict) and item.get("product_id")]
        basis = cart_ids or list(bought)
        products = await catalog.cross_sell(basis, SHOWN) if basis else []
        found["cross_sell"] = [product_view(p) for p in products]
    if "upsell" in needed:
        products = await catalog.upsell(recent[0], SHOWN) if recent else []
        found["upsell"] = [product_view(p) for p in products]
    return found


def product_view(product: Any) -> dict[str, Any]:
    """A product as templates see it: plain values, the price to pay now as `price`
    (the sale price when there is one) and the list price as `list_price`."""
    data = product.to_dict()
    data["list_price"] = data["price"]
    data["price"] = data["effective_price"]
    return data
