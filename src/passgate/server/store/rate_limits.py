"""Fixed-window counters of rate limits (`rate_limit_windows`): one atomic upsert counts a hit
in every bucket it names, so every process sharing the database counts in the same rows, and
no process's memory matters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, update

from passgate.server.store.db import Db, Statements
from passgate.server.store.tables import RateLimitWindow

WINDOWS = cast(Table, RateLimitWindow.__table__)
MAX_BUCKETS = 2


def _count(buckets: int) -> Statements[Any]:
    """`INSERT ... VALUES (b0), (b1) ON CONFLICT (bucket) DO UPDATE SET hits = hits + 1
    RETURNING bucket, hits` for `buckets` rows."""

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
        return statement.on_conflict_do_update(
            index_elements=[WINDOWS.c.bucket], set_={"hits": WINDOWS.c.hits + 1}
        ).returning(WINDOWS.c.bucket, WINDOWS.c.hits)

    return Statements(build)


COUNT_HITS = {buckets: _count(buckets) for buckets in range(1, MAX_BUCKETS + 1)}
UNCOUNT = (
    update(WINDOWS).where(WINDOWS.c.bucket == bindparam("bucket_0")).values(hits=WINDOWS.c.hits - 1)
)


async def count_hits(db: Db, buckets: Sequence[str], expires_at: datetime) -> dict[str, int]:
    """Add one hit to each of `buckets` (made on their first hit) and return each one's hits
    so far, this one included, in one statement. Racing hits each see a different number, so
    exactly one sees `limit + 1`."""
    params: dict[str, Any] = {f"bucket_{index}": bucket for index, bucket in enumerate(buckets)}
    params["p_expires_at"] = expires_at
    rows = await db.all(COUNT_HITS[len(buckets)][db], params)
    return {row["bucket"]: int(row["hits"]) for row in rows}


async def uncount_hit(db: Db, bucket: str) -> None:
    """Take back one hit of `bucket` (in the same transaction that counted it)."""
    await db.execute(UNCOUNT, {"bucket_0": bucket})
