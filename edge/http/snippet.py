"""Serves the website snippet: its core at /k.js, its service worker at
/kairos-sw.js, and the site's Web Push key at /v1/push-key.

Short paths without "analytics" or "track" in them, so ad-blocker lists do
not match them. Files are read once and answered from memory with an ETag.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from edge.http.common import json_response
from edge.http.errors import error_response

DIST = Path(__file__).resolve().parents[2] / "snippet" / "dist"


class SnippetFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._body: bytes | None = None
        self.etag = ""

    def load(self) -> bytes | None:
        if self._body is None and self.path.is_file():
            self._body = self.path.read_bytes()
            self.etag = '"' + hashlib.sha256(self._body).hexdigest()[:16] + '"'
        return self._body


_core = SnippetFile(DIST / "kairos.js")
_service_worker = SnippetFile(DIST / "kairos-sw.js")


def _serve(request: Request, file: SnippetFile) -> Response:
    body = file.load()
    if body is None:
        return error_response(404, "not_found", "the snippet is not built (cd snippet && npm run build)")
    headers = {"ETag": file.etag, "Cache-Control": "public, max-age=300",
               "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == file.etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)


async def snippet(request: Request) -> Response:
    """The website snippet's core script."""
    return _serve(request, _core)


async def service_worker(request: Request) -> Response:
    """The snippet's service worker for Web Push (a site serves it from its own origin)."""
    return _serve(request, _service_worker)


async def push_key(request: Request) -> Response:
    """The site's Web Push (VAPID) public key, for the service worker; public information."""
    state = request.app.state.edge
    caller = state.keyring.lookup(request.query_params.get("writeKey"))
    if caller is None:
        return error_response(401, "unauthorized", "unknown key", field="writeKey")
    if not caller.site.vapid_public_key:
        return error_response(404, "not_found", "this site does not use Web Push")
    return json_response({"vapidPublicKey": caller.site.vapid_public_key},
                         headers={"Cache-Control": "public, max-age=300"})
