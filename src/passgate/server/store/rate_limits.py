"""Fixed-window counters of rate limits (`rate_limit_windows`): one atomic upsert per hit, so
every process sharing the database counts in the same row, and no process's memory matters."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.store.queries import _insert
from passgate.server.store.tables import RateLimitWindow


async def count_hit(session: AsyncSession, bucket: str, expires_at: datetime) -> int:
    """Add one hit to `bucket` (made on its first hit) and return its hits so far, this one
    included: `INSERT ... ON CONFLICT (bucket) DO UPDATE SET hits = hits + 1 RETURNING hits`.
    Racing hits each see a different number, so exactly one sees `limit + 1`."""
    statement = (
        _insert(session, RateLimitWindow)
        .values(bucket=bucket, hits=1, expires_at=expires_at)
        .on_conflict_do_update(
            index_elements=[RateLimitWindow.bucket],
            set_={"hits": RateLimitWindow.hits + 1},
        )
        .returning(RateLimitWindow.hits)
    )
    return int((await session.execute(statement)).scalar_one())
