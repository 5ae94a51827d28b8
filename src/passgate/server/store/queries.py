"""Every query the services make, so SQL stays in one place and each uses an index."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from passgate.server.store import tenants
from passgate.server.store.tables import (
    Action,
    Authenticator,
    Base,
    PasskeyCredential,
    Tenant,
    User,
    utcnow,
)
from passgate.server.store.tenants import TenantRow


def _insert(session: AsyncSession, table: type[Base]) -> Any:
    """The dialect's INSERT, which has ON CONFLICT on both backends."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    return insert(table)


async def tenant_by_secret_hash(session: AsyncSession, digest: str) -> Tenant | None:
    """The tenant whose current or previous secret key has this hash (both indexed; whether
    the previous one is still in its grace period is the caller's rule)."""
    query = select(Tenant).where(
        or_(Tenant.secret_key_hash == digest, Tenant.previous_secret_key_hash == digest)
    )
    return await session.scalar(query.limit(1))


async def tenants_by_rp_id(session: AsyncSession, rp_id: str) -> Sequence[TenantRow]:
    return await tenants.find_tenants_by_rp_id(await tenants.as_db(session), rp_id)


async def tenant_origins(session: AsyncSession) -> list[tuple[str, list[str]]]:
    """(id, origins) of every tenant: what the CORS index is built from."""
    rows = await session.execute(select(Tenant.id, Tenant.origins))
    return [(tenant_id, list(origins or ())) for tenant_id, origins in rows]


async def count_tenant_passkeys(session: AsyncSession, tenant_id: str) -> int:
    found = await session.scalar(
        select(func.count())
        .select_from(PasskeyCredential)
        .where(PasskeyCredential.tenant_id == tenant_id)
    )
    return int(found or 0)


async def all_tenants(session: AsyncSession) -> Sequence[Tenant]:
    return (await session.scalars(select(Tenant).order_by(Tenant.created_at))).all()


async def lock_tenants(session: AsyncSession, tenant_ids: Sequence[str]) -> Sequence[Tenant]:
    """These tenants' rows, locked until the transaction ends and read afresh (a process
    that waited for the lock sees what the holder wrote)."""
    query = select(Tenant).where(Tenant.id.in_(tenant_ids)).with_for_update()
    return (await session.scalars(query.execution_options(populate_existing=True))).all()


async def compact(engine: AsyncEngine) -> None:
    """Rewrite the database so deleted or overwritten values leave no copies in free pages:
    VACUUM on SQLite (and a WAL checkpoint), VACUUM FULL of `tenants` on PostgreSQL."""
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if path and path != ":memory:":
            await asyncio.to_thread(_vacuum_sqlite, path)
        return
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql("VACUUM FULL tenants")


def _vacuum_sqlite(path: str) -> None:
    connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        connection.execute("VACUUM")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


# Users -----------------------------------------------------------------------------------


async def get_user(session: AsyncSession, tenant_id: str, user_id: str) -> User | None:
    return await session.get(User, (tenant_id, user_id))


async def ensure_user(session: AsyncSession, tenant_id: str, user_id: str) -> User:
    """The user, created if missing; safe when two requests create the same user at once."""
    user = await get_user(session, tenant_id, user_id)
    if user is not None:
        return user
    now = utcnow()
    values: dict[str, Any] = {
        "tenant_id": tenant_id,
        "user_id": user_id,
        "handle": str(uuid.uuid4()),
        "email_verified": False,
        "phone_number_verified": False,
        "created_at": now,
        "updated_at": now,
    }
    await session.execute(_insert(session, User).values(values).on_conflict_do_nothing())
    user = await get_user(session, tenant_id, user_id)
    assert user is not None
    return user


async def find_users(
    session: AsyncSession,
    tenant_id: str,
    *,
    username: str | None,
    email: str | None,
    phone_number: str | None,
    after_user_id: str | None,
    limit: int,
) -> Sequence[User]:
    query = select(User).where(User.tenant_id == tenant_id)
    if username is not None:
        query = query.where(User.username == username)
    if email is not None:
        query = query.where(User.email == email)
    if phone_number is not None:
        query = query.where(User.phone_number == phone_number)
    if after_user_id is not None:
        query = query.where(User.user_id > after_user_id)
    return (await session.scalars(query.order_by(User.user_id).limit(limit))).all()


