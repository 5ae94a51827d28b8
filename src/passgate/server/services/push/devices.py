"""Push device credentials: enrolled with a Bearer token, then every call proves possession of
the private key by a signature (docs/wire.md#push-routes, #push-device-keys)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.services import enrolment
from passgate.server.services.errors import Conflict
from passgate.server.services.push import keys, nonces
from passgate.server.services.push.errors import (
    BadSignature,
    ExpiredCredential,
    UnknownCredential,
)
from passgate.server.services.push.settings import push_settings
from passgate.server.services.tokens import TokenClaims
from passgate.server.store import push_queries, queries
from passgate.server.store.tables import Authenticator, PushDevice, Tenant, utcnow


@dataclass(frozen=True, kw_only=True, slots=True)
class Device:
    device: PushDevice
    authenticator: Authenticator


def _expiry(tenant: Tenant, now: datetime) -> datetime | None:
    minutes = push_settings(tenant).credential_lifetime_minutes
    return now + timedelta(minutes=minutes) if minutes else None


async def enroll(
    session: AsyncSession,
    tenant: Tenant,
    claims: TokenClaims,
    *,
    public_key: str,
    device_name: str | None,
    device_platform: str | None,
    push_token: str | None,
) -> Device:
    """Enroll a device for the token's user (P2). The token is the proof; whether it may add
    an authenticator is `enrolment`'s rule, the same for every method. Enrolling the same key
    again returns the existing credential, renewed (no authenticator is added then)."""
    public_key = keys.canonical_public_key(public_key)
    existing = await push_queries.device_by_key(session, tenant.id, public_key)
    if existing is not None:
        device, authenticator = existing
        if device.user_id != claims.user_id:
            raise Conflict("This device key is enrolled for another user.")
        # Enrolling again renews the credential (and its push token, when one is sent).
        device.expires_at = _expiry(tenant, utcnow())
        if push_token is not None:
            device.push_token = push_token
        await session.flush()
        return Device(device=device, authenticator=authenticator)
    grant = await enrolment.check(session, tenant, claims)
    user = await queries.ensure_user(session, tenant.id, claims.user_id)
    now = utcnow()
    authenticator = Authenticator(
        id=str(uuid.uuid4()),
        tenant_id=tenant.id,
        user_id=claims.user_id,
        verification_method="PUSH",
        username=user.username,
        display_name=device_name,
        is_default=False,
        created_at=now,
        verified_at=now,
    )
    device = PushDevice(
        id=authenticator.id,
        tenant_id=tenant.id,
        user_id=claims.user_id,
        public_key=public_key,
        device_name=device_name,
        device_platform=device_platform,
        push_token=push_token,
        expires_at=_expiry(tenant, now),
    )
    try:
        async with session.begin_nested():
            session.add(authenticator)
            await session.flush()
            session.add(device)
    except IntegrityError as exc:
        raise Conflict("This device key was enrolled by a concurrent request.") from exc
    await enrolment.use_up(session, grant)
    return Device(device=device, authenticator=authenticator)


async def find(session: AsyncSession, tenant: Tenant, public_key: str) -> Device:
    """The device with this key (P1), or `invalid_credential`; an expired one is refused."""
    found = await push_queries.device_by_key(
        session, tenant.id, keys.canonical_public_key(public_key)
    )
    if found is None:
        raise UnknownCredential("No push credential with this public key.")
    device, authenticator = found
    if device.expires_at is not None and device.expires_at <= utcnow():
        raise ExpiredCredential("This push credential has expired; enroll the device again.")
    return Device(device=device, authenticator=authenticator)


async def remove(session: AsyncSession, tenant: Tenant, public_key: str, signature: str) -> str:
    """Remove a device (P3) that signed the current or previous 10-minute window."""
    found = await find(session, tenant, public_key)
    if not any(
        keys.verify(found.device.public_key, signature, message)
        for message in keys.removal_messages()
    ):
        raise BadSignature("The signature does not sign the current time window with this key.")
    await queries.delete_authenticator(session, tenant.id, found.device.user_id, found.device.id)
    return found.device.id


async def issue_message(
    session: AsyncSession, tenant: Tenant, public_key: str, purpose: str
) -> str:
    """A one-time message for the device to sign (P4: `nonces.CHALLENGE`, P7:
    `nonces.CREDENTIAL`). Asking writes nothing and invalidates nothing: whoever asks gets the
    same message until the device's signature spends it."""
    found = await find(session, tenant, public_key)
    return await nonces.issue(session, tenant, found.device.id, purpose, utcnow())


async def prove(
    session: AsyncSession, tenant: Tenant, device: Device, signature: str | None
) -> None:
    """P5: check `signature` signs one of the device's outstanding P4 messages (P5 does not
    send the message back), and spend that message."""
    candidates = await nonces.outstanding(
        session, tenant, device.device.id, nonces.CHALLENGE, utcnow()
    )
    signed = next(
        (n for n in candidates if keys.verify(device.device.public_key, signature, n.message)),
        None,
    )
    if signed is None:
        raise BadSignature(
            "The signature does not sign this device's current message; request a new one."
        )
    if not await nonces.spend(session, tenant, signed):
        raise BadSignature("This message was already used; request a new one.")


async def update(
    session: AsyncSession,
    tenant: Tenant,
    public_key: str,
    *,
    message: str,
    signature: str,
    push_token: str | None,
    reset_expiry: bool,
) -> Device:
    """Change the push token and optionally restart the credential's lifetime (P8)."""
    found = await find(session, tenant, public_key)
    now = utcnow()
    nonce = nonces.parse(tenant, found.device.id, nonces.CREDENTIAL, message, now)
    if nonce is None:
        raise BadSignature("Unknown or expired challengeId; request a new one.")
    if not keys.verify(found.device.public_key, signature, nonce.message):
        raise BadSignature("The signature does not sign this challengeId with this device's key.")
    if not await nonces.spend(session, tenant, nonce):
        raise BadSignature("This challengeId was already used; request a new one.")
    if push_token is not None:
        found.device.push_token = push_token
    if reset_expiry:
        found.device.expires_at = _expiry(tenant, now)
    found.authenticator.last_verified_at = now
    await session.flush()
    return found
