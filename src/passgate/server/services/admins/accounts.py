"""Admins: people who operate this Passgate server in its console. They are not a tenant and
have no password: each signs in with a passkey, first made from a one-time enrolment link
that `passgate admin create` (or `admin link`, for an admin who lost their passkeys) prints.

A link is a random token whose SHA-256 alone is stored; it is valid for 15 minutes and works
once (the registration that uses it marks it used in one conditional UPDATE)."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.services import audit
from passgate.server.services.errors import Conflict, InvalidRequest, NotFound
from passgate.server.store import admins as store
from passgate.server.store.tables import Admin, AdminLink, AdminPasskey, utcnow

LINK_LIFETIME = timedelta(minutes=15)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


@dataclass(frozen=True, kw_only=True, slots=True)
class AdminSummary:
    admin: Admin
    passkeys: int


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def enrolment_url(public_url: str, token: str) -> str:
    """Where the admin makes a passkey: the console's enrolment page with the link's token."""
    return f"{public_url.rstrip('/')}/admin/enrol?{urlencode({'token': token})}"


def _normal_email(email: str) -> str:
    text = email.strip().lower()
    if len(text) > 320 or not EMAIL.match(text):
        raise InvalidRequest(f"{email!r} is not an email address")
    return text


async def create_admin(session: AsyncSession, actor: audit.Actor, email: str) -> tuple[Admin, str]:
    """A new admin without passkeys yet, and the token of their first enrolment link."""
    address = _normal_email(email)
    if await store.admin_by_email(session, address) is not None:
        raise Conflict(f"there is already an admin {address}")
    admin = Admin(
        id=str(uuid.uuid4()), email=address, handle=str(uuid.uuid4()), created_at=utcnow()
    )
    session.add(admin)
    try:
        await session.flush()
    except IntegrityError as exc:  # created by a racing command
        raise Conflict(f"there is already an admin {address}") from exc
    token = await _new_link(session, admin)
    await audit.record(session, actor, "admin.created", target_type="admin", target_id=address)
    return admin, token


async def new_link(session: AsyncSession, actor: audit.Actor, email: str) -> str:
    """Another enrolment link for an existing admin (who lost their passkeys, say)."""
    admin = await get_admin_by_email(session, email)
    token = await _new_link(session, admin)
    await audit.record(
        session, actor, "admin.link.created", target_type="admin", target_id=admin.email
    )
    return token


async def _new_link(session: AsyncSession, admin: Admin) -> str:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        AdminLink(
            id=str(uuid.uuid4()),
            admin_id=admin.id,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + LINK_LIFETIME,
        )
    )
    await session.flush()
    return token


async def check_link(session: AsyncSession, token: str) -> tuple[AdminLink, Admin]:
    """The link and its admin when the link may still be used, else `InvalidRequest` saying
    why (unknown, used or expired). Does not use it up."""
    link = await store.link_by_hash(session, hash_token(token)) if token else None
    if link is None:
        raise InvalidRequest("This enrolment link is not valid.", error_code="link_unknown")
    if link.used_at is not None:
        raise InvalidRequest(
            "This enrolment link has already been used. Ask for a new one "
            "(passgate admin link --email ...).",
            error_code="link_used",
        )
    if link.expires_at <= utcnow():
        raise InvalidRequest(
            "This enrolment link has expired (links last 15 minutes). Ask for a new one "
            "(passgate admin link --email ...).",
            error_code="link_expired",
        )
    admin = await session.get(Admin, link.admin_id)
    if admin is None:  # removed meanwhile; its links went with it, so only in a race
        raise InvalidRequest("This enrolment link is not valid.", error_code="link_unknown")
    return link, admin


async def get_admin(session: AsyncSession, admin_id: str) -> Admin:
    admin = await session.get(Admin, admin_id)
    if admin is None:
        raise NotFound(f"no admin with id {admin_id!r}")
    return admin


async def get_admin_by_email(session: AsyncSession, email: str) -> Admin:
    admin = await store.admin_by_email(session, email.strip().lower())
    if admin is None:
        raise NotFound(f"no admin {email.strip()!r}")
    return admin


async def list_admins(session: AsyncSession) -> list[AdminSummary]:
    counts = await store.passkey_counts(session)
    return [
        AdminSummary(admin=admin, passkeys=counts.get(admin.id, 0))
        for admin in await store.all_admins(session)
    ]


async def remove_admin(session: AsyncSession, actor: audit.Actor, email: str) -> None:
    """Remove an admin with their passkeys and sessions: they are signed out at once."""
    admin = await get_admin_by_email(session, email)
    await store.delete_admin(session, admin.id)
    await audit.record(session, actor, "admin.removed", target_type="admin", target_id=admin.email)


async def passkeys(session: AsyncSession, admin_id: str) -> Sequence[AdminPasskey]:
    return await store.passkeys_of(session, admin_id)


async def remove_passkey(
    session: AsyncSession, actor: audit.Actor, admin: Admin, passkey_id: str
) -> None:
    """Remove one of an admin's passkeys, never the last (they could not sign in again
    without a new link)."""
    if len(await store.passkeys_of(session, admin.id)) <= 1:
        raise InvalidRequest(
            "This is the admin's only passkey; add another before removing it.",
            error_code="last_passkey",
        )
    if not await store.delete_passkey(session, admin.id, passkey_id):
        raise NotFound("no such passkey")
    await audit.record(
        session,
        actor,
        "admin.passkey.removed",
        target_type="admin",
        target_id=admin.email,
        details={"passkeyId": passkey_id},
    )
