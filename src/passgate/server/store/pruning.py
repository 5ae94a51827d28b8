"""Rows nobody can use any more, and the batched DELETE that removes them.

Each target is a table's key and the condition its dead rows meet. A batch deletes at most
`limit` of them by key, so no DELETE holds locks (or SQLite's write lock) for long; deleting
rows another process deleted first is harmless, so any number of processes may prune at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from passgate.server.store.tables import (
    Action,
    AdminChallenge,
    AdminLink,
    AdminSession,
    PasskeyChallenge,
    RateLimitWindow,
)


@dataclass(frozen=True, slots=True)
class Target:
    """What to prune: `name` (as reported), the table's key, and which rows are dead."""

    name: str
    key: InstrumentedAttribute[Any]
    dead: ColumnElement[bool]


@dataclass(frozen=True, kw_only=True, slots=True)
class Cutoffs:
    """Rows that expired before `expired`, pending client-made actions created before
    `client_action`, and actions unchanged since `action` (None: kept forever)."""

    expired: datetime
    client_action: datetime
    action: datetime | None


def targets(cutoffs: Cutoffs, *, pending: str, review: str) -> list[Target]:
    """Every kind of dead row. `pending` is the state of an action waiting for a challenge,
    `review` that of one waiting for a person; audit events are never a target."""
    found = [
        Target(
            "passkeyChallenges", PasskeyChallenge.id, PasskeyChallenge.expires_at < cutoffs.expired
        ),
        Target(
            "rateLimitWindows", RateLimitWindow.bucket, RateLimitWindow.expires_at < cutoffs.expired
        ),
        Target("adminChallenges", AdminChallenge.id, AdminChallenge.expires_at < cutoffs.expired),
        Target("adminLinks", AdminLink.id, AdminLink.expires_at < cutoffs.expired),
        Target(
            "adminSessions",
            AdminSession.id,
            or_(
                AdminSession.expires_at < cutoffs.expired,
                AdminSession.revoked_at < cutoffs.expired,
            ),
        ),
        Target(
            "clientActions",
            Action.id,
            (Action.origin == "client")
            & (Action.state == pending)
            # A pending action's state was set when it was made.
            & (Action.state_updated_at < cutoffs.client_action),
        ),
    ]
    if cutoffs.action is not None:
        found.append(
            Target(
                "actions",
                Action.id,
                (Action.state_updated_at < cutoffs.action) & (Action.state != review),
            )
        )
    return found


async def delete_batch(session: AsyncSession, target: Target, limit: int) -> int:
    """Delete up to `limit` dead rows of `target`; returns how many went."""
    chosen = select(target.key).where(target.dead).limit(limit)
    statement = (
        delete(target.key.class_)
        .where(target.key.in_(chosen))
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(statement)
    return int(result.rowcount)  # type: ignore[attr-defined]
