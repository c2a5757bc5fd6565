"""The OpenAPI document, generated from the routing table and the wire schemas.

Built from the same list of routes the app mounts, so a route cannot exist
without being documented.
"""

from __future__ import annotations

import re
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
            paths.setdefault(documented_path(route.path), {})[method.lower()] = op
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


# Starlette's `{name:path}` is OpenAPI's `{name}` (a path parameter may hold slashes).
_PARAMETER = re.compile(r"\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}")
PARAMETER_DESCRIPTIONS = {"profile_id": "profile id or identifier kind:value",
                          "product_id": "the product's id", "path": "the rest of the path",
                          "journey_id": "the journey's id"}


def documented_path(path: str) -> str:
    return _PARAMETER.sub(lambda m: "{" + m["name"] + "}", path)


def _operation(route: Route, method: str) -> dict[str, Any]:
    doc = (route.endpoint.__doc__ or "").strip()
    op: dict[str, Any] = {
        "operationId": f"{method.lower()}_{route.name}",
        "summary": doc.splitlines()[0] if doc else route.name,
        "responses": {"200": {"description": "OK"}},
    }
    names = [m["name"] for m in _PARAMETER.finditer(route.path)]
    if names:
        op["parameters"] = [{"name": name, "in": "path", "required": True,
                             "schema": {"type": "string", "minLength": 1},
                             "description": PARAMETER_DESCRIPTIONS.get(name, name)}
                            for name in names]
    if route.name in OWN_DOCUMENTATION:
        OWN_DOCUMENTATION[route.name](op)
        return op
    if route.path.startswith("/v1/") and method != "OPTIONS":
        op["security"] = [{"writeKey": []}, {"bearer": []}]
        op["responses"]["401"] = _error("missing or unknown key")
        op["responses"]["403"] = _error("the key may not do this")
    if route.path.startswith("/v1/journeys"):
        _journeys(route, op)
        return op
    if method == "POST" and route.path.startswith("/v1/") and route.path != "/v1/admin/reload":
        schema = _ingest_schema(route.path)
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": schema}, "text/plain": {"schema": schema}}}
        op["responses"]["200"] = {"description": "accepted", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Decisions"}}}}
        op["responses"]["400"] = _error("bad input: the field and the reason")
        op["responses"]["413"] = _error("body too large")
        op["responses"]["503"] = _error("the profile store did not answer; retry after Retry-After")
    if route.path.startswith("/v1/profiles/"):
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


# What each event type needs beside a person (userId or anonymousId), as normalize checks.
REQUIRED_BY_TYPE = {"track": ["event"], "alias": ["previousId", "userId"], "group": ["groupId"],
                    "page": [], "screen": [], "identify": []}
A_PERSON = {"anyOf": [{"required": ["userId"]}, {"required": ["anonymousId"]}]}


def _ingest_schema(path: str) -> dict[str, Any]:
    event = {"$ref": "#/components/schemas/Event"}
    kind = path.removeprefix("/v1/")
    if kind in REQUIRED_BY_TYPE:
        return {"allOf": [event, A_PERSON, {"required": REQUIRED_BY_TYPE[kind]}]}
    # An event of the type its body names (/v1/e, and each event of a batch).
    typed = {"allOf": [event, A_PERSON, {"required": ["type"]}]}
    if kind == "e":
        return typed
    return {"allOf": [{"$ref": "#/components/schemas/Batch"},
                      {"required": ["batch"],
                       "properties": {"batch": {"type": "array", "minItems": 1, "items": typed}}}]}


def _preflight(op: dict[str, Any]) -> None:
    op["responses"] = {"204": {"description": "the origin may post to the ingest routes"},
                       "403": _error("the origin is not among any site's origins"),
                       "404": _error("no such path")}


def _push_key(op: dict[str, Any]) -> None:
    # The service worker fetches it with the write key in the query: it sends no header.
    op["parameters"] = [{"name": "writeKey", "in": "query", "required": True,
                         "schema": {"type": "string"}, "description": "the site's public write key"}]
    op["responses"] = {
        "200": {"description": "the site's VAPID public key (public information)", "content": {
            "application/json": {"schema": {"type": "object", "required": ["vapidPublicKey"],
                                            "properties": {"vapidPublicKey": {"type": "string"}}}}}},
        "401": _error("unknown write key (field `writeKey`)"),
        "404": _error("this site does not use Web Push")}


def _script(op: dict[str, Any]) -> None:
    op["responses"] = {"200": {"description": "the script", "content": {"text/javascript": {}}},
                       "304": {"description": "not modified (If-None-Match)"},
                       "404": _error("the snippet is not built")}


def _demo(op: dict[str, Any]) -> None:
    op["responses"] = {"200": {"description": "a page or file of the demo shop"},
                       "404": _error("no such file of the demo shop")}


def _demo_sign(op: dict[str, Any]) -> None:
    op["parameters"] = [{"name": "user_id", "in": "query", "required": True,
                         "schema": {"type": "string"}}]
    op["responses"] = {"200": {"description": "the demo user's hash", "content": {
        "application/json": {"schema": {"type": "object", "required": ["userHash"],
                                        "properties": {"userHash": {"type": "string"}}}}}},
        "400": _error("user_id is missing")}


def _readyz(op: dict[str, Any]) -> None:
    op["responses"] = {"200": {"description": "Redis answers and the rules are loaded"},
                       "503": {"description": "not ready: which check failed"}}


def _metrics(op: dict[str, Any]) -> None:
    op["security"] = [{"writeKey": []}, {"bearer": []}, {}]
    op["responses"] = {"200": {"description": "Prometheus text format",
                               "content": {"text/plain": {}}},
                       "401": _error("no key, with metrics.public off"),
                       "403": _error("the key lacks scope 'metrics', with metrics.public off")}


def _tracking(op: dict[str, Any]) -> None:
    op["parameters"][0]["description"] = "the signed token the sent message carries"
    op["responses"] = {"400": _error("the token is malformed or its signature does not match")}
    if op["operationId"] in ("get_short_click", "head_short_click"):
        op["parameters"][0]["description"] = "the code a text message's short link carries"
        op["responses"] = {"302": {"description": "to the destination of the click token "
                                                  "the code stands for"},
                           "400": _error("the stored token does not verify (field `code`)"),
                           "404": _error("no such code, or it has expired (field `code`)")}
        return
    if op["operationId"] in ("get_track_click", "head_track_click"):
        op["responses"]["302"] = {"description": "to the token's destination"}
    elif op["operationId"] == "get_track_open":
        op["responses"]["200"] = {"description": "a 1x1 image", "content": {"image/png": {}}}
    elif op["operationId"] == "get_preferences":
        op["responses"]["200"] = {"description": "the preference page", "content": {"text/html": {}}}
    else:
        op["requestBody"] = {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
                "List-Unsubscribe": {"type": "string", "enum": ["One-Click"]},
                "action": {"type": "string", "enum": ["unsubscribe", "preferences"]}}}}}}
        op["responses"]["200"] = {"description": "done", "content": {"text/html": {}}}
        op["responses"]["503"] = _error("the profile store did not answer; retry after Retry-After")


