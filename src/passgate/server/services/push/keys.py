"""Device keys as the mobile SDKs send them: P-256, SPKI DER in standard base64, ECDSA-SHA256
signatures in DER, and the leniently encoded `publicKey` query parameter
(docs/wire.md#push-device-keys)."""

from __future__ import annotations

import base64
import binascii
import time
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from passgate.server.services.errors import InvalidRequest

REMOVAL_WINDOW_SECONDS = 600
_MAX_KEY_TEXT = 1000


def _b64decode(text: str) -> bytes:
    """Either alphabet, padding optional, and a `+` that a query string turned into a space."""
    text = text.strip().replace(" ", "+").replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


@lru_cache(maxsize=4096)
def _load(der: bytes) -> ec.EllipticCurvePublicKey:
    key = serialization.load_der_public_key(der)
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not a P-256 key")
    return key


def canonical_public_key(value: str) -> str:
    """The stored form (standard, padded base64 of the SPKI DER) of a `publicKey` given either
    as that base64 or base64-encoded once more (the query parameter's double encoding)."""
    if not value or len(value) > _MAX_KEY_TEXT:
        raise InvalidRequest("publicKey is missing or too long")
    try:
        decoded = _b64decode(value)
        if not decoded.startswith(b"\x30"):
            decoded = _b64decode(decoded.decode("ascii"))
        _load(decoded)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(
            "publicKey must be a P-256 public key: SPKI DER in base64 (or that, base64 again)"
        ) from exc
    return base64.b64encode(decoded).decode()


def verify(public_key: str, signature: str | None, message: str) -> bool:
    """Whether `signature` (base64 DER ECDSA) signs the UTF-8 of `message` with this key."""
    if not signature or len(signature) > 200:
        return False
    try:
        _load(base64.b64decode(public_key)).verify(
            _b64decode(signature), message.encode(), ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def removal_messages(now: float | None = None) -> tuple[str, str]:
    """The current and the previous 10-minute window, formatted as the SDKs format a Double
    (`"2993141.0"`): a removal signed just before a window boundary still works."""
    window = int((time.time() if now is None else now) // REMOVAL_WINDOW_SECONDS)
    return f"{float(window)!r}", f"{float(window - 1)!r}"
