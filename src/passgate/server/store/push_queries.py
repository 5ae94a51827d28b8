"""The queries of push authentication: devices, their spent one-time messages, and
challenges."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.store.queries import _insert
from passgate.server.store.tables import (
    Action,
    Authenticator,
    PushChallenge,
    PushDevice,
    PushUsedNonce,
    User,
)

PENDING = "pending"
REFUSED = "refused"


# Devices ---------------------------------------------------------------------------------


async def device_by_key(
    session: AsyncSession, tenant_id: str, public_key: str
) -> tuple[PushDevice, Authenticator] | None:
    query = (
        select(PushDevice, Authenticator)
        .join(Authenticator, Authenticator.id == PushDevice.id)
        .where(PushDevice.tenant_id == tenant_id, PushDevice.public_key == public_key)
    )
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row else None


async def user_devices(
    session: AsyncSession, tenant_id: str, user_id: str, now: datetime
) -> Sequence[PushDevice]:
    """The user's devices whose credential has not expired."""
    query = select(PushDevice).where(
        PushDevice.tenant_id == tenant_id,
        PushDevice.user_id == user_id,
        or_(PushDevice.expires_at.is_(None), PushDevice.expires_at > now),
    )
    return (await session.scalars(query.order_by(PushDevice.id))).all()


# Spent one-time messages (services/push/nonces) -----------------------------------------


async def count_spent_nonces(session: AsyncSession, low: str, high: str) -> int:
    """How many spent messages have a digest between `low` and `high` (inclusive): one device's
    spent messages of one time slot, whose digests share a prefix and end in a serial number."""
    query = select(func.count()).where(PushUsedNonce.digest >= low, PushUsedNonce.digest <= high)
    return int(await session.scalar(query) or 0)


async def spend_nonce(
    session: AsyncSession, digest: str, tenant_id: str, expires_at: datetime
) -> bool:
    """Record a message as spent: True for exactly one caller, False for a replay."""
    result = await session.execute(
        _insert(session, PushUsedNonce)
        .values(digest=digest, tenant_id=tenant_id, expires_at=expires_at)
        .on_conflict_do_nothing()
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def prune_used_nonces(session: AsyncSession, now: datetime) -> int:
    """Forget spent messages that have expired (they are refused for their expiry anyway)."""
    result = await session.execute(
        delete(PushUsedNonce)
        .where(PushUsedNonce.expires_at <= now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# Challenges ------------------------------------------------------------------------------


async def get_challenge(
    session: AsyncSession, tenant_id: str, challenge_id: str
) -> tuple[PushChallenge, Action] | None:
    query = (
        select(PushChallenge, Action)
        .join(Action, Action.id == PushChallenge.action_id)
        .where(PushChallenge.id == challenge_id, PushChallenge.tenant_id == tenant_id)
    )
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row else None


async def pending_challenge(
    session: AsyncSession, tenant_id: str, user_id: str, device_id: str, now: datetime
) -> tuple[PushChallenge, Action] | None:
    """The newest unexpired, undecided challenge this device may answer."""
    query = (
        select(PushChallenge, Action)
        .join(Action, Action.id == PushChallenge.action_id)
        .where(
            PushChallenge.tenant_id == tenant_id,
            PushChallenge.user_id == user_id,
            PushChallenge.state == PENDING,
            PushChallenge.expires_at > now,
            or_(
                PushChallenge.authenticator_id.is_(None),
                PushChallenge.authenticator_id == device_id,
            ),
        )
        .order_by(PushChallenge.created_at.desc())
        .limit(1)
    )
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row else None


async def action_challenge(
    session: AsyncSession, action_id: str, *, pending_at: datetime | None = None
) -> PushChallenge | None:
    """The newest challenge of an action; with `pending_at`, only one still open then."""
    query = select(PushChallenge).where(
        PushChallenge.action_id == action_id, PushChallenge.state != REFUSED
    )
    if pending_at is not None:
        query = query.where(PushChallenge.state == PENDING, PushChallenge.expires_at > pending_at)
    return await session.scalar(query.order_by(PushChallenge.created_at.desc()).limit(1))


async def lock_user(session: AsyncSession, tenant_id: str, user_id: str) -> None:
    """On PostgreSQL, hold the user's row until the transaction ends, so that transactions that
    count the user's challenges and then add one take turns (READ COMMITTED would let each
    count without seeing the others' uncommitted rows). `FOR NO KEY UPDATE` does not conflict
    with the key-share locks foreign keys take. SQLite needs nothing: it runs one writer at a
    time, and `insert_challenge_within_limit` is a single statement."""
    if session.get_bind().dialect.name != "postgresql":
        return
    await session.execute(
        select(User.user_id)
        .where(User.tenant_id == tenant_id, User.user_id == user_id)
        .with_for_update(key_share=True)
    )


async def insert_challenge_within_limit(
    session: AsyncSession, values: dict[str, Any], *, since: datetime, limit: int
) -> PushChallenge | None:
    """Insert a pending challenge unless the user already had `limit` challenges (refused ones
    do not count) since `since`: one `INSERT ... SELECT ... WHERE (count) < limit`, so the count
    and the insert cannot be split by another writer. Call `lock_user` first (PostgreSQL)."""
    table = PushChallenge.__table__
    recent = (
        select(func.count())
        .select_from(table)
        .where(
            table.c.tenant_id == values["tenant_id"],
            table.c.user_id == values["user_id"],
            table.c.created_at >= since,
            table.c.state != REFUSED,
        )
        .scalar_subquery()
    )
    names = list(values)
    row = select(*(literal(values[name], table.c[name].type) for name in names)).where(
        recent < limit
    )
    result = await session.execute(insert(PushChallenge).from_select(names, row))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return await session.get(PushChallenge, values["id"])


async def decide(
    session: AsyncSession,
    challenge_id: str,
    *,
    state: str,
    device_id: str,
    now: datetime,
) -> bool:
    """Take the challenge's one decision: True for exactly one caller, and only in time."""
    result = await session.execute(
        update(PushChallenge)
        .where(
            PushChallenge.id == challenge_id,
            PushChallenge.state == PENDING,
            PushChallenge.expires_at > now,
        )
        .values(state=state, decided_at=now, decided_by_authenticator_id=device_id)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
