"""Action tokens: ES256 JWTs signed with the tenant's own key, with Authsignal's claim layout
(docs/wire.md#tokens). Current SDKs never verify tokens themselves (they call `/validate`);
the public key is served as a JWKS for anyone who wants to. SDKs from before 2024 that
verified tokens locally expected HS256 (keyed with the secret key) or RS256, and cannot
verify these.

Signing keys rotate (`rotated_keys`, `passgate keys rotate-signing`): new tokens are signed
with the new key, whose `kid` differs, and the old key's public half is kept in the tenant's
`retired_signing_keys` until every token it signed has expired (the tenant's token lifetime
after the rotation, plus `RETIRE_MARGIN`). Until then the JWKS lists it and `decode_token`
accepts tokens it signed; after, neither does."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from passgate.server.services import secrets_box
from passgate.server.services.errors import ExpiredToken, Forbidden, InvalidToken
from passgate.server.store.tenants import TenantRow

ALGORITHM = "ES256"
# Added to a retired key's time: a token the old key signed in a request that read the tenant
# just before the rotation committed may be issued a moment after it.
RETIRE_MARGIN = 60
# A token with a `purpose` claim is confined to it: only the routes whose `decode_token` call
# accepts that purpose take it; everywhere else it is refused with 403 (`ConfinedToken`).
# PUSH_ENROLMENT: a push enrolment link's token (services/push_links.py), taken only by P2.
PUSH_ENROLMENT = "push-enrolment"
_CONFINED_TO = {
    PUSH_ENROLMENT: "enrolling one push device (POST /v1/client/user-authenticators/push)"
}


class ConfinedToken(Forbidden):
    """A genuine token whose `purpose` confines it to other routes than this one."""


class UnknownSigningKey(InvalidToken):
    """The token names a signing key this tenant row does not hold (or no longer accepts): one
    made by a rotation newer than the row (read the tenant again and retry), a retired key past
    its time, or none of the tenant's."""


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
    purpose: str | None = None


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


@dataclass(frozen=True, kw_only=True, slots=True)
class RetiredKey:
    """The public half of a signing key a rotation replaced, and when it stops counting."""

    key_id: str
    jwk: dict[str, Any]
    retire_after: int  # Unix seconds

    def stored(self) -> dict[str, Any]:
        return {"kid": self.key_id, "jwk": self.jwk, "retireAfter": self.retire_after}


def retired_keys(tenant: TenantRow, now: int | None = None) -> list[RetiredKey]:
    """The tenant's retired keys whose time has not passed at `now` (default: now)."""
    current = int(time.time()) if now is None else now
    found = []
    for entry in tenant.retired_signing_keys or ():
        retired = RetiredKey(
            key_id=str(entry["kid"]), jwk=dict(entry["jwk"]), retire_after=int(entry["retireAfter"])
        )
        if retired.retire_after > current:
            found.append(retired)
    return found


def rotated_keys(tenant: TenantRow, now: int) -> tuple[str, str, list[dict[str, Any]]]:
    """A rotation's new values: the new key id, its private key (PEM: seal it as
    `generate_signing_key` says) and what `retired_signing_keys` becomes: the current key's
    public half, kept until every token it signed has expired, and the earlier retired keys
    still within their time."""
    current = _signing_key(tenant)
    retiring = RetiredKey(
        key_id=current.key_id,
        jwk=_public_jwk(current.public_key),
        retire_after=now + tenant.token_lifetime_seconds + RETIRE_MARGIN,
    )
    kept = [key for key in retired_keys(tenant, now) if key.key_id != current.key_id]
    key_id, pem = generate_signing_key()
    return key_id, pem, [retiring.stored(), *(key.stored() for key in kept)]


def _public_jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    jwk: dict[str, Any] = jwt.algorithms.ECAlgorithm.to_jwk(public_key, as_dict=True)
    return {name: jwk[name] for name in ("kty", "crv", "x", "y")}


@lru_cache(maxsize=256)
def _parsed_public_key(crv: str, x: str, y: str) -> ec.EllipticCurvePublicKey:
    key = jwt.algorithms.ECAlgorithm.from_jwk({"kty": "EC", "crv": crv, "x": x, "y": y})
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def _verifying_key(tenant: TenantRow, token: str) -> ec.EllipticCurvePublicKey:
    """The public key that must have signed `token`, chosen by its `kid`: the current key,
    or a retired one within its time."""
    try:
        key_id = jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError as exc:
        raise InvalidToken(f"The token is not valid: {exc}.") from exc
    current = _signing_key(tenant)
    if key_id is None or key_id == current.key_id:
        return current.public_key
    for retired in retired_keys(tenant):
        if retired.key_id == key_id:
            jwk = retired.jwk
            return _parsed_public_key(str(jwk["crv"]), str(jwk["x"]), str(jwk["y"]))
    raise UnknownSigningKey("The token is not valid: it is not signed with a key of this tenant.")


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
    purpose: str | None = None,
    lifetime_seconds: int | None = None,
) -> str:
    """A token for the user's action. `purpose` confines it (see `PUSH_ENROLMENT`);
    `lifetime_seconds` replaces the tenant's token lifetime."""
    issued_at = int(time.time()) if now is None else now
    lifetime = tenant.token_lifetime_seconds if lifetime_seconds is None else lifetime_seconds
    other: dict[str, Any] = {"tenantId": tenant.id, "publishableKey": tenant.id, "userId": user_id}
    if purpose:
        other["purpose"] = purpose
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
        "exp": issued_at + lifetime,
        "jti": secrets.token_urlsafe(12),
        "scope": scope or "",
        "other": other,
    }
    key = _signing_key(tenant)
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.key_id})


def decode_token(
    tenant: TenantRow, token: str, *, accept: frozenset[str] = frozenset()
) -> TokenClaims:
    """Check a token was signed by this tenant (with its current key, or a retired one within
    its time) and has not expired; raise otherwise (`UnknownSigningKey` when the token names
    a key this row does not accept, `ConfinedToken` when its purpose is not in `accept`)."""
    key = _verifying_key(tenant, token)
    try:
        claims = jwt.decode(
            token,
            key,
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
    purpose = other.get("purpose")
    if purpose is not None and purpose not in accept:
        use = _CONFINED_TO.get(str(purpose), str(purpose))
        raise ConfinedToken(f"This token is only for {use}.")
    return TokenClaims(
        tenant_id=tenant.id,
        user_id=claims["sub"],
        action_code=other.get("actionCode"),
        idempotency_key=other.get("idempotencyKey"),
        username=other.get("username"),
        scope=str(claims.get("scope") or ""),
        issued_at=int(claims["iat"]),
        expires_at=int(claims["exp"]),
        purpose=purpose,
    )


def public_jwks(tenant: TenantRow) -> dict[str, Any]:
    """The current key, then the retired keys still within their time, newest first."""
    key = _signing_key(tenant)
    listed = [(key.key_id, _public_jwk(key.public_key))]
    listed += [(retired.key_id, retired.jwk) for retired in retired_keys(tenant)]
    return {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": ALGORITHM} for kid, jwk in listed]}
