"""One challenge lifecycle: issue, answer (which spends it), outcome.

A challenge is not stored when it is issued. Its id on the wire is a signed message that
carries everything the answer is checked against:

    c1.<payload>.<mac>

- `payload` is base64url (unpadded) of a compact JSON array: the purpose, the tenant id, the
  user id (or null), the action code, the idempotency key, the username and display name (a
  registration), the expiry (Unix seconds), a binding hash the answer must match (the
  browser's binding cookie on the `/web` routes, the token's user and action for security
  keys; or null) and 16 random bytes (so no two challenges are alike).
- `mac` is an HMAC-SHA-256 (truncated to 24 bytes) over the version and the payload, keyed by a
  secret derived from the tenant's signing key (opened: a copy of the database without the
  master key cannot make challenges, and a master key rotation does not change the secret).
  Only Passgate makes valid messages; one of another tenant, or of another purpose, is
  refused as unknown.

The answer spends the challenge by recording its digest (`spent_challenges`, one row per
answered challenge, pruned once the message would have expired anyway): the first answer
wins, any later one is refused as already used. Only a message with a valid MAC is ever
spent, so nobody else can add rows. What the answer decides is the ceremony's (a refused
answer still spends it: services/single_use.py).

WebAuthn's challenge bytes are the SHA-256 of the message, so the browser's
`clientDataJSON.challenge` is recomputed from the challengeId the answer carries. Security
keys carry no challengeId on the wire: their challenge bytes are the message itself, read
back from `clientDataJSON.challenge` (services/security_keys.py)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from passgate.server.services import secrets_box
from passgate.server.store.tenants import TenantRow

VERSION = "c1"
_MAC_BYTES = 24
_RANDOM_BYTES = 16
# The longest message `parse` looks at (every field at its schema limit fits).
MAX_MESSAGE = 4096


class Purpose(StrEnum):
    REGISTRATION = "registration"
    AUTHENTICATION = "authentication"
    # Security keys (services/security_keys.py): their own purposes, so neither kind of
    # ceremony accepts the other's messages.
    SECURITY_KEY_REGISTRATION = "sk_registration"
    SECURITY_KEY_AUTHENTICATION = "sk_authentication"


class Refusal(StrEnum):
    """Why a message is not a challenge that may be answered now."""

    UNKNOWN = "unknown"
    EXPIRED = "expired"


class ChallengeRefused(Exception):
    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True, kw_only=True, slots=True)
class Challenge:
    """A challenge as its message says (the message is `id`)."""

    id: str
    purpose: Purpose
    tenant_id: str
    user_id: str | None
    action_code: str | None
    idempotency_key: str | None
    username: str | None
    display_name: str | None
    expiry: int
    binding_hash: str | None

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.expiry, UTC)

    @property
    def challenge(self) -> bytes:
        """The bytes WebAuthn signs over (the SHA-256 of the message)."""
        return hashlib.sha256(self.id.encode()).digest()

    @property
    def digest(self) -> str:
        """What spending the challenge records (64 hex characters)."""
        return hashlib.sha256(b"spent|" + self.id.encode()).hexdigest()


def message_key(tenant: TenantRow, info: bytes) -> bytes:
    """A MAC key for the tenant's signed messages (these challenges; push's one-time
    messages), one per `info`: derived from its signing key, opened (not the stored
    ciphertext: a copy of the database without the master key must not let anyone make
    messages, and a master key rotation must not change the key)."""
    pem = secrets_box.open_sealed(
        tenant.signing_private_key, tenant_id=tenant.id, field=secrets_box.SIGNING_KEY
    )
    return _derive(pem, info)


@lru_cache(maxsize=1024)
def _derive(signing_key_pem: str, info: bytes) -> bytes:
    hkdf = HKDF(hashes.SHA256(), length=32, salt=None, info=info)
    return hkdf.derive(signing_key_pem.encode())


def _key(tenant: TenantRow) -> bytes:
    return message_key(tenant, b"passgate challenges v1")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(tenant: TenantRow, payload: str) -> str:
    signed = f"{VERSION}.{payload}".encode()
    return _b64(hmac.new(_key(tenant), signed, hashlib.sha256).digest()[:_MAC_BYTES])


def issue(
    tenant: TenantRow,
    purpose: Purpose,
    lifetime: timedelta,
    now: datetime,
    *,
    user_id: str | None = None,
    action_code: str | None = None,
    idempotency_key: str | None = None,
    username: str | None = None,
    display_name: str | None = None,
    binding_hash: str | None = None,
) -> Challenge:
    """A new challenge (it writes nothing)."""
    expiry = int((now + lifetime).timestamp())
    fields = [
        purpose.value,
        tenant.id,
        user_id,
        action_code,
        idempotency_key,
        username,
        display_name,
        expiry,
        binding_hash,
        _b64(secrets.token_bytes(_RANDOM_BYTES)),
    ]
    payload = _b64(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode())
    return Challenge(
        id=f"{VERSION}.{payload}.{_mac(tenant, payload)}",
        purpose=purpose,
        tenant_id=tenant.id,
        user_id=user_id,
        action_code=action_code,
        idempotency_key=idempotency_key,
        username=username,
        display_name=display_name,
        expiry=expiry,
        binding_hash=binding_hash,
    )


def _optional_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError("not text")


def parse(tenant: TenantRow, purpose: Purpose, message: str, now: datetime) -> Challenge:
    """The challenge `message` is, if Passgate issued it for this tenant and purpose and it has
    not expired (ChallengeRefused otherwise). Whether it was spent is the answer's to find."""
    parts = message.split(".") if message.isascii() and len(message) <= MAX_MESSAGE else []
    if len(parts) != 3 or parts[0] != VERSION:
        raise ChallengeRefused(Refusal.UNKNOWN)
    payload, mac = parts[1], parts[2]
    if not hmac.compare_digest(_mac(tenant, payload).encode(), mac.encode()):
        raise ChallengeRefused(Refusal.UNKNOWN)
    try:
        fields = json.loads(_unb64(payload))
        kind, tenant_id, user_id, action, key, username, display, expiry, binding, _nonce = fields
        challenge = Challenge(
            id=message,
            purpose=Purpose(kind),
            tenant_id=str(tenant_id),
            user_id=_optional_text(user_id),
            action_code=_optional_text(action),
            idempotency_key=_optional_text(key),
            username=_optional_text(username),
            display_name=_optional_text(display),
            expiry=int(expiry),
            binding_hash=_optional_text(binding),
        )
    except (ValueError, TypeError, binascii.Error):
        raise ChallengeRefused(Refusal.UNKNOWN) from None
    if challenge.tenant_id != tenant.id or challenge.purpose != purpose:
        raise ChallengeRefused(Refusal.UNKNOWN)
    if challenge.expiry <= now.timestamp():
        raise ChallengeRefused(Refusal.EXPIRED)
    return challenge