def _callback(op: dict[str, Any]) -> None:
    # Called by the SMS and WhatsApp providers, authenticated by their signatures alone.
    op["security"] = []
    op["responses"] = {"403": _error("the provider's signature is missing or does not match"),
                       "404": _error("this channel is not configured on this edge")}
    if op["operationId"] == "get_callback_whatsapp_verify":
        op["parameters"] = [{"name": name, "in": "query", "required": True,
                             "schema": {"type": "string"}, "description": description}
                            for name, description in (
                                ("hub.mode", "subscribe"),
                                ("hub.verify_token", "the verify token set up with Meta"),
                                ("hub.challenge", "what to answer"))]
        op["responses"]["200"] = {"description": "hub.challenge, as it came",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}
        op["responses"]["400"] = _error("hub.challenge is missing")
        return
    op["responses"]["400"] = _error("malformed body, or a required field missing")
    op["responses"]["413"] = _error("body too large")
    op["responses"]["503"] = _error("Redis did not answer; the provider retries")
    if op["operationId"] == "post_callback_sms":
        op["parameters"] = [{"name": "X-Twilio-Signature", "in": "header", "required": True,
                             "schema": {"type": "string"},
                             "description": "base64 HMAC-SHA1 of the URL and the sorted params"}]
        op["requestBody"] = {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
                name: {"type": "string"} for name in ("MessageSid", "MessageStatus",
                                                      "ErrorCode", "ErrorMessage")}}}}}
        op["responses"]["204"] = {"description": "taken (an unknown MessageSid is ignored)"}
        op["responses"]["415"] = _error("not form-encoded")
        return
    op["parameters"] = [{"name": "X-Hub-Signature-256", "in": "header", "required": True,
                         "schema": {"type": "string"},
                         "description": "sha256=<hex HMAC-SHA256 of the body>"}]
    op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["entry"],
        "properties": {"entry": {"type": "array", "items": {"type": "object"}}}}}}}
    op["responses"]["200"] = {"description": "taken", "content": {"application/json": {
        "schema": {"type": "object"}}}}


