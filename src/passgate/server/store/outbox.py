"""The outbox: messages (webhooks, email and SMS) written in the same transaction as the
event that causes them, then delivered at least once by whichever process claims them.

A claim is one statement that takes due rows under a lease: it sets `lease_until` and
`leased_by` and counts the attempt. On PostgreSQL the rows are chosen `FOR UPDATE SKIP
LOCKED`, so processes claiming at once take different rows; on SQLite one writer at a time
makes the plain `UPDATE ... RETURNING` safe. A row whose lease has run out (its process died
mid-delivery) is due again for any process. Services hold the rules (services/outbox.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, or_, select, update

from passgate.server.store.db import POSTGRESQL, Db
from passgate.server.store.tables import OutboxMessage, UTCDateTime


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxRow:
    """A row of `outbox` (store/tables.py says what each column means)."""

    id: str
    tenant_id: str
    kind: str
    payload: str
    destination: str
    attempts: int
    next_attempt_at: datetime
    lease_until: datetime | None
    leased_by: str | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> OutboxRow:
        return cls(**{name: row[name] for name in cls.__slots__})


OUTBOX = cast(Table, OutboxMessage.__table__)
_c = OUTBOX.c

_NOW = bindparam("now", type_=UTCDateTime())
# Still to send (the partial index ix_outbox_due covers exactly these).
_OPEN = _c.delivered_at.is_(None) & _c.failed_at.is_(None)
_DUE = _OPEN & (_c.next_attempt_at <= _NOW) & or_(_c.lease_until.is_(None), _c.lease_until <= _NOW)

INSERT = insert(OUTBOX)
GET = select(OUTBOX).where(_c.id == bindparam("b_id"))
# Whether anything is due: a read, so an idle poll takes no lock (nor SQLite's write lock).
ANY_DUE = select(_c.id).where(_DUE).limit(1)


def _claim(*, skip_locked: bool) -> Any:
    chosen = select(_c.id).where(_DUE).order_by(_c.next_attempt_at).limit(bindparam("limit"))
    if skip_locked:
        chosen = chosen.with_for_update(skip_locked=True)
    return (
        update(OUTBOX)
        .where(_c.id.in_(chosen))
        .values(
            lease_until=bindparam("b_lease_until", type_=UTCDateTime()),
            leased_by=bindparam("owner"),
            attempts=_c.attempts + 1,
        )
        .returning(OUTBOX)
    )


CLAIM_POSTGRESQL = _claim(skip_locked=True)
CLAIM_SQLITE = _claim(skip_locked=False)

MARK_DELIVERED = (
    update(OUTBOX)
    .where(_c.id == bindparam("b_id"), _c.delivered_at.is_(None))
    .values(delivered_at=_NOW, lease_until=None, last_error=None)
)
# Only while this process still holds the row: after its lease ran out another process may
# have claimed it, and that one's schedule stands.
RESCHEDULE = (
    update(OUTBOX)
    .where(_c.id == bindparam("b_id"), _c.leased_by == bindparam("owner"), _OPEN)
    .values(
        next_attempt_at=bindparam("b_next_attempt_at", type_=UTCDateTime()),
        lease_until=None,
        leased_by=None,
        last_error=bindparam("error"),
    )
)
MARK_FAILED = (
    update(OUTBOX)
    .where(_c.id == bindparam("b_id"), _c.leased_by == bindparam("owner"), _OPEN)
    .values(failed_at=_NOW, lease_until=None, last_error=bindparam("error"))
)
# At shutdown: give back what this process claimed and has not finished, so another process
# need not wait for the lease to run out.
RELEASE = (
    update(OUTBOX)
    .where(_c.leased_by == bindparam("owner"), _OPEN, _c.lease_until > _NOW)
    .values(lease_until=None, leased_by=None)
)

ERROR_LENGTH = 1000


async def enqueue(
    db: Db,
    *,
    id: str,
    tenant_id: str,
    kind: str,
    payload: str,
    destination: str,
    now: datetime,
) -> None:
    """Add a message to the current transaction: it is sent only if the transaction commits."""
    await db.execute(
        INSERT,
        {
            "id": id,
            "tenant_id": tenant_id,
            "kind": kind,
            "payload": payload,
            "destination": destination,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
    )


async def get(db: Db, id: str) -> OutboxRow | None:
    row = await db.first(GET, {"b_id": id})
    return OutboxRow.of(row) if row is not None else None


async def any_due(db: Db, now: datetime) -> bool:
    return await db.first(ANY_DUE, {"now": now}) is not None


async def claim(
    db: Db, *, owner: str, now: datetime, lease_until: datetime, limit: int
) -> Sequence[OutboxRow]:
    """Take up to `limit` due rows for `owner` until `lease_until`, counting an attempt each."""
    statement = CLAIM_POSTGRESQL if db.dialect == POSTGRESQL else CLAIM_SQLITE
    rows = await db.all(
        statement, {"now": now, "b_lease_until": lease_until, "owner": owner, "limit": limit}
    )
    return [OutboxRow.of(row) for row in rows]


async def mark_delivered(db: Db, id: str, now: datetime) -> bool:
    return await db.rowcount(MARK_DELIVERED, {"b_id": id, "now": now}) == 1


async def reschedule(db: Db, id: str, *, owner: str, next_attempt_at: datetime, error: str) -> bool:
    params = {"b_id": id, "owner": owner, "b_next_attempt_at": next_attempt_at}
    return await db.rowcount(RESCHEDULE, {**params, "error": error[:ERROR_LENGTH]}) == 1


async def mark_failed(db: Db, id: str, *, owner: str, now: datetime, error: str) -> bool:
    """Give the message up, if `owner` still holds it."""
    params = {"b_id": id, "owner": owner, "now": now, "error": error[:ERROR_LENGTH]}
    return await db.rowcount(MARK_FAILED, params) == 1


async def release(db: Db, *, owner: str, now: datetime) -> int:
    return await db.rowcount(RELEASE, {"owner": owner, "now": now})
