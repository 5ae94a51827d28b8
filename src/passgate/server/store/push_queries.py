"""The queries of push authentication: devices, their one-time messages, and challenges."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.store.tables import Action, Authenticator, PushChallenge, PushDevice

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


async def consume_nonce(session: AsyncSession, device_id: str, nonce: str, now: datetime) -> bool:
    """Atomically use up a device's one-time message: True for exactly one caller."""
    result = await session.execute(
        update(PushDevice)
        .where(
            PushDevice.id == device_id,
            PushDevice.nonce == nonce,
            PushDevice.nonce_expires_at > now,
        )
        .values(nonce=None, nonce_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


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


async def count_recent(session: AsyncSession, tenant_id: str, user_id: str, since: datetime) -> int:
    """Challenges sent to a user since `since` (refused attempts do not count)."""
    query = select(func.count()).where(
        PushChallenge.tenant_id == tenant_id,
        PushChallenge.user_id == user_id,
        PushChallenge.created_at >= since,
        PushChallenge.state != REFUSED,
    )
    return int(await session.scalar(query) or 0)


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
