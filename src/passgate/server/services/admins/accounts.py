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

from passgate.server.services import audit
from passgate.server.services.errors import Conflict, InvalidRequest, NotFound
from passgate.server.store import admins as store
from passgate.server.store.admins import AdminLinkRow, AdminPasskeyRow
from passgate.server.store.admins import AdminRow as AdminRow
from passgate.server.store.db import Db
from passgate.server.store.tables import utcnow

LINK_LIFETIME = timedelta(minutes=15)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


@dataclass(frozen=True, kw_only=True, slots=True)
class AdminSummary:
    admin: AdminRow
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


async def create_admin(db: Db, actor: audit.Actor, email: str) -> tuple[AdminRow, str]:
    """A new admin without passkeys yet, and the token of their first enrolment link."""
    address = _normal_email(email)
    admin = AdminRow(
        id=str(uuid.uuid4()), email=address, handle=str(uuid.uuid4()), created_at=utcnow()
    )
    # The email is unique: one INSERT checks it, a racing command's admin included.
    if not await store.insert_admin(db, admin):
        raise Conflict(f"there is already an admin {address}")
    token = await _new_link(db, admin)
    await audit.record(db, actor, "admin.created", target_type="admin", target_id=address)
    return admin, token


async def new_link(db: Db, actor: audit.Actor, email: str) -> str:
    """Another enrolment link for an existing admin (who lost their passkeys, say)."""
    admin = await get_admin_by_email(db, email)
    token = await _new_link(db, admin)
    await audit.record(db, actor, "admin.link.created", target_type="admin", target_id=admin.email)
    return token


async def _new_link(db: Db, admin: AdminRow) -> str:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    link = AdminLinkRow(
        id=str(uuid.uuid4()),
        admin_id=admin.id,
        token_hash=hash_token(token),
        created_at=now,
        expires_at=now + LINK_LIFETIME,
        used_at=None,
    )
    await store.insert_link(db, link)
    return token


async def check_link(db: Db, token: str) -> tuple[AdminLinkRow, AdminRow]:
    """The link and its admin when the link may still be used, else `InvalidRequest` saying
    why (unknown, used or expired). Does not use it up."""
    found = await store.get_link_by_hash(db, hash_token(token)) if token else None
    if found is None:  # an admin's removal takes their links with it
        raise InvalidRequest("This enrolment link is not valid.", error_code="link_unknown")
    link, admin = found
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
    return link, admin


async def get_admin(db: Db, admin_id: str) -> AdminRow:
    admin = await store.get_admin(db, admin_id)
    if admin is None:
        raise NotFound(f"no admin with id {admin_id!r}")
    return admin


async def get_admin_by_email(db: Db, email: str) -> AdminRow:
    admin = await store.get_admin_by_email(db, email.strip().lower())
    if admin is None:
        raise NotFound(f"no admin {email.strip()!r}")
    return admin


async def list_admins(db: Db) -> list[AdminSummary]:
    counts = await store.passkey_counts(db)
    return [
        AdminSummary(admin=admin, passkeys=counts.get(admin.id, 0))
        for admin in await store.find_admins(db)
    ]


async def remove_admin(db: Db, actor: audit.Actor, email: str) -> None:
    """Remove an admin with their passkeys and sessions: they are signed out at once."""
    admin = await get_admin_by_email(db, email)
    await store.delete_admin(db, admin.id)
    await audit.record(db, actor, "admin.removed", target_type="admin", target_id=admin.email)


async def passkeys(db: Db, admin_id: str) -> Sequence[AdminPasskeyRow]:
    return await store.find_passkeys(db, admin_id)


async def remove_passkey(db: Db, actor: audit.Actor, admin: AdminRow, passkey_id: str) -> None:
    """Remove one of an admin's passkeys, never the last (they could not sign in again
    without a new link)."""
    if len(await store.find_passkeys(db, admin.id)) <= 1:
        raise InvalidRequest(
            "This is the admin's only passkey; add another before removing it.",
            error_code="last_passkey",
        )
    if not await store.delete_passkey(db, admin.id, passkey_id):
        raise NotFound("no such passkey")
    await audit.record(
        db,
        actor,
        "admin.passkey.removed",
        target_type="admin",
        target_id=admin.email,
        details={"passkeyId": passkey_id},
    )
