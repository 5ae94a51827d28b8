"""Push device credentials: enrolled with a Bearer token, then every call proves possession of
the private key by a signature (docs/wire.md#push-routes, #push-device-keys)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from passgate.server.services import audit, enrolment
from passgate.server.services.enums import VerificationMethod
from passgate.server.services.errors import Conflict
from passgate.server.services.push import keys, nonces
from passgate.server.services.push.errors import (
    BadSignature,
    ExpiredCredential,
    UnknownCredential,
)
from passgate.server.services.push.settings import push_settings
from passgate.server.services.tokens import TokenClaims
from passgate.server.store import push as push_store
from passgate.server.store import users as user_store
from passgate.server.store.db import Db
from passgate.server.store.push import DeviceWithAuthenticator, PushDeviceRow
from passgate.server.store.tables import utcnow
from passgate.server.store.tenants import TenantRow

Device = DeviceWithAuthenticator
# Given the tenant's version a deciding statement read (None: the tenant is gone), the tenant
# (and the caller's token claims) to decide with: the Client API's `ClientCaller.recheck`.
Recheck = Callable[[datetime | None], Awaitable[tuple[TenantRow, Any]]]

# (tenant id, canonical public key) -> (device id, user id). Neither can change for a key: a
# removed device is simply not found by the statement that uses the id (it also matches the
# key), and the entry is then dropped. Nothing revocable is kept here.
_IDS: dict[tuple[str, str], tuple[str, str]] = {}
_IDS_MAX = 100_000


def remember(device: PushDeviceRow) -> None:
    if len(_IDS) >= _IDS_MAX:
        _IDS.clear()
    _IDS[(device.tenant_id, device.public_key)] = (device.id, device.user_id)


def known_ids(tenant_id: str, public_key: str) -> tuple[str, str] | None:
    return _IDS.get((tenant_id, public_key))


def forget(tenant_id: str, public_key: str) -> None:
    _IDS.pop((tenant_id, public_key), None)


def _expiry(tenant: TenantRow, now: datetime) -> datetime | None:
    minutes = push_settings(tenant).credential_lifetime_minutes
    return now + timedelta(minutes=minutes) if minutes else None


def check_expiry(device: PushDeviceRow, now: datetime) -> None:
    if device.expires_at is not None and device.expires_at <= now:
        raise ExpiredCredential("This push credential has expired; enroll the device again.")


async def enroll(
    db: Db,
    tenant: TenantRow,
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
    now = utcnow()
    existing = await push_store.get_device_by_key(db, tenant.id, public_key)
    if existing is not None:
        if existing.device.user_id != claims.user_id:
            raise Conflict("This device key is enrolled for another user.")
        # Enrolling again renews the credential (and its push token, when one is sent).
        renewed = await push_store.update_device(
            db,
            existing.device.id,
            push_token=push_token,
            expires_at=_expiry(tenant, now),
            renew=True,
        )
        assert renewed is not None
        remember(renewed)
        return Device(
            device=renewed,
            created_at=existing.created_at,
            verified_at=existing.verified_at,
            last_verified_at=existing.last_verified_at,
        )
    grant = await enrolment.check(db, tenant, claims)
    user = await user_store.ensure_user(db, tenant.id, claims.user_id)
    try:
        async with db.savepoint():
            added = await push_store.insert_device(
                db,
                tenant_id=tenant.id,
                user_id=claims.user_id,
                username=user.username,
                public_key=public_key,
                device_name=device_name,
                device_platform=device_platform,
                push_token=push_token,
                expires_at=_expiry(tenant, now),
                now=now,
            )
    except IntegrityError as exc:
        raise Conflict("This device key was enrolled by a concurrent request.") from exc
    await enrolment.use_up(
        db, grant, method=VerificationMethod.PUSH, authenticator_id=added.device.id
    )
    await audit.authenticator_changed(
        db,
        audit.user_actor(claims.user_id),
        added=True,
        tenant_id=tenant.id,
        user_id=claims.user_id,
        authenticator_id=added.device.id,
        verification_method=VerificationMethod.PUSH.value,
    )
    remember(added.device)
    return added


async def find(db: Db, tenant: TenantRow, public_key: str) -> Device:
    """The device with this key (P1), or `invalid_credential`; an expired one is refused."""
    found = await push_store.get_device_by_key(db, tenant.id, keys.canonical_public_key(public_key))
    if found is None:
        raise UnknownCredential("No push credential with this public key.")
    check_expiry(found.device, utcnow())
    remember(found.device)
    return found


async def remove(db: Db, tenant: TenantRow, public_key: str, signature: str) -> str:
    """Remove a device (P3) that signed the current or previous 10-minute window."""
    found = await find(db, tenant, public_key)
    if not any(
        keys.verify(found.device.public_key, signature, message)
        for message in keys.removal_messages()
    ):
        raise BadSignature("The signature does not sign the current time window with this key.")
    await push_store.delete_device(db, tenant.id, found.device.id)
    await audit.authenticator_changed(
        db,
        audit.user_actor(found.device.user_id),
        added=False,
        tenant_id=tenant.id,
        user_id=found.device.user_id,
        authenticator_id=found.device.id,
        verification_method=VerificationMethod.PUSH.value,
    )
    forget(tenant.id, found.device.public_key)
    return found.device.id


async def issue_message(
    db: Db, tenant: TenantRow, public_key: str, purpose: str, recheck: Recheck | None = None
) -> str:
    """A one-time message for the device to sign (P4: `nonces.CHALLENGE`, P7:
    `nonces.CREDENTIAL`). Asking writes nothing and invalidates nothing: whoever asks gets the
    same message until the device's signature spends it. With the device's id known to this
    process, one statement (the count of its spent messages, which also proves it exists, and
    the tenant's version: `recheck` reloads a changed tenant, whose key makes the message)."""
    key = keys.canonical_public_key(public_key)
    ids = known_ids(tenant.id, key)
    now = utcnow()
    if ids is not None:
        outstanding = nonces.outstanding(tenant, ids[0], purpose, now)
        found = await push_store.get_device_spent(db, tenant.id, ids[0], key, outstanding.ranges[0])
        if found is not None:
            if recheck is not None:
                tenant = (await recheck(found.tenant_version))[0]
                outstanding = nonces.outstanding(tenant, ids[0], purpose, now)
            check_expiry(found.device, now)
            nonces.note_spent(tenant.id, ids[0], purpose, outstanding.expiries[0], found.spent)
            return outstanding.candidates((found.spent, 0))[0].message
        forget(tenant.id, key)
    device = await find(db, tenant, key)
    if recheck is not None:  # not known to this process yet: one more read, for the version
        tenant = (await recheck(await push_store.get_tenant_version(db, tenant.id)))[0]
    return await nonces.issue(db, tenant, device.device.id, purpose, now)


async def update(
    db: Db,
    tenant: TenantRow,
    public_key: str,
    *,
    message: str,
    signature: str,
    push_token: str | None,
    reset_expiry: bool,
) -> Device:
    """Change the push token and optionally restart the credential's lifetime (P8)."""
    found = await find(db, tenant, public_key)
    now = utcnow()
    nonce = nonces.parse(tenant, found.device.id, nonces.CREDENTIAL, message, now)
    if nonce is None:
        raise BadSignature("Unknown or expired challengeId; request a new one.")
    if not keys.verify(found.device.public_key, signature, nonce.message):
        raise BadSignature("The signature does not sign this challengeId with this device's key.")
    if not await nonces.spend(db, tenant, nonce):
        raise BadSignature("This challengeId was already used; request a new one.")
    updated = await push_store.update_device(
        db,
        found.device.id,
        push_token=push_token,
        expires_at=_expiry(tenant, now),
        renew=reset_expiry,
    )
    if updated is None:
        raise UnknownCredential("No push credential with this public key.")
    await push_store.mark_verified(db, found.device.id, now)
    return Device(
        device=updated,
        created_at=found.created_at,
        verified_at=found.verified_at,
        last_verified_at=now,
    )
