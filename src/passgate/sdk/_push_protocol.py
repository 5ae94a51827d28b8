"""Sans-I/O halves of the push calls: device-key encodings, what is signed, and reading the
replies into the Flutter SDK's result types (docs/wire.md#push-routes, #push-device-keys)."""

from __future__ import annotations

import base64
import time
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from passgate.sdk._types import AppChallenge, AppCredential, ChallengeUser, UpdatedAppCredential

PUSH_PATH = "/client/user-authenticators/push"
SIGNATURE_HEADER = "X-Authsignal-Signature"
REMOVAL_WINDOW_SECONDS = 600


class DeviceKeys(Protocol):
    """Where a device's P-256 push key lives (`passgate.authenticators.DeviceKeyStore`, or a
    keyring). The SDK only loads, creates and deletes it."""

    def load(self) -> ec.EllipticCurvePrivateKey | None: ...

    def create(self) -> ec.EllipticCurvePrivateKey: ...

    def delete(self) -> None: ...


def public_key_base64(key: ec.EllipticCurvePrivateKey) -> str:
    """SPKI DER in standard, padded base64, as iOS and Android send it."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def public_key_param(key: ec.EllipticCurvePrivateKey) -> str:
    """The `publicKey` query parameter: the base64 key, base64url-encoded again (as iOS does)."""
    return base64.urlsafe_b64encode(public_key_base64(key).encode()).decode().rstrip("=")


def sign(key: ec.EllipticCurvePrivateKey, message: str) -> str:
    """ECDSA-SHA256 over the UTF-8 message, DER, standard base64."""
    return base64.b64encode(key.sign(message.encode(), ec.ECDSA(hashes.SHA256()))).decode()


def removal_message(now: float | None = None) -> str:
    """The 10-minute window a removal signs, formatted as the SDKs format a Double."""
    window = int((time.time() if now is None else now) // REMOVAL_WINDOW_SECONDS)
    return repr(float(window))


def parse_credential(data: dict[str, Any]) -> AppCredential:
    return AppCredential(
        credential_id=data["userAuthenticatorId"],
        created_at=data["verifiedAt"],
        user_id=data["userId"],
        last_authenticated_at=data.get("lastVerifiedAt"),
    )


def parse_challenge(data: dict[str, Any]) -> AppChallenge | None:
    if not data.get("challengeId"):
        return None
    user = data.get("user")
    return AppChallenge(
        challenge_id=data["challengeId"],
        action_code=data.get("actionCode"),
        idempotency_key=data.get("idempotencyKey"),
        user_agent=data.get("userAgent"),
        device_id=data.get("deviceId"),
        ip_address=data.get("ipAddress"),
        custom=data.get("custom"),
        user=ChallengeUser(custom=user.get("custom")) if isinstance(user, dict) else None,
        expires_at=data.get("expiresAt"),
    )


def parse_updated_credential(data: dict[str, Any]) -> UpdatedAppCredential:
    return UpdatedAppCredential(
        user_authenticator_id=data["userAuthenticatorId"],
        user_id=data["userId"],
        last_verified_at=data["lastVerifiedAt"],
        push_token=data.get("pushToken"),
    )


def parse_is_verified(data: dict[str, Any]) -> bool:
    return bool(data["isVerified"])
