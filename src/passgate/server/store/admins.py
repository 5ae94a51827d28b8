"""Queries of the admin console: admins, their passkeys, enrolment links, sessions and
single-use WebAuthn challenges. Each "use once" is one conditional UPDATE."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.store import challenges
from passgate.server.store.tables import (
    Admin,
    AdminChallenge,
    AdminLink,
    AdminPasskey,
    AdminSession,
)

# Admins ----------------------------------------------------------------------------------


async def admin_by_email(session: AsyncSession, email: str) -> Admin | None:
    return await session.scalar(select(Admin).where(Admin.email == email))


async def all_admins(session: AsyncSession) -> Sequence[Admin]:
    return (await session.scalars(select(Admin).order_by(Admin.created_at, Admin.email))).all()


async def passkey_counts(session: AsyncSession) -> dict[str, int]:
    query = select(AdminPasskey.admin_id, func.count()).group_by(AdminPasskey.admin_id)
    return {admin_id: int(count) for admin_id, count in (await session.execute(query)).all()}


async def delete_admin(session: AsyncSession, admin_id: str) -> bool:
    """Delete an admin; their passkeys, links, sessions and challenges go with them (FKs)."""
    result = await session.execute(delete(Admin).where(Admin.id == admin_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


# Passkeys --------------------------------------------------------------------------------


async def passkeys_of(session: AsyncSession, admin_id: str) -> Sequence[AdminPasskey]:
    query = (
        select(AdminPasskey)
        .where(AdminPasskey.admin_id == admin_id)
        .order_by(AdminPasskey.created_at, AdminPasskey.id)
    )
    return (await session.scalars(query)).all()


async def passkey_by_credential(
    session: AsyncSession, credential_id: str
) -> tuple[AdminPasskey, Admin] | None:
    query = (
        select(AdminPasskey, Admin)
        .join(Admin, Admin.id == AdminPasskey.admin_id)
        .where(AdminPasskey.credential_id == credential_id)
    )
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row is not None else None


async def record_passkey_use(
    session: AsyncSession, passkey_id: str, sign_count: int, now: datetime
) -> None:
    await session.execute(
        update(AdminPasskey)
        .where(AdminPasskey.id == passkey_id)
        .values(sign_count=sign_count, last_used_at=now)
        .execution_options(synchronize_session=False)
    )


async def delete_passkey(session: AsyncSession, admin_id: str, passkey_id: str) -> bool:
    result = await session.execute(
        delete(AdminPasskey).where(AdminPasskey.id == passkey_id, AdminPasskey.admin_id == admin_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# Enrolment links -------------------------------------------------------------------------


async def link_by_hash(session: AsyncSession, token_hash: str) -> AdminLink | None:
    return await session.scalar(select(AdminLink).where(AdminLink.token_hash == token_hash))


async def use_link(session: AsyncSession, link_id: str, now: datetime) -> bool:
    """Atomically mark an unused, unexpired link used: True for exactly one caller, ever."""
    result = await session.execute(
        update(AdminLink)
        .where(AdminLink.id == link_id, AdminLink.used_at.is_(None), AdminLink.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


# Sessions --------------------------------------------------------------------------------


async def session_by_hash(
    session: AsyncSession, token_hash: str
) -> tuple[AdminSession, Admin] | None:
    query = (
        select(AdminSession, Admin)
        .join(Admin, Admin.id == AdminSession.admin_id)
        .where(AdminSession.token_hash == token_hash)
    )
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row is not None else None


async def touch_session(session: AsyncSession, session_id: str, now: datetime) -> None:
    await session.execute(
        update(AdminSession)
        .where(AdminSession.id == session_id)
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )


async def live_sessions(
    session: AsyncSession, admin_id: str, *, now: datetime, idle_since: datetime
) -> Sequence[AdminSession]:
    """An admin's sessions that are neither revoked, expired nor idle too long."""
    query = (
        select(AdminSession)
        .where(
            AdminSession.admin_id == admin_id,
            AdminSession.revoked_at.is_(None),
            AdminSession.expires_at > now,
            AdminSession.last_seen_at > idle_since,
        )
        .order_by(AdminSession.last_seen_at.desc())
    )
    return (await session.scalars(query)).all()


async def revoke_sessions(
    session: AsyncSession, admin_id: str, now: datetime, session_id: str | None = None
) -> int:
    """Revoke one of an admin's sessions, or all of them; returns how many were live."""
    statement = update(AdminSession).where(
        AdminSession.admin_id == admin_id, AdminSession.revoked_at.is_(None)
    )
    if session_id is not None:
        statement = statement.where(AdminSession.id == session_id)
    result = await session.execute(
        statement.values(revoked_at=now).execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# Challenges ------------------------------------------------------------------------------


async def consume_challenge(
    session: AsyncSession, challenge_id: str, purpose: str, now: datetime
) -> AdminChallenge | None:
    """Use up a pending, unexpired challenge: for exactly one caller, ever."""
    return await challenges.consume(session, AdminChallenge, challenge_id, purpose, now)
