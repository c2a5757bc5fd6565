"""Pieces every route module uses: JSON responses, authentication, bodies (errors: errors.py)."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from edge.ingest.auth import AuthError, Caller
from edge.ingest.wire import InputError, check_nesting

JSON = "application/json"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


def header_map(request: Request) -> dict[str, str]:
    """The request's headers as a plain dict, built once (Starlette's lookups scan the list)."""
    return {name.decode("latin-1"): value.decode("latin-1")
            for name, value in request.scope["headers"]}


async def read_body(request: Request, headers: dict[str, str], max_bytes: int,
                    max_depth: int) -> bytes:
    """The request body, refusing more than max_bytes without reading it all, and JSON
    nested deeper than max_depth (limits.max_depth) values allow."""
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InputError("Content-Length", "not a number")
        if int(declared) > max_bytes:
            raise InputError("body", f"larger than {max_bytes} bytes", status=413)
    body = await _receive_body(request, max_bytes)
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        body = _gunzip(body, max_bytes)
    elif encoding != "identity":
        raise InputError("Content-Encoding", "expected gzip or identity", status=415)
    if not body:
        raise InputError("body", "empty: expected a JSON object")
    check_nesting(body, max_depth)
    return body


async def _receive_body(request: Request, max_bytes: int) -> bytes:
    """The body's chunks as the server hands them over (what Request.stream() does,
    without an async generator in between: the hot path reads a body per event)."""
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > max_bytes:
                raise InputError("body", f"larger than {max_bytes} bytes", status=413)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    """Some SDKs gzip their batches; the size limit applies to the unpacked body too."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(data, max_bytes + 1)
    except zlib.error:
        raise InputError("body", "not valid gzip") from None
    if len(body) > max_bytes or inflater.unconsumed_tail:
        raise InputError("body", f"larger than {max_bytes} bytes once unpacked", status=413)
    return body


def check_json_content_type(headers: dict[str, str]) -> None:
    """JSON, or JSON sent as text/plain (browsers skip the CORS preflight for that)."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("", "application/json", "text/plain"):
        raise InputError("Content-Type", "expected application/json or text/plain", status=415)


def require_scope(caller: Caller, scope: str) -> None:
    if caller.is_public:
        raise AuthError(403, f"a public write key cannot do this; a secret key with scope {scope!r} can")
    if not caller.may(scope):
        raise AuthError(403, f"the key lacks scope {scope!r}")


# The CORS preflight answers OPTIONS on every path under /v1/: a path that only it
# matches is not a route (404, not 405).
PREFLIGHT_ROUTE = "cors_preflight"
