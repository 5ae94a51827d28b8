"""Which signature algorithms a tenant's passkeys use: for the warning shown when a tenant
stops accepting one (docs/passkeys.md#algorithms)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, func, select

from passgate.server.store.db import Db
from passgate.server.store.passkeys import CREDENTIALS

ALGORITHM_COUNTS = (
    select(CREDENTIALS.c.public_key_algorithm, func.count().label("passkeys"))
    .where(
        CREDENTIALS.c.tenant_id == bindparam("p_tenant_id"),
        CREDENTIALS.c.public_key_algorithm.is_not(None),
    )
    .group_by(CREDENTIALS.c.public_key_algorithm)
)
UNRECORDED_PUBLIC_KEYS = select(CREDENTIALS.c.public_key).where(
    CREDENTIALS.c.tenant_id == bindparam("p_tenant_id"),
    CREDENTIALS.c.public_key_algorithm.is_(None),
)


async def algorithm_counts(db: Db, tenant_id: str) -> dict[int, int]:
    """Passkeys per recorded COSE algorithm (rows without one are not counted here)."""
    rows = await db.all(ALGORITHM_COUNTS, {"p_tenant_id": tenant_id})
    return {int(row["public_key_algorithm"] or 0): int(row["passkeys"]) for row in rows}


async def unrecorded_public_keys(db: Db, tenant_id: str) -> Sequence[bytes]:
    """The COSE keys of passkeys registered before their algorithm was recorded."""
    result = await db.execute(UNRECORDED_PUBLIC_KEYS, {"p_tenant_id": tenant_id})
    return list(result.scalars().all())
