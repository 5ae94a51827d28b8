"""Queries the console makes about one tenant's users beyond what the APIs need: search, a
user's push devices (expired ones included) and naming a passkey."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.store.tables import Authenticator, PasskeyCredential, PushDevice, User
from passgate.server.store.tenants import as_db
from passgate.server.store.users import USERS, UserRow


async def search_users(
    session: AsyncSession, tenant_id: str, text: str, limit: int
) -> Sequence[UserRow]:
    """Users whose id starts with `text`, or whose email, username or phone number is it
    (the tenant's indexes on each)."""
    query = (
        select(USERS)
        .where(
            User.tenant_id == tenant_id,
            or_(
                User.user_id.startswith(text, autoescape=True),
                User.email == text,
                User.username == text,
                User.phone_number == text,
            ),
        )
        .order_by(User.user_id)
        .limit(limit)
    )
    db = await as_db(session)
    return [UserRow.of(row) for row in await db.all(query)]


async def user_push_devices(
    session: AsyncSession, tenant_id: str, user_id: str
) -> Sequence[tuple[PushDevice, Authenticator]]:
    query = (
        select(PushDevice, Authenticator)
        .join(Authenticator, Authenticator.id == PushDevice.id)
        .where(PushDevice.tenant_id == tenant_id, PushDevice.user_id == user_id)
        .order_by(Authenticator.created_at, PushDevice.id)
    )
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


async def rename_passkey(
    session: AsyncSession, tenant_id: str, user_id: str, authenticator_id: str, name: str | None
) -> bool:
    result = await session.execute(
        update(PasskeyCredential)
        .where(
            PasskeyCredential.tenant_id == tenant_id,
            PasskeyCredential.user_id == user_id,
            PasskeyCredential.authenticator_id == authenticator_id,
        )
        .values(name=name)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
