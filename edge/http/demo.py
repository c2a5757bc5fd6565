"""The demo shop at /demo: static pages from `demo/` that load the snippet from this edge.

Pretty paths map onto the files: `/demo` is `index.html`, `/demo/cart` is
`cart.html`, `/demo/category/shoes` is the home page filtered by category (the
page reads the category from its path). Only files inside `demo/` are served.

None of it exists unless the configuration enables the demo (`demo.enabled`), and
the demo's sign-in only while the demo site keeps the published demo secret.

Every answer carries a Content-Security-Policy and refuses framing. A page's policy
allows what the shop uses and nothing more: its own scripts, styles and images, the
snippet (`/k.js`, same origin) and fetches to this edge. The one inline script, the
snippet's stub, runs by a nonce made for each answer, which the stub hands on to
the script and style elements it and the snippet create, as the snippet's
README asks of any page with a policy.
"""

from __future__ import annotations

import hmac
import html
import mimetypes
import secrets
from pathlib import Path

import anyio
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from edge.ingest.auth import user_hash
from edge.http.common import json_response
from edge.http.errors import error_response
from edge.runtime.config import DEMO_USER_HASH_SECRET, Settings, Site
from edge.worker.inbox import messages

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}
# Where the pages' inline script takes the answer's nonce.
NONCE_PLACEHOLDER = "__CSP_NONCE__"
# The demo's own origin is also the edge's: 'self' covers the snippet and the API.
PAGE_POLICY = ("default-src 'none'; script-src 'self' 'nonce-{nonce}'; "
               "style-src 'self' 'nonce-{nonce}'; img-src 'self'; connect-src 'self'; "
               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# Style sheets, scripts and images are not pages, but opened as one (an SVG can hold
# script) they may run nothing.
FILE_POLICY = "default-src 'none'; frame-ancestors 'none'"


def resolve(path: str, root: Path = DEMO_DIR) -> Path | None:
    """The file a request path names, or None when there is none inside root."""
    root = root.resolve()
    path = path.strip("/")
    if path.startswith("category/"):
        path = "index.html"
    candidates = [path or "index.html"]
    if not Path(candidates[0]).suffix:
        candidates.append(candidates[0] + ".html")
    for candidate in candidates:
        if "\x00" in candidate:
            return None
        try:
            target = (root / candidate).resolve()
        except (OSError, ValueError):
            return None
        if target.is_relative_to(root) and target.is_file():
            return target
    return None


async def demo_page(request: Request) -> Response:
    """The demo shop: a static page, style sheet or script from demo/."""
    target = resolve(request.path_params.get("path", ""))
    if target is None:
        return error_response(404, "not_found", f"no demo file {request.url.path}", field="path",
                              headers=guard_headers(FILE_POLICY))
    media_type = TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0]
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if target.suffix != ".html":
        return FileResponse(target, media_type=media_type,
                            headers={**headers, **guard_headers(FILE_POLICY)})
    nonce = secrets.token_urlsafe(18)
    page = await anyio.Path(target).read_text(encoding="utf-8")
    return Response(page.replace(NONCE_PLACEHOLDER, nonce), media_type=media_type,
                    headers={**headers, **guard_headers(PAGE_POLICY.format(nonce=nonce))})


def guard_headers(policy: str) -> dict[str, str]:
    """The policy, and frame refusal for browsers that predate CSP's frame-ancestors."""
    return {"Content-Security-Policy": policy, "X-Frame-Options": "DENY"}


async def demo_sign(request: Request) -> Response:
    """Demo only: signs a user id with the demo site's user hash secret.

    A browser's identify call names a customer only with a userHash, the
    HMAC-SHA256 of the user id keyed with the site's secret. A real site computes
    it in its own backend, after its own login has checked who the visitor is,
    and never exposes the secret or a signing endpoint: anyone could then claim
    to be any customer. The demo shop has no login and no backend, so this
    endpoint plays that part, and only for the public demo site with its published
    secret: the route exists only then (see signing_site), and checks again here.
    """
    site = signing_site(request.app.state.edge.settings)
    if site is None:
        return error_response(404, "not_found", "the demo sign-in is off", field="path",
                              headers=guard_headers(FILE_POLICY))
    user_id = request.query_params.get("user_id", "").strip()
    if not user_id or len(user_id) > 256:
        return error_response(400, "invalid_request", "expected 1 to 256 characters",
                              field="user_id", headers=guard_headers(FILE_POLICY))
    return json_response({"userHash": user_hash(site.user_hash_secret, user_id)},
                         headers={"Cache-Control": "no-store", **guard_headers(FILE_POLICY)})


def signing_site(settings: Settings) -> Site | None:
    """The site /demo/sign signs for: the enabled demo's site while its user hash secret
    is the published demo secret; None otherwise, so that no site with a secret of its
    own can get a signature from this edge."""
    if not settings.demo.enabled:
        return None
    site = settings.sites.get(settings.demo.site)
    if site is None or not hmac.compare_digest(site.user_hash_secret.encode(),
                                               DEMO_USER_HASH_SECRET.encode()):
        return None
    return site


# The inbox page shows received mail as sent: each message in a sandboxed frame that may
# run nothing and reach nothing but this edge (its images: the open pixel counts).
INBOX_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                "frame-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


async def demo_inbox(request: Request) -> Response:
    """The demo's inbox: the last emails the demo's SMTP catcher received (?to= filters)."""
    state = request.app.state.edge
    to = request.query_params.get("to") or None
    found = await messages(state.redis, to)
    items = "".join(
        f"<article><h2>{html.escape(m['subject'])}</h2>"
        f"<p class=meta>to {html.escape(', '.join(m['to']))} · from {html.escape(m['from'])}</p>"
        f"<iframe sandbox title=\"{html.escape(m['subject'])}\" srcdoc=\"{html.escape(m['html'])}\">"
        f"</iframe><details><summary>Plain text</summary><pre>{html.escape(m['text'])}</pre>"
        "</details></article>" for m in found)
    heading = f"Inbox of {html.escape(to)}" if to else "Demo inbox: every message"
    empty = "" if found else "<p>Nothing yet. Sign in on the shop, or leave a cart for an hour.</p>"
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>{heading}</title>"
            "<meta name=viewport content=\"width=device-width\"><style>body{font-family:sans-serif;"
            "max-width:48em;margin:1em auto;padding:0 1em}iframe{width:100%;height:22em;border:1px "
            "solid #ddd}.meta{color:#666}</style></head><body>"
            f"<p><a href=\"/demo\">Back to the shop</a></p><h1>{heading}</h1>{empty}{items}"
            "</body></html>")
    return Response(page, media_type="text/html; charset=utf-8",
                    headers={"Cache-Control": "no-store", **guard_headers(INBOX_POLICY)})
