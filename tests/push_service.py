"""A Web Push service for the delivery tests, over TLS on a free port, and the browser
side of a subscription.

The service does what a browser's push service does with a message: it checks the
VAPID token (RFC 8292: an ES256 JWT for its own origin, not expired, with a subject,
signed by the key in `k`) and the headers RFC 8030 requires, and, standing in for the
browser, decrypts the body with the subscription's private key and auth secret
(RFC 8291). Both are written here from the RFCs with `cryptography`'s primitives, not
with the libraries the edge uses, so a mistake on either side shows as a 4xx."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import uvicorn
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edge.store.embedded import free_port


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962,
                            serialization.PublicFormat.UncompressedPoint)


class VapidKey:
    """A site's VAPID key pair, as `web-push generate-vapid-keys` gives it."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.private_text = b64(self.key.private_numbers().private_value.to_bytes(32, "big"))
        self.public_text = b64(point(self.key.public_key()))


class Browser:
    """One browser's subscription: its P-256 key pair and 16-byte auth secret."""

    def __init__(self, endpoint: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.endpoint = endpoint

    def subscription(self) -> dict[str, Any]:
        """What PushSubscription.toJSON() gives the page."""
        return {"endpoint": self.endpoint, "expirationTime": None,
                "keys": {"p256dh": b64(point(self.key.public_key())), "auth": b64(self.auth)}}

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291 section 3 and RFC 8188: the header, the keys, one record."""
        salt, record_size, id_length = body[:16], struct.unpack(">I", body[16:20])[0], body[20]
        sender_point, ciphertext = body[21:21 + id_length], body[21 + id_length:]
        assert id_length == 65 and record_size >= 18, "the header is not aes128gcm's"
        sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_point)
        shared = self.key.exchange(ec.ECDH(), sender)
        key_info = b"WebPush: info\x00" + point(self.key.public_key()) + sender_point
        ikm = _hmac(_hmac(self.auth, shared), key_info + b"\x01")
        prk = _hmac(salt, ikm)
        cek = _hmac(prk, b"Content-Encoding: aes128gcm\x00\x01")[:16]
        nonce = _hmac(prk, b"Content-Encoding: nonce\x00\x01")[:12]
        assert len(ciphertext) <= record_size, "a push message is one record"
        padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
        content = padded.rstrip(b"\x00")
        assert content.endswith(b"\x02"), "the last record ends with the delimiter 2"
        return content[:-1]


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def verify_vapid(header: str, audience: str, now: float) -> tuple[str, dict[str, Any]]:
    """(the public key `k`, the claims) of a valid `vapid t=...,k=...`; raises otherwise."""
    scheme, _, rest = header.partition(" ")
    assert scheme.lower() == "vapid", f"not the vapid scheme: {scheme!r}"
    parts = dict(part.strip().split("=", 1) for part in rest.split(","))
    token, public_text = parts["t"], parts["k"]
    signed, _, signature = token.rpartition(".")
    head = json.loads(unb64(signed.split(".")[0]))
    assert head.get("alg") == "ES256", head
    raw = unb64(signature)
    assert len(raw) == 64, "an ES256 signature is r and s, 32 bytes each"
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(public_text))
    public.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                       int.from_bytes(raw[32:], "big")),
                  signed.encode(), ec.ECDSA(hashes.SHA256()))
    claims = json.loads(unb64(signed.split(".")[1]))
    assert claims["aud"] == audience, f"audience {claims['aud']!r}, not {audience!r}"
    assert now < claims["exp"] <= now + 24 * 3600, "exp is past or more than 24 hours ahead"
    assert str(claims.get("sub", "")).startswith(("mailto:", "https:")), "no subject"
    return public_text, claims


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as files (the CA file is the cert)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "push.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "push-cert.pem", directory / "push-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Delivered:
    """One message the service accepted, as the browser reads it."""
    subscription: str
    payload: dict[str, Any]
    headers: dict[str, str]
    vapid_key: str


@dataclass
class PushService:
    """Serves `/push/{id}` for the browsers made by `browser()`. Answers from `script` in
    order ((status, headers)), then 201 with a Location; a request that fails a check is
    answered 400/401/403 with the reason and kept in `refused`."""

    directory: Path
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delivered: list[Delivered] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    attempts: int = 0
    before_answer: Callable[[], None] | None = None  # run as a scripted answer is given

    def __post_init__(self) -> None:
        self.port = free_port()
        self.origin = f"https://127.0.0.1:{self.port}"
        self.ca_file, key_file = self_signed(self.directory)
        self.browsers: dict[str, Browser] = {}
        app = Starlette(routes=[Route("/push/{id}", self._push, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning",
            ssl_certfile=str(self.ca_file), ssl_keyfile=str(key_file)))
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()),
                                        daemon=True)

    def browser(self) -> Browser:
        name = b64(os.urandom(9))
        made = Browser(f"{self.origin}/push/{name}")
        self.browsers[name] = made
        return made

    def _refuse(self, status: int, reason: str) -> Response:
        self.refused.append(reason)
        return Response(reason, status_code=status)

    async def _push(self, request: Request) -> Response:
        self.attempts += 1
        name = request.path_params["id"]
        browser = self.browsers.get(name)
        if browser is None:
            return self._refuse(404, "no such subscription")
        headers = {key.lower(): value for key, value in request.headers.items()}
        try:
            vapid_key, _ = verify_vapid(headers.get("authorization", ""), self.origin,
                                        time.time())
        except (AssertionError, KeyError, ValueError, InvalidSignature) as exc:
            return self._refuse(401, f"VAPID: {type(exc).__name__} {exc}")
        if "ttl" not in headers or not headers["ttl"].isdigit():
            return self._refuse(400, "TTL is required")
        if headers.get("content-encoding") != "aes128gcm":
            return self._refuse(415, "the content encoding must be aes128gcm")
        topic = headers.get("topic", "")
        if topic and (len(topic) > 32 or not all(c.isalnum() or c in "-_" for c in topic)):
            return self._refuse(400, "a topic is at most 32 base64url characters")
        try:
            payload = json.loads(browser.decrypt(await request.body()))
        except Exception as exc:  # noqa: BLE001 - any failure to decrypt is the sender's
            return self._refuse(400, f"decryption: {type(exc).__name__} {exc}")
        if self.script:
            status, extra = self.script.pop(0)
            if self.before_answer is not None:
                await asyncio.to_thread(self.before_answer)
            return Response(status_code=status, headers=extra)
        self.delivered.append(Delivered(name, payload, headers, vapid_key))
        return Response(status_code=201,
                        headers={"location": f"{self.origin}/message/m{len(self.delivered)}"})

    def __enter__(self) -> "PushService":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the push service did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.should_exit = True
        self._thread.join(10)
