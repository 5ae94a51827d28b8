"""Rows nobody can use any more, and the batched DELETE that removes them.

Each target is a table's key and the condition its dead rows meet. A batch deletes at most
`limit` of them by key, so no DELETE holds locks (or SQLite's write lock) for long; deleting
rows another process deleted first is harmless, so any number of processes may prune at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Column, ColumnElement, Table, bindparam, delete, or_, select

from passgate.server.store.db import Db
from passgate.server.store.tables import (
    Action,
    AdminChallenge,
    AdminLink,
    AdminSession,
    MagicLink,
    OtpChallenge,
    OutboxMessage,
    PasskeyChallenge,
    PushUsedNonce,
    RateLimitWindow,
    SpentChallenge,
    UTCDateTime,
)

_ACTIONS = cast(Table, Action.__table__).c
_PASSKEY_CHALLENGES = cast(Table, PasskeyChallenge.__table__).c
_RATE_LIMIT_WINDOWS = cast(Table, RateLimitWindow.__table__).c
_SPENT_CHALLENGES = cast(Table, SpentChallenge.__table__).c
_ADMIN_CHALLENGES = cast(Table, AdminChallenge.__table__).c
_ADMIN_LINKS = cast(Table, AdminLink.__table__).c
_ADMIN_SESSIONS = cast(Table, AdminSession.__table__).c
_OUTBOX = cast(Table, OutboxMessage.__table__).c
_OTP_CHALLENGES = cast(Table, OtpChallenge.__table__).c
_MAGIC_LINKS = cast(Table, MagicLink.__table__).c
PUSH_USED_NONCES = cast(Table, PushUsedNonce.__table__)

# Spent push messages that have expired: only a valid device signature adds one, so there
# are never many, and one DELETE takes them all.
DELETE_USED_NONCES = delete(PUSH_USED_NONCES).where(
    PUSH_USED_NONCES.c.expires_at <= bindparam("now", type_=UTCDateTime())
)


@dataclass(frozen=True, slots=True)
class Target:
    """What to prune: `name` (as reported), the table's key, and which rows are dead."""

    name: str
    key: Column[Any]
    dead: ColumnElement[bool]


@dataclass(frozen=True, kw_only=True, slots=True)
class Cutoffs:
    """Rows that expired before `expired`, pending client-made actions created before
    `client_action`, actions unchanged since `action` (None: kept forever), and outbox
    messages delivered or given up that were made before `outbox`."""

    expired: datetime
    client_action: datetime
    action: datetime | None
    outbox: datetime


def targets(cutoffs: Cutoffs, *, pending: str, review: str) -> list[Target]:
    """Every kind of dead row. `pending` is the state of an action waiting for a challenge,
    `review` that of one waiting for a person; audit events are never a target."""
    found = [
        Target(
            "passkeyChallenges",
            _PASSKEY_CHALLENGES.id,
            _PASSKEY_CHALLENGES.expires_at < cutoffs.expired,
        ),
        # Spent challenges (passkeys and push): once the message has expired it is refused
        # for its age, so its digest is no longer needed. Every sign-in adds one, so in
        # batches like the rest.
        Target(
            "spentChallenges",
            _SPENT_CHALLENGES.digest,
            _SPENT_CHALLENGES.expires_at < cutoffs.expired,
        ),
        # One-time codes (a verified backend challenge's expiry is its time to be claimed).
        Target("otpChallenges", _OTP_CHALLENGES.id, _OTP_CHALLENGES.expires_at < cutoffs.expired),
        # Email magic links, used or not (a link lives ten minutes).
        Target("magicLinks", _MAGIC_LINKS.id, _MAGIC_LINKS.expires_at < cutoffs.expired),
        Target(
            "rateLimitWindows",
            _RATE_LIMIT_WINDOWS.bucket,
            _RATE_LIMIT_WINDOWS.expires_at < cutoffs.expired,
        ),
        Target(
            "adminChallenges", _ADMIN_CHALLENGES.id, _ADMIN_CHALLENGES.expires_at < cutoffs.expired
        ),
        Target("adminLinks", _ADMIN_LINKS.id, _ADMIN_LINKS.expires_at < cutoffs.expired),
        Target(
            "adminSessions",
            _ADMIN_SESSIONS.id,
            or_(
                _ADMIN_SESSIONS.expires_at < cutoffs.expired,
                _ADMIN_SESSIONS.revoked_at < cutoffs.expired,
            ),
        ),
        Target(
            "clientActions",
            _ACTIONS.id,
            (_ACTIONS.origin == "client")
            & (_ACTIONS.state == pending)
            # A pending action's state was set when it was made.
            & (_ACTIONS.state_updated_at < cutoffs.client_action),
        ),
        # Sent (or given up) outbox messages; the ones still to send stay however old.
        Target(
            "outboxMessages",
            _OUTBOX.id,
            (_OUTBOX.created_at < cutoffs.outbox)
            & (_OUTBOX.delivered_at.is_not(None) | _OUTBOX.failed_at.is_not(None)),
        ),
    ]
    if cutoffs.action is not None:
        found.append(
            Target(
                "actions",
                _ACTIONS.id,
                (_ACTIONS.state_updated_at < cutoffs.action) & (_ACTIONS.state != review),
            )
        )
    return found


async def delete_batch(db: Db, target: Target, limit: int) -> int:
    """Delete up to `limit` dead rows of `target`; returns how many went."""
    chosen = select(target.key).where(target.dead).limit(limit)
    return await db.rowcount(delete(target.key.table).where(target.key.in_(chosen)))


async def delete_used_nonces(db: Db, now: datetime) -> int:
    """Forget spent push messages that have expired (they are refused for their age anyway)."""
    return await db.rowcount(DELETE_USED_NONCES, {"now": now})
