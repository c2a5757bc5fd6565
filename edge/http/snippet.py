"""Serves the website snippet's core (`snippet/dist/kairos.js`) at /k.js.

A short path without "analytics" or "track" in it, so ad-blocker lists do
not match it. The file is read once and answered from memory with an ETag.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from edge.http.common import error_response

SNIPPET_FILE = Path(__file__).resolve().parents[2] / "snippet" / "dist" / "kairos.js"


class SnippetFile:
    def __init__(self, path: Path = SNIPPET_FILE) -> None:
        self.path = path
        self._body: bytes | None = None
        self.etag = ""

    def load(self) -> bytes | None:
        if self._body is None and self.path.is_file():
            self._body = self.path.read_bytes()
            self.etag = '"' + hashlib.sha256(self._body).hexdigest()[:16] + '"'
        return self._body


_snippet = SnippetFile()


async def snippet(request: Request) -> Response:
    """The website snippet's core script."""
    body = _snippet.load()
    if body is None:
        return error_response(404, "not_found", "the snippet is not built (cd snippet && npm run build)")
    headers = {"ETag": _snippet.etag, "Cache-Control": "public, max-age=300",
               "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == _snippet.etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)
