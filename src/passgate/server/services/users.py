"""Users and the authenticators an app backend manages for them directly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from passgate.server.services import audit, tenants
from passgate.server.services.delivery import addresses
from passgate.server.services.enums import (
    DEFAULT_ALLOWED_METHODS,
    DIRECTLY_ENROLLABLE,
    VerificationMethod,
)
from passgate.server.services.errors import InvalidRequest, NotFound
from passgate.server.store import authenticators as authenticator_store
from passgate.server.store import passkeys as passkey_store
from passgate.server.store import users as user_store
from passgate.server.store.authenticators import AuthenticatorRow
from passgate.server.store.db import Db
from passgate.server.store.passkeys import PasskeyCredentialRow
from passgate.server.store.tables import utcnow
from passgate.server.store.tenants import TenantRow
from passgate.server.store.users import UserRow

__all__ = ["Enrollment", "UserProfile", "UserRow"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Enrollment:
    """What a user can verify with, as track and get_user report it."""

    enrolled_methods: list[str]
    allowed_methods: list[str]

    @property
    def is_enrolled(self) -> bool:
        return bool(self.enrolled_methods)

    @property
    def default_method(self) -> str | None:
        return self.enrolled_methods[0] if self.enrolled_methods else None


@dataclass(frozen=True, kw_only=True, slots=True)
class UserProfile:
    user_id: str
    user: UserRow | None
    enrollment: Enrollment


ALLOWED_METHODS_SETTING = "allowedVerificationMethods"


def allowed_methods(tenant: TenantRow) -> list[str]:
    configured = tenant.settings.get(ALLOWED_METHODS_SETTING)
    return list(configured) if configured else [method.value for method in DEFAULT_ALLOWED_METHODS]


async def set_allowed_methods(db: Db, tenant_id: str, methods: Sequence[str]) -> list[str]:
    """Set the methods a tenant allows (empty: back to the default); a method a route
    serves is refused there, 403, when its tenant does not allow it."""
    chosen: list[str] = []
    for name in methods:
        try:
            method = VerificationMethod(name.strip().upper())
        except ValueError:
            known = ", ".join(method.value for method in VerificationMethod)
            raise InvalidRequest(f"unknown verification method {name!r}: use {known}") from None
        if method.value not in chosen:
            chosen.append(method.value)
    tenant = await tenants.get_tenant(db, tenant_id)
    settings = {k: v for k, v in tenant.settings.items() if k != ALLOWED_METHODS_SETTING}
    if chosen:
        settings[ALLOWED_METHODS_SETTING] = chosen
    return allowed_methods(await tenants.save_settings(db, tenant_id, settings))


async def enrollment(db: Db, tenant: TenantRow, user_id: str) -> Enrollment:
    enrolled = await authenticator_store.enrolled_methods(db, tenant.id, user_id)
    return Enrollment(enrolled_methods=enrolled, allowed_methods=allowed_methods(tenant))


async def get_profile(db: Db, tenant: TenantRow, user_id: str) -> UserProfile:
    """A user as the backend sees it; an unknown user is simply not enrolled."""
    user = await user_store.get_user(db, tenant.id, user_id)
    return UserProfile(user_id=user_id, user=user, enrollment=await enrollment(db, tenant, user_id))


async def update_user(db: Db, tenant: TenantRow, user_id: str, changes: dict[str, Any]) -> UserRow:
    """Set the given attributes, creating the user if needed. A changed email or phone number
    stops being verified unless the same request says it is. An email or phone number is
    stored normalised when valid, else as given (`addresses.tidy_attribute`)."""
    if changes.get("email") is not None:
        changes = {**changes, "email": addresses.tidy_attribute(changes["email"], phone=False)}
    if changes.get("phone_number") is not None:
        tidied = addresses.tidy_attribute(changes["phone_number"], phone=True)
        changes = {**changes, "phone_number": tidied}
    user = await user_store.ensure_user(db, tenant.id, user_id)
    values: dict[str, Any] = {}
    if "email" in changes and changes["email"] != user.email:
        values["email_verified"] = False
    if "phone_number" in changes and changes["phone_number"] != user.phone_number:
        values["phone_number_verified"] = False
    for field, value in changes.items():
        if field in ("email_verified", "phone_number_verified"):
            value = bool(value)  # null means "not verified"
        values[field] = value
    return await user_store.update_user(db, tenant.id, user_id, values)


async def delete_user(
    db: Db, tenant: TenantRow, user_id: str, *, actor: audit.Actor | None = None
) -> None:
    """Delete a user with their authenticators and actions; with an `actor`, record it in the
    audit log when there was such a user (callers that record it themselves pass none)."""
    deleted = await user_store.delete_user(db, tenant.id, user_id)
    if deleted and actor is not None:
        await audit.record(
            db, actor, "user.deleted", target_type="user", target_id=user_id, tenant_id=tenant.id
        )


async def query_users(
    db: Db,
    tenant: TenantRow,
    *,
    username: str | None = None,
    email: str | None = None,
    phone_number: str | None = None,
    after_user_id: str | None = None,
    limit: int = 100,
) -> tuple[Sequence[UserRow], str | None]:
    """A page of users matching every given filter, and the cursor for the next page."""
    users = await user_store.find_users(
        db,
        tenant.id,
        username=username,
        email=email,
        phone_number=phone_number,
        after_user_id=after_user_id,
        limit=limit + 1,
    )
    if len(users) > limit:
        return users[:limit], users[limit - 1].user_id
    return users, None


async def list_authenticators(
    db: Db, tenant: TenantRow, user_id: str
) -> list[tuple[AuthenticatorRow, PasskeyCredentialRow | None]]:
    """A user's verified authenticators in creation order, each with its passkey credential
    if any. An email, phone or TOTP being enrolled (not verified yet) is not listed, as
    Authsignal lists none: it is not enrolled."""
    found = await authenticator_store.find_authenticators(db, tenant.id, user_id)
    listed = [authenticator for authenticator in found if authenticator.verified_at is not None]
    passkeys = await passkey_store.credentials_by_authenticator(
        db, tenant.id, [authenticator.id for authenticator in listed]
    )
    return [(authenticator, passkeys.get(authenticator.id)) for authenticator in listed]


async def enroll_verified_authenticator(
    db: Db,
    tenant: TenantRow,
    user_id: str,
    *,
    method: VerificationMethod,
    email: str | None,
    phone_number: str | None,
    is_default: bool,
    actor: audit.Actor,
) -> AuthenticatorRow:
    """Enroll an email or phone authenticator the backend has already verified itself
    (recorded in the audit log as `actor`'s)."""
    contact_field = DIRECTLY_ENROLLABLE.get(method)
    if contact_field is None:
        # RECOVERY_CODE too, through services/recovery_codes (its answer carries the codes).
        names = ", ".join(sorted([*DIRECTLY_ENROLLABLE, VerificationMethod.RECOVERY_CODE]))
        raise InvalidRequest(
            f"{method.value} cannot be enrolled by the backend; use one of {names}. "
            "Passkeys and push devices are enrolled by the user's app through the Client API."
        )
    contact = email if contact_field == "email" else phone_number
    if not contact:
        raise InvalidRequest(
            f"{method.value} needs {'email' if contact_field == 'email' else 'phoneNumber'}"
        )
    user = await user_store.ensure_user(db, tenant.id, user_id)
    return await add_verified_authenticator(
        db,
        tenant,
        user,
        method=method,
        actor=actor,
        email=contact if contact_field == "email" else None,
        phone_number=contact if contact_field == "phone_number" else None,
        is_default=is_default,
    )


async def add_verified_authenticator(
    db: Db,
    tenant: TenantRow,
    user: UserRow,
    *,
    method: VerificationMethod,
    actor: audit.Actor,
    email: str | None = None,
    phone_number: str | None = None,
    is_default: bool = False,
) -> AuthenticatorRow:
    """Insert an authenticator verified now, under the user's names, and record its addition
    in the audit log as `actor`'s."""
    added = await authenticator_store.insert_authenticator(
        db,
        {
            "tenant_id": tenant.id,
            "user_id": user.user_id,
            "verification_method": method.value,
            "email": email,
            "phone_number": phone_number,
            "username": user.username,
            "display_name": user.display_name,
            "is_default": is_default,
            "verified_at": utcnow(),
        },
    )
    await audit.authenticator_changed(
        db,
        actor,
        added=True,
        tenant_id=tenant.id,
        user_id=user.user_id,
        authenticator_id=added.id,
        verification_method=added.verification_method,
    )
    return added


async def delete_authenticator(
    db: Db,
    tenant: TenantRow,
    user_id: str,
    authenticator_id: str,
    *,
    actor: audit.Actor | None = None,
) -> None:
    """Remove one of the user's authenticators; with an `actor`, record it in the audit log
    (callers that record the change themselves pass none)."""
    method = None
    if actor is not None:
        listed = await authenticator_store.find_authenticators(db, tenant.id, user_id)
        method = next((a.verification_method for a in listed if a.id == authenticator_id), None)
    deleted = await authenticator_store.delete_authenticator(
        db, tenant.id, user_id, authenticator_id
    )
    if not deleted:
        raise NotFound(f"user {user_id!r} has no authenticator {authenticator_id!r}")
    if actor is not None:
        await audit.authenticator_changed(
            db,
            actor,
            added=False,
            tenant_id=tenant.id,
            user_id=user_id,
            authenticator_id=authenticator_id,
            verification_method=method,
        )
