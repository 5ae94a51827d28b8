"""Counts per hour for the console's activity chart, grouped in the database (one row per
hour and series, however many sign-ins there were), read through the time indexes
`ix_actions_state_updated` and `ix_push_challenges_decided`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, select

from passgate.server.store.db import POSTGRESQL, Db
from passgate.server.store.tables import Action, PushChallenge

_ACTIONS = cast(Table, Action.__table__).c
_PUSH_CHALLENGES = cast(Table, PushChallenge.__table__).c


def _hour(db: Db, column: Any) -> Any:
    """`YYYY-MM-DD HH` of a UTC timestamp column, on either backend. SQLite stores them as
    `YYYY-MM-DD HH:MM:SS.ffffff` text in UTC (see `UTCDateTime`)."""
    if db.dialect == POSTGRESQL:
        truncated = func.date_trunc("hour", func.timezone("UTC", column))
        return func.to_char(truncated, "YYYY-MM-DD HH24")
    return func.substr(column, 1, 13)


async def settled_actions_per_hour(
    db: Db,
    *,
    since: datetime,
    state: str,
    verification_method: str,
    tenant_id: str | None,
) -> dict[str, int]:
    """Actions that reached `state` by `verification_method` since `since`, per hour."""
    hour = _hour(db, _ACTIONS.state_updated_at)
    query = select(hour, func.count()).where(
        _ACTIONS.state_updated_at >= since,
        _ACTIONS.state == state,
        _ACTIONS.verification_method == verification_method,
    )
    if tenant_id is not None:
        query = query.where(_ACTIONS.tenant_id == tenant_id)
    result = await db.execute(query.group_by(hour))
    rows: list[Any] = list(result.all())
    return {str(row[0]): int(row[1]) for row in rows}


async def decided_challenges_per_hour(
    db: Db, *, since: datetime, tenant_id: str | None
) -> dict[tuple[str, str], int]:
    """Push challenges decided since `since`, per (state, hour)."""
    hour = _hour(db, _PUSH_CHALLENGES.decided_at)
    query = select(_PUSH_CHALLENGES.state, hour, func.count()).where(
        _PUSH_CHALLENGES.decided_at >= since
    )
    if tenant_id is not None:
        query = query.where(_PUSH_CHALLENGES.tenant_id == tenant_id)
    result = await db.execute(query.group_by(_PUSH_CHALLENGES.state, hour))
    rows: list[Any] = list(result.all())
    return {(str(row[0]), str(row[1])): int(row[2]) for row in rows}
