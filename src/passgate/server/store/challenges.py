"""Single-use WebAuthn challenges, of tenants' users (`PasskeyChallenge`) and of the console's
admins (`AdminChallenge`) alike: one conditional UPDATE uses a challenge up."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, update
from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.store.tables import AdminChallenge, PasskeyChallenge

Challenge = TypeVar("Challenge", PasskeyChallenge, AdminChallenge)


async def consume(
    session: AsyncSession,
    table: type[Challenge],
    challenge_id: str,
    purpose: str,
    now: datetime,
    *conditions: ColumnElement[bool],
) -> Challenge | None:
    """Atomically move a pending, unexpired challenge (matching `conditions`) to `used`: it is
    returned to exactly one caller, ever; racing requests get None."""
    statement = (
        update(table)
        .where(
            table.id == challenge_id,
            table.purpose == purpose,
            table.state == "pending",
            table.expires_at > now,
            *conditions,
        )
        .values(state="used", used_at=now)
        .returning(table)
        .execution_options(synchronize_session=False)
    )
    return (await session.scalars(statement)).one_or_none()
