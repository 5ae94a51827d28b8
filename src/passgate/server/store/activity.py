"""Counts per hour for the console's activity chart, grouped in the database (one row per
hour and series, however many sign-ins there were), read through the time indexes
`ix_actions_state_updated` and `ix_push_challenges_decided`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.store.tables import Action, PushChallenge


def _hour(session: AsyncSession, column: Any) -> Any:
    """`YYYY-MM-DD HH` of a UTC timestamp column, on either backend. SQLite stores them as
    `YYYY-MM-DD HH:MM:SS.ffffff` text in UTC (see `UTCDateTime`)."""
    if session.get_bind().dialect.name == "postgresql":
        truncated = func.date_trunc("hour", func.timezone("UTC", column))
        return func.to_char(truncated, "YYYY-MM-DD HH24")
    return func.substr(column, 1, 13)


async def settled_actions_per_hour(
    session: AsyncSession,
    *,
    since: datetime,
    state: str,
    verification_method: str,
    tenant_id: str | None,
) -> dict[str, int]:
    """Actions that reached `state` by `verification_method` since `since`, per hour."""
    hour = _hour(session, Action.state_updated_at)
    query = select(hour, func.count()).where(
        Action.state_updated_at >= since,
        Action.state == state,
        Action.verification_method == verification_method,
    )
    if tenant_id is not None:
        query = query.where(Action.tenant_id == tenant_id)
    rows = await session.execute(query.group_by(hour))
    return {str(key): int(count) for key, count in rows.all()}


async def decided_challenges_per_hour(
    session: AsyncSession, *, since: datetime, tenant_id: str | None
) -> dict[tuple[str, str], int]:
    """Push challenges decided since `since`, per (state, hour)."""
    hour = _hour(session, PushChallenge.decided_at)
    query = select(PushChallenge.state, hour, func.count()).where(PushChallenge.decided_at >= since)
    if tenant_id is not None:
        query = query.where(PushChallenge.tenant_id == tenant_id)
    rows = await session.execute(query.group_by(PushChallenge.state, hour))
    return {(str(state), str(key)): int(count) for state, key, count in rows.all()}
