"""A bridge for callers still holding an ORM session: the statements themselves live in
store/{tenants,users,authenticators,actions}.py (one module per aggregate). New code calls
those modules with a `Db`."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.store import actions, tenants, users
from passgate.server.store.actions import ActionRow
from passgate.server.store.db import Db
from passgate.server.store.tenants import as_db, compact
from passgate.server.store.users import UserRow

__all__ = ["compact", "count_tenant_passkeys", "ensure_user", "get_action"]


async def count_tenant_passkeys(db: Db | AsyncSession, tenant_id: str) -> int:
    return await tenants.count_tenant_passkeys(await as_db(db), tenant_id)


async def ensure_user(db: Db | AsyncSession, tenant_id: str, user_id: str) -> UserRow:
    """The user, created if missing; safe when two requests create the same user at once."""
    return await users.ensure_user(await as_db(db), tenant_id, user_id)


async def get_action(
    db: Db | AsyncSession, tenant_id: str, user_id: str, action_code: str, idempotency_key: str
) -> ActionRow | None:
    return await actions.get_action(
        await as_db(db), tenant_id, user_id, action_code, idempotency_key
    )