def _email_report(op: dict[str, Any]) -> None:
    op["security"] = [{"bearer": []}]
    op["requestBody"] = {"required": True, "content": {"message/rfc822": {"schema": {
        "type": "string", "description": "the report as it arrived: multipart/report with "
                                         "report-type feedback-report or delivery-status"}}}}
    op["responses"] = {
        "200": {"description": "read: what it reports, and whether a sent message matched",
                "content": {"application/json": {"schema": {
                    "type": "object", "required": ["kind", "message_id", "reason", "matched"],
                    "properties": {"kind": {"type": ["string", "null"],
                                            "enum": ["complaint", "bounce", None]},
                                   "message_id": {"type": ["string", "null"]},
                                   "reason": {"type": "string"},
                                   "matched": {"type": "boolean"}}}}}},
        "400": _error("not a feedback report or delivery status notification (field `body`)"),
        "401": _error("missing or unknown key"),
        "403": _error("the key lacks scope 'delivery:report'"),
        "413": _error("body too large"),
        "503": _error("Redis did not answer; retry after Retry-After")}


OWN_DOCUMENTATION = {"cors_preflight": _preflight, "push_key": _push_key, "snippet": _script,
                     "service_worker": _script, "demo_home": _demo, "demo_file": _demo,
                     "demo_inbox": _demo,
                     "demo_sign": _demo_sign, "readyz": _readyz, "metrics": _metrics,
                     "track_click": _tracking, "short_click": _tracking, "track_open": _tracking, "preferences": _tracking,
                     "unsubscribe": _tracking, "callback_sms": _callback,
                     "callback_whatsapp_verify": _callback, "callback_whatsapp": _callback,
                     "callback_email": _email_report}


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


def _journeys(route: Route, op: dict[str, Any]) -> None:
    op["responses"]["503"] = _error("Redis did not answer; retry after Retry-After")
    if route.path == "/v1/journeys":
        op["responses"]["200"] = {"description": "each journey with its counts per step",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}
        return
    op["responses"]["404"] = _error("no such journey (field `journey_id`)")
    if route.path.endswith("/enrollments"):
        person = {"type": "object", "required": ["profile"], "additionalProperties": False,
                  "properties": {
                      "profile": {"type": "string", "description": "profile id or kind:value"},
                      "key": {"type": ["string", "null"], "description": "the run key"},
                      "data": {"type": "object", "description": "what the templates read "
                                                                 "as event.properties"}}}
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["people"], "additionalProperties": False,
            "properties": {"people": {"type": "array", "items": person, "minItems": 1},
                           "idempotency_key": {"type": ["string", "null"]}}}}}}
        op["parameters"] = [*op.get("parameters", []), {
            "name": "Idempotency-Key", "in": "header", "required": False,
            "schema": {"type": "string"}, "description": "the idempotency key, if the body has none"}]
        op["responses"].pop("200")
        op["responses"]["202"] = {"description": "accepted for the worker; unknown people listed",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}
        op["responses"]["400"] = _error("bad input: the field and the reason")
        op["responses"]["422"] = _error("none of the people has a profile")


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
        op["responses"]["404"] = _error("no product with this id")
        if method == "GET":
            op["responses"]["200"] = {"description": "the product", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Product"}}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
