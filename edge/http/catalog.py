"""The product catalog: upsert (scope catalog:write), read (catalog:read or catalog:write), delete.

`PUT /v1/catalog/products` is per row, not all-or-nothing: a feed of a
thousand products with one bad price should not keep the other 999 at
yesterday's prices. Valid products are written, the rest are listed with their
index, field and reason; only a body that is not a list of products at all is
refused whole (400). Failures (no scope, a bad id, Redis down) are answered by
edge/http/errors.py.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from edge.catalog.products import MAX_ID_LENGTH, Product, validate_product
from edge.http.common import (check_json_content_type, header_map, json_response, read_body,
                              require_scope)
from edge.http.errors import error_response
from edge.http.state import EdgeState
from edge.ingest.wire import InputError, any_decoder

# A product is a few hundred bytes to a few KB; one request may carry a feed
# page much larger than an event batch, but the catalog CLI is for whole feeds.
MAX_PRODUCTS_PER_REQUEST = 1000
BODY_LIMIT_FACTOR = 4


def _authorize(request: Request, state: EdgeState, *scopes: str) -> None:
    caller = state.keyring.authenticate(request.headers.get("authorization"))
    if not caller.is_public and any(caller.may(scope) for scope in scopes):
        return
    require_scope(caller, scopes[0])  # raises with the reason


def _products_in(body: Any) -> list[Any]:
    if isinstance(body, dict):
        if set(body) != {"products"}:
            raise InputError("body", 'expected a list of products or {"products": [...]}')
        body = body["products"]
        field = "products"
    else:
        field = "body"
    if not isinstance(body, list):
        raise InputError(field, "expected a list of products")
    if len(body) > MAX_PRODUCTS_PER_REQUEST:
        raise InputError(field, f"more than {MAX_PRODUCTS_PER_REQUEST} products; send pages")
    return body


def _product_id(request: Request) -> str:
    product_id = request.path_params["product_id"]
    if len(product_id) > MAX_ID_LENGTH:
        raise InputError("id", f"longer than {MAX_ID_LENGTH} characters")
    return product_id


async def put_products(request: Request) -> Response:
    """Upsert products: a JSON list or {"products": [...]}; bad rows are listed, the rest written."""
    state: EdgeState = request.app.state.edge
    headers = header_map(request)
    _authorize(request, state, "catalog:write")
    check_json_content_type(headers)
    body = await read_body(request, headers, BODY_LIMIT_FACTOR * state.settings.limits.max_body_bytes,
                           state.settings.limits.max_depth)
    items = _products_in(any_decoder.decode(body))
    products: list[Product] = []
    rejected: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            products.append(validate_product(item, f"products[{index}]"))
        except InputError as exc:
            rejected.append({"index": index, "field": exc.field, "reason": exc.reason})
    result = await state.catalog.put(products)
    return json_response({"accepted": result.written, "rejected": rejected,
                          "price_drops": result.price_drops,
                          "back_in_stock": result.back_in_stock})


async def get_product(request: Request) -> Response:
    """One product with its current effective price."""
    state: EdgeState = request.app.state.edge
    _authorize(request, state, "catalog:read", "catalog:write")
    (product,) = await state.catalog.get([_product_id(request)])
    if product is None:
        return error_response(404, "not_found", "no product with this id", field="id")
    return json_response(product.to_dict())


async def delete_product(request: Request) -> Response:
    """Remove a product from the catalog."""
    state: EdgeState = request.app.state.edge
    _authorize(request, state, "catalog:write")
    product_id = _product_id(request)
    deleted = await state.catalog.delete(product_id)
    if not deleted:
        return error_response(404, "not_found", "no product with this id", field="id")
    return json_response({"deleted": True, "id": product_id})
