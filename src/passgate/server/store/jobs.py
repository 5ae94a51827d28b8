"""Periodic jobs shared by every process (`job_leases`): one row per job says when it is next
due. A process that finds it due moves `due_at` on in one conditional UPDATE and runs the job;
any other process's UPDATE then matches nothing (PostgreSQL re-checks the condition after the
row lock; SQLite has one writer at a time), so each interval's work is done once."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, select, update

from passgate.server.store.db import Db, Statements
from passgate.server.store.tables import JobLease, UTCDateTime

JOB_LEASES = cast(Table, JobLease.__table__)
_c = JOB_LEASES.c

# The first process to look makes the row, due at once.
ADD = Statements(
    lambda insert: (
        insert(JOB_LEASES)
        .values(name=bindparam("b_name"), due_at=bindparam("now", type_=UTCDateTime()))
        .on_conflict_do_nothing(index_elements=["name"])
    )
)
TAKE = (
    update(JOB_LEASES)
    .where(_c.name == bindparam("b_name"), _c.due_at <= bindparam("now", type_=UTCDateTime()))
    .values(
        due_at=bindparam("next_due_at", type_=UTCDateTime()),
        leased_by=bindparam("owner"),
        leased_at=bindparam("now", type_=UTCDateTime()),
    )
)
DUE_AT = select(_c.due_at).where(_c.name == bindparam("b_name"))


async def take(db: Db, name: str, *, owner: str, now: datetime, next_due_at: datetime) -> bool:
    """Whether this caller runs job `name` now: True when it was due, and it is now due again
    at `next_due_at`."""
    await db.execute(ADD[db], {"b_name": name, "now": now})
    params = {"b_name": name, "now": now, "next_due_at": next_due_at, "owner": owner}
    return await db.rowcount(TAKE, params) == 1


async def due_at(db: Db, name: str) -> datetime | None:
    found = await db.scalar(DUE_AT, {"b_name": name})
    return cast(datetime | None, found)
