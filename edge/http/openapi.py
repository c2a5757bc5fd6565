"""The OpenAPI document, generated from the routing table and the wire schemas.

Built from the same list of routes the app mounts, so a route cannot exist
without being documented.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.routing import Route

from edge.catalog.products import Product
from edge.ingest.wire import Batch, Event

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "success": {"const": False},
        "error": {"type": "string"},
        "code": {"type": "string", "description": "the same as error: Segment's SDKs read code"},
        "message": {"type": "string", "description": "field and reason in one line, for "
                                                     "Segment's SDKs"},
        "field": {"type": "string", "description": "the offending field, as a path"},
        "reason": {"type": "string"},
    },
    "required": ["success", "error", "code", "message", "reason"],
}
DECISIONS_SCHEMA = {
    "type": "object",
    "properties": {
        "success": {"type": "boolean"},
        "duplicate": {"type": "boolean", "description": "the messageId was seen before"},
        "slots": {"type": "object", "additionalProperties": {"type": "object"}},
        "messages": {"type": "array", "items": {"type": "object"}},
        "push": {"type": "array", "items": {"type": "object"}},
        "segments": {"type": "array", "items": {"type": "string"}},
    },
}

def build(routes: list[Route], version: str) -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [Event, Batch, Product], ref_template="#/components/schemas/{name}")
    components["Error"] = ERROR_SCHEMA
    components["Decisions"] = DECISIONS_SCHEMA
    paths: dict[str, Any] = {}
    for route in routes:
        methods = sorted(m for m in (route.methods or ()) if m != "HEAD")
        for method in methods:
            op = _operation(route, method)
            paths.setdefault(route.path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Kairos Edge", "version": version,
                 "description": "Real-time personalization edge: Segment-compatible ingestion "
                                "answered with decisions."},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "writeKey": {"type": "http", "scheme": "basic",
                             "description": "The key as user name, empty password (Segment's way)."},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def _operation(route: Route, method: str) -> dict[str, Any]:
    doc = (route.endpoint.__doc__ or "").strip()
    op: dict[str, Any] = {
        "operationId": f"{method.lower()}_{route.name}",
        "summary": doc.splitlines()[0] if doc else route.name,
        "responses": {"200": {"description": "OK"}},
    }
    if route.path.startswith("/v1/") and method != "OPTIONS":
        op["security"] = [{"writeKey": []}, {"bearer": []}]
        op["responses"]["401"] = _error("missing or unknown key")
        op["responses"]["403"] = _error("the key may not do this")
    if method == "POST" and route.path.startswith("/v1/") and route.path != "/v1/admin/reload":
        schema = "Batch" if route.path in ("/v1/batch", "/v1/b") else "Event"
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}},
            "text/plain": {"schema": {"$ref": f"#/components/schemas/{schema}"}},
        }}
        op["responses"]["200"] = {"description": "accepted", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Decisions"}}}}
        op["responses"]["400"] = _error("bad input: the field and the reason")
        op["responses"]["413"] = _error("body too large")
        op["responses"]["503"] = _error("the profile store did not answer; retry after Retry-After")
    if route.path.startswith("/v1/profiles/"):
        op["parameters"] = [{"name": "profile_id", "in": "path", "required": True,
                             "schema": {"type": "string"},
                             "description": "profile id or identifier kind:value"}]
        op["responses"]["404"] = _error("no profile for this identifier")
        op["responses"]["503"] = _error("the profile store did not answer; retry after Retry-After")
    if route.path == "/v1/explain":
        _explain(op)
    if route.path.startswith("/v1/catalog/"):
        _catalog(route, method, op)
    if route.path == "/v1/admin/reload":
        op["responses"]["422"] = _error("the rules on disk are invalid; the running ones stay")
        op["responses"]["503"] = _error("Redis did not answer, so other workers were not told; "
                                        "retry after Retry-After")
    return op


def _explain(op: dict[str, Any]) -> None:
    request = {"type": "object", "required": ["profile", "event"], "properties": {
        "profile": {"type": "string", "description": "profile id or identifier kind:value"},
        "event": {"$ref": "#/components/schemas/Event"},
        "user_agent": {"type": "string", "description": "the person's browser"},
        "country": {"type": "string", "description": "the person's country code"}}}
    op["requestBody"] = {"required": True, "content": {"application/json": {"schema": request}}}
    op["responses"]["200"] = {
        "description": "segments, every triggered rule with each condition's value and its "
                       "arbitration outcome, the decision, consent, experiments and caps; "
                       "nothing is written",
        "content": {"application/json": {"schema": {"type": "object"}}}}
    op["responses"]["404"] = _error("no profile for this identifier (field `profile`)")


def _catalog(route: Route, method: str, op: dict[str, Any]) -> None:
    op["responses"]["503"] = _error("the catalog store did not answer; retry after Retry-After")
    if method == "PUT":
        products = {"type": "array", "items": {"$ref": "#/components/schemas/Product"}}
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
            "oneOf": [products, {"type": "object", "properties": {"products": products},
                                 "required": ["products"]}]}}}}
        op["responses"]["200"] = {"description": "written; rejected rows listed", "content": {
            "application/json": {"schema": {"type": "object", "properties": {
                "accepted": {"type": "integer"},
                "rejected": {"type": "array", "items": {"type": "object", "properties": {
                    "index": {"type": "integer"}, "field": {"type": "string"},
                    "reason": {"type": "string"}}}},
                "price_drops": {"type": "array", "items": {"type": "string"}},
                "back_in_stock": {"type": "array", "items": {"type": "string"}},
            }}}}}
        op["responses"]["400"] = _error("the body is not a list of products")
        op["responses"]["413"] = _error("body too large")
    else:
        op["parameters"] = [{"name": "product_id", "in": "path", "required": True,
                             "schema": {"type": "string"}, "description": "the product's id"}]
        op["responses"]["404"] = _error("no product with this id")
        if method == "GET":
            op["responses"]["200"] = {"description": "the product", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Product"}}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
