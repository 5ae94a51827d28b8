"""A cheap software authenticator for the benchmark's clients: ES256 (P-256) passkeys and push
device keys held in memory, WebAuthn byte layouts built by hand (docs/wire.md#webauthn-json).

Registration answers with `none` attestation; assertions carry a sign count of 0, which the
server always accepts (docs/wire.md#relying-party-checks), so a passkey may be used from any
client process without sharing a counter."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

RP_ID = "localhost"
ORIGIN = f"https://{RP_ID}"
# Authenticator data flags: user present, user verified, attested credential data.
_UP, _UV, _AT = 0x01, 0x04, 0x40
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _cbor_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    if value < 0x100:
        return bytes([major << 5 | 24, value])
    if value < 0x10000:
        return bytes([major << 5 | 25]) + struct.pack(">H", value)
    return bytes([major << 5 | 26]) + struct.pack(">I", value)


def cbor(value: Any) -> bytes:
    """CBOR for the few types a 'none' attestation object holds: ints, bytes, text, maps."""
    if isinstance(value, bool) or value is None:
        raise TypeError("not needed here")
    if isinstance(value, int):
        return _cbor_head(0, value) if value >= 0 else _cbor_head(1, -1 - value)
    if isinstance(value, bytes):
        return _cbor_head(2, len(value)) + value
    if isinstance(value, str):
        encoded = value.encode()
        return _cbor_head(3, len(encoded)) + encoded
    if isinstance(value, dict):
        items = b"".join(cbor(key) + cbor(item) for key, item in value.items())
        return _cbor_head(5, len(value)) + items
    raise TypeError(f"cannot encode {type(value).__name__}")


def _client_data(kind: str, challenge: str) -> bytes:
    data = {"type": kind, "challenge": challenge, "origin": ORIGIN, "crossOrigin": False}
    return json.dumps(data, separators=(",", ":")).encode()


@dataclass(slots=True)
class Passkey:
    """One discoverable ES256 credential of one user."""

    key: ec.EllipticCurvePrivateKey
    credential_id: bytes
    user_handle: str


def register(options: dict[str, Any]) -> tuple[Passkey, dict[str, Any]]:
    """Answer C2's creation options: a new passkey and the registration credential JSON."""
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    credential_id = os.urandom(16)
    cose_key = cbor({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32), -3: numbers.y.to_bytes(32)})
    rp_id_hash = hashlib.sha256(options["rp"]["id"].encode()).digest()
    auth_data = (
        rp_id_hash
        + bytes([_UP | _UV | _AT])
        + struct.pack(">I", 0)
        + bytes(16)  # AAGUID: none
        + struct.pack(">H", len(credential_id))
        + credential_id
        + cose_key
    )
    attestation = cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
    client_data = _client_data("webauthn.create", options["challenge"])
    credential = {
        "id": b64url(credential_id),
        "rawId": b64url(credential_id),
        "type": "public-key",
        "response": {
            "clientDataJSON": b64url(client_data),
            "attestationObject": b64url(attestation),
            "transports": ["internal"],
        },
        "authenticatorAttachment": "platform",
        "clientExtensionResults": {},
    }
    return Passkey(key, credential_id, options["user"]["id"]), credential


def assert_passkey(passkey: Passkey, options: dict[str, Any]) -> dict[str, Any]:
    """Answer C4's request options with `passkey`: the authentication credential JSON."""
    rp_id_hash = hashlib.sha256(options["rpId"].encode()).digest()
    auth_data = rp_id_hash + bytes([_UP | _UV]) + struct.pack(">I", 0)
    client_data = _client_data("webauthn.get", options["challenge"])
    signature = passkey.key.sign(auth_data + hashlib.sha256(client_data).digest(), _ECDSA_SHA256)
    return {
        "id": b64url(passkey.credential_id),
        "rawId": b64url(passkey.credential_id),
        "type": "public-key",
        "response": {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
            "userHandle": passkey.user_handle,
        },
        "authenticatorAttachment": "platform",
        "clientExtensionResults": {},
    }


class DeviceKey:
    """A push device's P-256 key (docs/wire.md#push-device-keys)."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # In bodies: SPKI in standard base64; in query strings: that text base64url again.
        self.public_key = base64.b64encode(der).decode()
        self.query = b64url(self.public_key.encode())

    def sign(self, message: str) -> str:
        return base64.b64encode(self.key.sign(message.encode(), _ECDSA_SHA256)).decode()
