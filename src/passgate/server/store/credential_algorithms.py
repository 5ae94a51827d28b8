"""Which signature algorithms a tenant's passkeys use: for the warning shown when a tenant
stops accepting one (docs/passkeys.md#algorithms)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.store.tables import PasskeyCredential


async def algorithm_counts(session: AsyncSession, tenant_id: str) -> dict[int, int]:
    """Passkeys per recorded COSE algorithm (rows without one are not counted here)."""
    rows = await session.execute(
        select(PasskeyCredential.public_key_algorithm, func.count())
        .where(
            PasskeyCredential.tenant_id == tenant_id,
            PasskeyCredential.public_key_algorithm.is_not(None),
        )
        .group_by(PasskeyCredential.public_key_algorithm)
    )
    return {int(algorithm or 0): int(count) for algorithm, count in rows}


async def unrecorded_public_keys(session: AsyncSession, tenant_id: str) -> Sequence[bytes]:
    """The COSE keys of passkeys registered before their algorithm was recorded."""
    found = await session.scalars(
        select(PasskeyCredential.public_key).where(
            PasskeyCredential.tenant_id == tenant_id,
            PasskeyCredential.public_key_algorithm.is_(None),
        )
    )
    return found.all()
