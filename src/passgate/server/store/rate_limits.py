"""Fixed-window counters of rate limits (`rate_limit_windows`): one atomic upsert counts a hit
in every bucket it names, so every process sharing the database counts in the same rows, and
no process's memory matters.

A bucket may be capped: it counts a hit only while it is below its cap, so its count never
passes the cap and a hit it refuses changes nothing. A limit too busy for one row (one row's
lock serializes every transaction that counts in it, until each commits) is split into capped
shards whose caps add up to the limit: each call counts in one shard, and a call whose shard
is full takes a spare hit from another (`take_spare`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import BindParameter, Table, bindparam, case, select, update

from passgate.server.store.db import Db, Statements
from passgate.server.store.tables import RateLimitWindow

WINDOWS = cast(Table, RateLimitWindow.__table__)
MAX_BUCKETS = 2
# The most shards one limit is split into (services/rate_limits.py decides how many).
MAX_SHARDS = 8


def _count(buckets: int) -> Statements[Any]:
    """`INSERT ... VALUES (b0), (b1) ON CONFLICT (bucket) DO UPDATE SET hits = hits + 1
    WHERE bucket <> :capped OR hits < :cap RETURNING bucket, hits` for `buckets` rows: a row
    the WHERE keeps from counting is not returned."""

    def build(insert: Any) -> Any:
        statement = insert(WINDOWS).values(
            [
                {
                    "bucket": bindparam(f"bucket_{index}"),
                    "hits": 1,
                    "expires_at": bindparam("p_expires_at"),
                }
                for index in range(buckets)
            ]
        )
        below_cap = (WINDOWS.c.bucket != bindparam("p_capped")) | (
            WINDOWS.c.hits < bindparam("p_cap")
        )
        return statement.on_conflict_do_update(
            index_elements=[WINDOWS.c.bucket],
            set_={"hits": WINDOWS.c.hits + 1},
            where=below_cap,
        ).returning(WINDOWS.c.bucket, WINDOWS.c.hits)

    return Statements(build)


def _claim() -> Statements[Any]:
    """`INSERT ... VALUES (b, 1) ON CONFLICT DO NOTHING RETURNING bucket`: a row only for
    the one transaction that made the bucket."""

    def build(insert: Any) -> Any:
        return (
            insert(WINDOWS)
            .values(bucket=bindparam("bucket_0"), hits=1, expires_at=bindparam("p_expires_at"))
            .on_conflict_do_nothing(index_elements=[WINDOWS.c.bucket])
            .returning(WINDOWS.c.bucket)
        )

    return Statements(build)


def _take_spare(shards: int) -> Any:
    """One hit in the emptiest of `shards` existing buckets that is below its cap and that no
    other transaction holds (`FOR UPDATE SKIP LOCKED` on PostgreSQL: a locked row is passed
    over rather than waited for, so two calls each holding a full shard never wait for each
    other; the cap is checked again on the row as locked). SQLite writes one transaction at a
    time and has no row locks: the clause is left out there."""
    buckets: list[BindParameter[Any]] = [bindparam(f"bucket_{index}") for index in range(shards)]
    cap = case(
        *[
            (WINDOWS.c.bucket == bucket, bindparam(f"cap_{index}"))
            for index, bucket in enumerate(buckets)
        ],
        else_=0,
    )
    spare = (
        select(WINDOWS.c.bucket)
        .where(WINDOWS.c.bucket.in_(buckets), WINDOWS.c.hits < cap)
        .order_by(WINDOWS.c.hits)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(WINDOWS)
        .where(WINDOWS.c.bucket == spare)
        .values(hits=WINDOWS.c.hits + 1)
        .returning(WINDOWS.c.bucket)
    )


COUNT_HITS = {buckets: _count(buckets) for buckets in range(1, MAX_BUCKETS + 1)}
CLAIM = _claim()
TAKE_SPARE = {shards: _take_spare(shards) for shards in range(1, MAX_SHARDS + 1)}
EXISTING = select(WINDOWS.c.bucket).where(
    WINDOWS.c.bucket.in_(bindparam("p_buckets", expanding=True))
)
UNCOUNT = (
    update(WINDOWS).where(WINDOWS.c.bucket == bindparam("bucket_0")).values(hits=WINDOWS.c.hits - 1)
)


async def count_hits(
    db: Db,
    buckets: Sequence[str],
    expires_at: datetime,
    *,
    capped: str = "",
    cap: int = 0,
) -> dict[str, int]:
    """Add one hit to each of `buckets` (made on their first hit) and return each one's hits
    so far, this one included, in one statement. Racing hits each see a different number, so
    exactly one sees `limit + 1`. The bucket named `capped` (one of `buckets`) counts only
    while it has fewer than `cap` hits: when it is full it is left as it is and missing from
    the answer."""
    params: dict[str, Any] = {f"bucket_{index}": bucket for index, bucket in enumerate(buckets)}
    params.update(p_expires_at=expires_at, p_capped=capped, p_cap=cap)
    rows = await db.all(COUNT_HITS[len(buckets)][db], params)
    return {row["bucket"]: int(row["hits"]) for row in rows}


async def take_spare(db: Db, shards: Sequence[tuple[str, int]], expires_at: datetime) -> str | None:
    """Add one hit to one of `shards` (bucket, cap) that is below its cap: the emptiest
    existing one that no other transaction holds, else one not made yet. The bucket that
    counted it, or None when every shard is full (or, on PostgreSQL, held by another
    transaction at this moment)."""
    if not shards:
        return None
    params: dict[str, Any] = {}
    for index, (bucket, cap) in enumerate(shards):
        params[f"bucket_{index}"] = bucket
        params[f"cap_{index}"] = cap
    taken = await db.all(TAKE_SPARE[len(shards)], params)
    if taken:
        return str(taken[0]["bucket"])
    existing = await db.all(EXISTING, {"p_buckets": [bucket for bucket, _ in shards]})
    made = {row["bucket"] for row in existing}
    for bucket, _ in shards:
        if bucket not in made and await claim(db, bucket, expires_at):
            return bucket
    return None


async def claim(db: Db, bucket: str, expires_at: datetime) -> bool:
    """Make `bucket` with one hit; True for the one transaction that made it, False when it
    exists already."""
    rows = await db.all(CLAIM[db], {"bucket_0": bucket, "p_expires_at": expires_at})
    return bool(rows)


async def uncount_hit(db: Db, bucket: str) -> None:
    """Take back one hit of `bucket` (in the same transaction that counted it)."""
    await db.execute(UNCOUNT, {"bucket_0": bucket})
