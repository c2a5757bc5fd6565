"""VAPID keys (RFC 8292): the P-256 key pair a site signs its Web Push with.

Read where the settings are checked (a site's public key must be its private key's)
and where pushes are signed (edge/connectors/webpush.py)."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_vapid(private_key: str) -> Vapid02:
    """The VAPID signer from a private key: base64url of the raw 32 bytes (what
    `web-push generate-vapid-keys` prints), or PEM."""
    text = private_key.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("a VAPID key is a P-256 (prime256v1) key")
        return Vapid02(key)
    if len(unb64url(text)) != 32:
        raise ValueError("a raw VAPID private key is 32 bytes")
    return Vapid02.from_raw(text.encode())


def public_key_text(vapid: Vapid02) -> str:
    """The application server key the browser subscribes with (base64url, uncompressed)."""
    return b64url(vapid.public_key.public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint))
