"""Keys, scopes, origins and signed identity claims.

Two kinds of key:
- public write keys belong to one site; safe in a web page; they may only append
  events for the caller's own visitor and receive that visitor's decisions;
- secret keys carry scopes (ingest, profiles:read, profiles:delete, admin).

Keys are looked up by their SHA-256 digest so the lookup does not depend on
how many leading characters of a guess are right.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from edge.runtime.config import Settings, Site


@dataclass(frozen=True, slots=True)
class Caller:
    key_kind: str  # "public" | "secret"
    site_id: str
    site: Site
    scopes: frozenset[str]
    journeys: frozenset[str] = frozenset()  # what scope journeys:enroll enrols into

    @property
    def is_public(self) -> bool:
        return self.key_kind == "public"

    def may(self, scope: str) -> bool:
        return scope in self.scopes


class AuthError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyRing:
    HEADER_CACHE_SIZE = 1024

    def __init__(self, settings: Settings) -> None:
        self._callers: dict[bytes, Caller] = {}
        self._by_header: dict[str, Caller] = {}
        for site_id, site in settings.sites.items():
            for key in site.write_keys:
                self._callers[_digest(key)] = Caller("public", site_id, site, frozenset({"ingest"}))
        for key, secret in settings.secret_keys.items():
            site = settings.sites[secret.site]
            self._callers[_digest(key)] = Caller("secret", secret.site, site, frozenset(secret.scopes),
                                                 frozenset(secret.journeys))

    def lookup(self, key: str | None) -> Caller | None:
        if not key:
            return None
        return self._callers.get(_digest(key))

    def authenticate(self, authorization: str | None, body_key: str | None = None) -> Caller:
        """Basic auth with the key as user name (Segment's way), Bearer, or writeKey in the body."""
        if authorization is not None:
            # The same few headers arrive on every request: remember the ones that
            # named a known key, so the common case skips base64 and hashing.
            known = self._by_header.get(authorization)
            if known is not None:
                return known
        key = key_from_header(authorization) or body_key
        if not key:
            raise AuthError(401, "missing key: send HTTP Basic auth with the key as user name")
        caller = self.lookup(key)
        if caller is None:
            raise AuthError(401, "unknown key")
        if authorization is not None and key_from_header(authorization) == key:
            if len(self._by_header) >= self.HEADER_CACHE_SIZE:
                self._by_header.clear()
            self._by_header[authorization] = caller
        return caller


def key_from_header(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip() or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, _password = decoded.partition(":")
        return user or None
    return None


def origin_allowed(caller: Caller, origin: str | None, host: str | None = None,
                   own_pages_site: str | None = None) -> bool:
    """A browser sends Origin; a page on another site may not use this site's key.

    Requests without Origin (apps, servers) are allowed: an origin check only
    protects against other web pages, which always send one. The pages the edge
    serves itself (the demo shop) use the key of `own_pages_site` from the edge's
    own origin, the one the request's Host names, whatever host and port the edge
    is reached at: a browser sets both headers, so another page cannot pass for one
    of them.
    """
    if origin is None or not caller.is_public or origin in caller.site.origins:
        return True
    return (own_pages_site is not None and caller.site_id == own_pages_site
            and host is not None and same_host(origin, host))


def same_host(origin: str, host: str) -> bool:
    """Whether an Origin (scheme://host[:port]) names the host[:port] of a Host header."""
    _scheme, separator, authority = origin.partition("://")
    return bool(separator) and authority.lower() == host.lower()


def user_hash(secret: str, user_id: str) -> str:
    """The signature a site's backend puts in context.userHash for a logged-in user."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def verify_user_hash(site: Site, user_id: str, claimed: object) -> bool:
    if not site.user_hash_secret or not isinstance(claimed, str):
        return False
    return hmac.compare_digest(user_hash(site.user_hash_secret, user_id), claimed.lower())
