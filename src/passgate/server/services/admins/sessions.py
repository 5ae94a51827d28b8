"""Signed-in console sessions. The cookie holds a random token and the row only its SHA-256,
so a copy of the database signs nobody in. A session ends when it is revoked (sign-out, or
by an admin), when it has been idle for `idle`, or `absolute` after sign-in, whichever is
first.

Every form of the console carries a CSRF token derived from the session's token by HMAC:
another site can neither read it nor compute it, and it changes with each sign-in."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from passgate.server.services import audit
from passgate.server.services.errors import Forbidden, NotFound, Unauthorized
from passgate.server.settings import Settings
from passgate.server.store import admins as store
from passgate.server.store.admins import AdminRow, AdminSessionRow
from passgate.server.store.db import Db
from passgate.server.store.tables import utcnow

# Writing last_seen_at on every page view would double the console's writes; a minute's
# precision is plenty for an idle limit counted in minutes.
TOUCH_EVERY = timedelta(minutes=1)
_CSRF_CONTEXT = b"passgate console csrf"


class NotSignedIn(Unauthorized):
    """No live session: sign in (again)."""

    def __init__(self, description: str = "Sign in to use the console.") -> None:
        super().__init__(description, error_code="not_signed_in")


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionLimits:
    idle: timedelta
    absolute: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionLimits:
        return cls(
            idle=timedelta(minutes=settings.console_idle_minutes),
            absolute=timedelta(hours=settings.console_session_hours),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class SignedIn:
    """The admin behind a request, their session, and the CSRF token its forms carry."""

    admin: AdminRow
    session_id: str
    csrf_token: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token_for(token: str) -> str:
    digest = hmac.new(token.encode(), _CSRF_CONTEXT, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def start(
    db: Db,
    admin: AdminRow,
    limits: SessionLimits,
    *,
    ip_address: str | None,
    user_agent: str | None,
) -> str:
    """Open a session for an admin who just proved a passkey; returns the cookie's token."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = AdminSessionRow(
        id=str(uuid.uuid4()),
        admin_id=admin.id,
        token_hash=_hash(token),
        created_at=now,
        expires_at=now + limits.absolute,
        last_seen_at=now,
        revoked_at=None,
        ip_address=(ip_address or "")[:64] or None,
        user_agent=(user_agent or "")[:1024] or None,
    )
    await store.insert_session(db, row)
    await audit.record(
        db,
        audit.Actor(type="admin", id=admin.email, source=ip_address),
        "admin.signed_in",
        target_type="admin",
        target_id=admin.email,
    )
    return token


async def resolve(db: Db, token: str | None, limits: SessionLimits) -> SignedIn:
    """The signed-in admin of a session token, or `NotSignedIn`."""
    found = await store.get_session_by_hash(db, _hash(token)) if token else None
    if found is None:
        raise NotSignedIn()
    row, admin = found
    now = utcnow()
    if row.revoked_at is not None:
        raise NotSignedIn("This session was signed out. Sign in again.")
    if now >= row.expires_at or now - row.last_seen_at >= limits.idle:
        raise NotSignedIn("Your session has expired. Sign in again.")
    if now - row.last_seen_at >= TOUCH_EVERY:
        await store.touch_session(db, row.id, now)
    assert token is not None
    return SignedIn(admin=admin, session_id=row.id, csrf_token=csrf_token_for(token))


def check_csrf(signed_in: SignedIn, presented: str | None) -> None:
    """Refuse a state-changing request whose CSRF token is not this session's."""
    if not presented or not hmac.compare_digest(signed_in.csrf_token, presented):
        raise Forbidden(
            "The form's security token is missing or stale. Reload the page and try again.",
            error_code="csrf_refused",
        )


async def sign_out(db: Db, signed_in: SignedIn, source: str | None) -> None:
    await store.revoke_sessions(db, signed_in.admin.id, utcnow(), signed_in.session_id)
    actor = audit.Actor(type="admin", id=signed_in.admin.email, source=source)
    await audit.record(
        db, actor, "admin.signed_out", target_type="admin", target_id=signed_in.admin.email
    )


async def live_sessions(db: Db, admin_id: str, limits: SessionLimits) -> Sequence[AdminSessionRow]:
    now = utcnow()
    return await store.find_live_sessions(db, admin_id, now=now, idle_since=now - limits.idle)


async def revoke(db: Db, actor: audit.Actor, admin: AdminRow, session_id: str | None = None) -> int:
    """Revoke one of `admin`'s sessions (`session_id`), or all of them; each is signed out
    at its next request. Returns how many were revoked."""
    revoked = await store.revoke_sessions(db, admin.id, utcnow(), session_id)
    if session_id is not None and not revoked:
        raise NotFound("no such live session")
    await audit.record(
        db,
        actor,
        "admin.sessions.revoked",
        target_type="admin",
        target_id=admin.email,
        details={"sessionId": session_id} if session_id else {"all": True, "count": revoked},
    )
    return revoked
