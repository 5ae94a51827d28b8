"""Action tokens: ES256 JWTs signed with the tenant's own key, with Authsignal's claim layout
(docs/wire.md#tokens). Current SDKs never verify tokens themselves (they call `/validate`);
the public key is served as a JWKS for anyone who wants to. SDKs from before 2024 that
verified tokens locally expected HS256 (keyed with the secret key) or RS256, and cannot
verify these."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from passgate.server.services import secrets_box
from passgate.server.services.errors import ExpiredToken, InvalidToken
from passgate.server.store.tenants import TenantRow

ALGORITHM = "ES256"


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenClaims:
    """What a token says, once its signature, audience and expiry are checked."""

    tenant_id: str
    user_id: str
    action_code: str | None
    idempotency_key: str | None
    username: str | None
    scope: str
    issued_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class _SigningKey:
    key_id: str
    private_key: ec.EllipticCurvePrivateKey
    public_key: ec.EllipticCurvePublicKey


# Parsed keys by (tenant id, key id, stored ciphertext): decryption and PEM parsing happen
# once per process, not per request, and a re-sealed key (a master key rotation) is a new entry.
_keys: dict[tuple[str, str, str], _SigningKey] = {}


def generate_signing_key() -> tuple[str, str]:
    """A new tenant signing key: (key id, PKCS#8 PEM of the P-256 private key). Store the PEM
    sealed (`secrets_box.seal`, field `secrets_box.SIGNING_KEY`)."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return secrets.token_hex(8), pem


def _signing_key(tenant: TenantRow) -> _SigningKey:
    cache_key = (tenant.id, tenant.signing_key_id, tenant.signing_private_key)
    key = _keys.get(cache_key)
    if key is None:
        pem = secrets_box.open_sealed(
            tenant.signing_private_key, tenant_id=tenant.id, field=secrets_box.SIGNING_KEY
        )
        private_key = serialization.load_pem_private_key(pem.encode(), password=None)
        assert isinstance(private_key, ec.EllipticCurvePrivateKey)
        key = _SigningKey(tenant.signing_key_id, private_key, private_key.public_key())
        _keys[cache_key] = key
    return key


def issue_token(
    tenant: TenantRow,
    *,
    user_id: str,
    action_code: str | None,
    idempotency_key: str | None,
    username: str | None = None,
    scope: str | None = None,
    now: int | None = None,
) -> str:
    issued_at = int(time.time()) if now is None else now
    other: dict[str, Any] = {"tenantId": tenant.id, "publishableKey": tenant.id, "userId": user_id}
    if username:
        other["username"] = username
    if action_code:
        other["actionCode"] = action_code
    if idempotency_key:
        other["idempotencyKey"] = idempotency_key
    claims = {
        "aud": tenant.id,
        "sub": user_id,
        "iat": issued_at,
        "exp": issued_at + tenant.token_lifetime_seconds,
        "jti": secrets.token_urlsafe(12),
        "scope": scope or "",
        "other": other,
    }
    key = _signing_key(tenant)
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.key_id})


def decode_token(tenant: TenantRow, token: str) -> TokenClaims:
    """Check a token was signed by this tenant and has not expired; raise otherwise."""
    key = _signing_key(tenant)
    try:
        claims = jwt.decode(
            token,
            key.public_key,
            algorithms=[ALGORITHM],
            audience=tenant.id,
            options={"require": ["exp", "iat", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise ExpiredToken("The token has expired.") from exc
    except jwt.InvalidTokenError as exc:
        raise InvalidToken(f"The token is not valid: {exc}.") from exc
    other = claims.get("other")
    if not isinstance(other, dict) or other.get("tenantId") != tenant.id:
        raise InvalidToken("The token was not issued for this tenant.")
    if other.get("userId") != claims["sub"]:
        raise InvalidToken("The token's user claims disagree.")
    return TokenClaims(
        tenant_id=tenant.id,
        user_id=claims["sub"],
        action_code=other.get("actionCode"),
        idempotency_key=other.get("idempotencyKey"),
        username=other.get("username"),
        scope=str(claims.get("scope") or ""),
        issued_at=int(claims["iat"]),
        expires_at=int(claims["exp"]),
    )


def public_jwks(tenant: TenantRow) -> dict[str, Any]:
    key = _signing_key(tenant)
    jwk: dict[str, Any] = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key, as_dict=True)
    jwk.update(kid=key.key_id, use="sig", alg=ALGORITHM)
    return {"keys": [jwk]}
