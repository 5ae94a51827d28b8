"""What an operator sees and does about one tenant's users in the console: search, a user's
record (profile, passkeys with the authenticator model behind each, push devices, other
authenticators, recent actions), naming and removing passkeys and devices, deleting users.
Each change is recorded in the audit log in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from passgate.server.services import aaguids, actions, audit, tenants, users
from passgate.server.services.aaguids import AuthenticatorModel
from passgate.server.services.enums import VerificationMethod
from passgate.server.services.errors import InvalidRequest, NotFound
from passgate.server.store import authenticators as authenticator_store
from passgate.server.store import users as user_store
from passgate.server.store.actions import ActionRow
from passgate.server.store.authenticators import AuthenticatorRow
from passgate.server.store.db import Db
from passgate.server.store.passkeys import PasskeyCredentialRow
from passgate.server.store.push import PushDeviceRow
from passgate.server.store.users import UserRow

MAX_NAME = 100
RECENT_ACTIONS = 25


@dataclass(frozen=True, kw_only=True, slots=True)
class UserPasskey:
    authenticator: AuthenticatorRow
    credential: PasskeyCredentialRow
    model: AuthenticatorModel | None

    @property
    def display_name(self) -> str:
        """The operator's name for it, else its model's, else a plain word."""
        return self.credential.name or (self.model.name if self.model else "Passkey")


@dataclass(frozen=True, kw_only=True, slots=True)
class UserDevice:
    authenticator: AuthenticatorRow
    device: PushDeviceRow


@dataclass(frozen=True, kw_only=True, slots=True)
class UserRecord:
    user_id: str
    user: UserRow | None
    passkeys: Sequence[UserPasskey]
    devices: Sequence[UserDevice]
    # Email, SMS and other authenticators the backend enrolled.
    others: Sequence[AuthenticatorRow]
    actions: Sequence[ActionRow]


async def search(db: Db, tenant_id: str, text: str, limit: int = 50) -> Sequence[UserRow]:
    """Users whose id starts with `text` or whose email, username or phone number is `text`;
    without `text`, the first users by id."""
    tenant = await tenants.get_tenant(db, tenant_id)
    text = text.strip()
    if not text:
        found, _cursor = await users.query_users(db, tenant, limit=limit)
        return found
    return await user_store.search_users(db, tenant.id, text, limit)


async def record(db: Db, tenant_id: str, user_id: str) -> UserRecord:
    tenant = await tenants.get_tenant(db, tenant_id)
    profile = await users.get_profile(db, tenant, user_id)
    listed = await users.list_authenticators(db, tenant, user_id)
    devices = await authenticator_store.find_push_devices(db, tenant.id, user_id)
    recent = await actions.query_actions(db, tenant, user_id, limit=RECENT_ACTIONS)
    if profile.user is None and not listed and not recent:
        raise NotFound(f"no user {user_id!r} in this tenant")
    device_ids = {device.id for _, device in devices}
    return UserRecord(
        user_id=user_id,
        user=profile.user,
        passkeys=[
            UserPasskey(
                authenticator=authenticator,
                credential=credential,
                model=aaguids.describe(credential.aaguid),
            )
            for authenticator, credential in listed
            if credential is not None
        ],
        devices=[UserDevice(authenticator=a, device=d) for a, d in devices],
        others=[
            authenticator
            for authenticator, credential in listed
            if credential is None and authenticator.id not in device_ids
        ],
        actions=recent,
    )


async def rename_passkey(
    db: Db,
    actor: audit.Actor,
    tenant_id: str,
    user_id: str,
    authenticator_id: str,
    name: str,
) -> None:
    """Name a passkey for people; an empty name goes back to its model's name."""
    text = name.strip()
    if len(text) > MAX_NAME:
        raise InvalidRequest(f"a passkey's name may have at most {MAX_NAME} characters")
    if "\x00" in text:
        raise InvalidRequest("a passkey's name may not contain NUL characters")
    if not await authenticator_store.rename_passkey(
        db, tenant_id, user_id, authenticator_id, text or None
    ):
        raise NotFound(f"user {user_id!r} has no passkey {authenticator_id!r}")
    details = {"authenticatorId": authenticator_id, "name": text or None}
    await _record(db, actor, "user.passkey.renamed", tenant_id, user_id, details)


async def delete_authenticator(
    db: Db,
    actor: audit.Actor,
    tenant_id: str,
    user_id: str,
    authenticator_id: str,
) -> None:
    """Remove a passkey, push device or other authenticator of a user."""
    tenant = await tenants.get_tenant(db, tenant_id)
    listed = await users.list_authenticators(db, tenant, user_id)
    kind = next((a.verification_method for a, _ in listed if a.id == authenticator_id), None)
    await users.delete_authenticator(db, tenant, user_id, authenticator_id)
    passkey = kind == VerificationMethod.PASSKEY
    action = "user.passkey.deleted" if passkey else "user.authenticator.deleted"
    details = {"authenticatorId": authenticator_id, "verificationMethod": kind}
    await _record(db, actor, action, tenant_id, user_id, details)


async def delete_user(db: Db, actor: audit.Actor, tenant_id: str, user_id: str) -> None:
    """Delete a user with their authenticators and actions."""
    tenant = await tenants.get_tenant(db, tenant_id)
    await record(db, tenant_id, user_id)  # NotFound for a user that never existed
    await users.delete_user(db, tenant, user_id)
    await _record(db, actor, "user.deleted", tenant_id, user_id, None)


async def _record(
    db: Db,
    actor: audit.Actor,
    action: str,
    tenant_id: str,
    user_id: str,
    details: dict[str, str | None] | None,
) -> None:
    await audit.record(
        db,
        actor,
        action,
        target_type="user",
        target_id=user_id,
        tenant_id=tenant_id,
        details=details,
    )
