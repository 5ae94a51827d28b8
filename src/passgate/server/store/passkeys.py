"""Passkey queries: credentials and single-use challenges. Every lookup uses an index."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.store import challenges
from passgate.server.store.tables import Authenticator, PasskeyChallenge, PasskeyCredential


async def get_challenge(
    session: AsyncSession, tenant_id: str, challenge_id: str
) -> PasskeyChallenge | None:
    challenge = await session.get(PasskeyChallenge, challenge_id)
    return challenge if challenge is not None and challenge.tenant_id == tenant_id else None


async def consume_challenge(
    session: AsyncSession, tenant_id: str, challenge_id: str, purpose: str, now: datetime
) -> PasskeyChallenge | None:
    """Use up a pending, unexpired challenge of this tenant: for exactly one caller, ever."""
    return await challenges.consume(
        session,
        PasskeyChallenge,
        challenge_id,
        purpose,
        now,
        PasskeyChallenge.tenant_id == tenant_id,
    )


async def user_credentials(
    session: AsyncSession, tenant_id: str, user_id: str
) -> Sequence[PasskeyCredential]:
    query = select(PasskeyCredential).where(
        PasskeyCredential.tenant_id == tenant_id, PasskeyCredential.user_id == user_id
    )
    return (await session.scalars(query)).all()


async def count_user_credentials(session: AsyncSession, tenant_id: str, user_id: str) -> int:
    query = select(func.count()).where(
        PasskeyCredential.tenant_id == tenant_id, PasskeyCredential.user_id == user_id
    )
    return int(await session.scalar(query) or 0)


async def credential_with_authenticator(
    session: AsyncSession, tenant_id: str, credential_ids: Sequence[str]
) -> tuple[PasskeyCredential, Authenticator] | None:
    """The first of `credential_ids` this tenant knows, with its authenticator row."""
    query = (
        select(PasskeyCredential, Authenticator)
        .join(Authenticator, Authenticator.id == PasskeyCredential.authenticator_id)
        .where(
            PasskeyCredential.tenant_id == tenant_id,
            PasskeyCredential.credential_id.in_(credential_ids),
        )
        .limit(1)
    )
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row is not None else None


async def credentials_by_authenticator(
    session: AsyncSession, tenant_id: str, authenticator_ids: Sequence[str]
) -> dict[str, PasskeyCredential]:
    if not authenticator_ids:
        return {}
    query = select(PasskeyCredential).where(
        PasskeyCredential.tenant_id == tenant_id,
        PasskeyCredential.authenticator_id.in_(authenticator_ids),
    )
    return {row.authenticator_id: row for row in (await session.scalars(query)).all()}


async def flag_credential(
    session: AsyncSession, authenticator_id: str, reason: str, now: datetime
) -> None:
    await session.execute(
        update(PasskeyCredential)
        .where(PasskeyCredential.authenticator_id == authenticator_id)
        .values(flagged_at=now, flag_reason=reason)
        .execution_options(synchronize_session=False)
    )


async def delete_credentials(
    session: AsyncSession, tenant_id: str, user_id: str, authenticator_id: str | None = None
) -> None:
    """A user's passkey rows (all, or one authenticator's), when those authenticators go."""
    statement = delete(PasskeyCredential).where(
        PasskeyCredential.tenant_id == tenant_id, PasskeyCredential.user_id == user_id
    )
    if authenticator_id is not None:
        statement = statement.where(PasskeyCredential.authenticator_id == authenticator_id)
    await session.execute(statement)