async def delete_user(session: AsyncSession, tenant_id: str, user_id: str) -> bool:
    """Delete a user with everything hanging off it (its authenticators, their passkey
    credentials and push devices, its actions and their push challenges: the foreign keys
    cascade). True if the user existed."""
    result = await session.execute(
        delete(User).where(User.tenant_id == tenant_id, User.user_id == user_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# Authenticators --------------------------------------------------------------------------


async def user_authenticators(
    session: AsyncSession, tenant_id: str, user_id: str
) -> Sequence[Authenticator]:
    query = (
        select(Authenticator)
        .where(Authenticator.tenant_id == tenant_id, Authenticator.user_id == user_id)
        .order_by(Authenticator.created_at, Authenticator.id)
    )
    return (await session.scalars(query)).all()


async def enrolled_methods(session: AsyncSession, tenant_id: str, user_id: str) -> list[str]:
    query = (
        select(Authenticator.verification_method)
        .where(Authenticator.tenant_id == tenant_id, Authenticator.user_id == user_id)
        .distinct()
        .order_by(Authenticator.verification_method)
    )
    return list((await session.scalars(query)).all())


async def delete_authenticator(
    session: AsyncSession, tenant_id: str, user_id: str, authenticator_id: str
) -> bool:
    """Delete an authenticator with its passkey credential or push device (the foreign keys
    cascade). True if the user had it."""
    result = await session.execute(
        delete(Authenticator).where(
            Authenticator.id == authenticator_id,
            Authenticator.tenant_id == tenant_id,
            Authenticator.user_id == user_id,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# Actions ---------------------------------------------------------------------------------


async def get_action(
    session: AsyncSession, tenant_id: str, user_id: str, action_code: str, idempotency_key: str
) -> Action | None:
    query = select(Action).where(
        Action.tenant_id == tenant_id,
        Action.user_id == user_id,
        Action.action_code == action_code,
        Action.idempotency_key == idempotency_key,
    )
    return await session.scalar(query)


async def find_actions(
    session: AsyncSession,
    tenant_id: str,
    user_id: str,
    *,
    from_date: datetime | None,
    action_codes: Sequence[str],
    state: str | None,
    limit: int,
) -> Sequence[Action]:
    query = select(Action).where(Action.tenant_id == tenant_id, Action.user_id == user_id)
    if from_date is not None:
        query = query.where(Action.created_at >= from_date)
    if action_codes:
        query = query.where(Action.action_code.in_(action_codes))
    if state is not None:
        query = query.where(Action.state == state)
    query = query.order_by(Action.created_at.desc(), Action.id).limit(limit)
    return (await session.scalars(query)).all()


async def insert_action(session: AsyncSession, values: dict[str, Any]) -> Action | None:
    """Insert an action; None when one with the same idempotency key already exists."""
    statement = _insert(session, Action).values(values).on_conflict_do_nothing().returning(Action)
    action: Action | None = await session.scalar(statement)
    return action


async def redeem_action(
    session: AsyncSession,
    tenant_id: str,
    user_id: str,
    action_code: str,
    idempotency_key: str,
    *,
    states: Sequence[str],
    now: datetime,
) -> Action | None:
    """Atomically mark an action's result as validated, if it is in one of `states` and was
    never validated: the action for exactly one caller, ever; None for everyone else."""
    statement = (
        update(Action)
        .where(
            Action.tenant_id == tenant_id,
            Action.user_id == user_id,
            Action.action_code == action_code,
            Action.idempotency_key == idempotency_key,
            Action.state.in_(states),
            Action.validated_at.is_(None),
        )
        .values(validated_at=now)
        .returning(Action)
    )
    return await session.scalar(statement)


async def settle_action(
    session: AsyncSession,
    action_id: str,
    *,
    state: str,
    from_state: str,
    verification_method: str,
    authenticator_id: str,
    now: datetime,
) -> bool:
    """Move an action from `from_state` to `state`, atomically: True for exactly one caller,
    False when the action was no longer in `from_state`."""
    result = await session.execute(
        update(Action)
        .where(Action.id == action_id, Action.state == from_state)
        .values(
            state=state,
            state_updated_at=now,
            updated_at=now,
            verification_method=verification_method,
            verified_by_authenticator_id=authenticator_id,
        )
        .execution_options(synchronize_session="fetch")
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def mark_authenticator_added(
    session: AsyncSession, action_id: str, now: datetime, *, unredeemed: bool
) -> bool:
    """Record, once, that this action's token added an authenticator: True for exactly one
    caller. With `unredeemed`, only while /validate has not redeemed the action either."""
    statement = update(Action).where(
        Action.id == action_id, Action.authenticator_added_at.is_(None)
    )
    if unredeemed:
        statement = statement.where(Action.validated_at.is_(None))
    result = await session.execute(
        statement.values(authenticator_added_at=now).execution_options(synchronize_session="fetch")
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
