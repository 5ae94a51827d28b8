"""Bridge for services/hosted_page.py until it holds a Db: the two push reads it makes, on
its ORM session's unit of work. The statements are store/push.py's; delete this module once
hosted_page calls `store.push` directly."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.store import push
from passgate.server.store.db import db_of
from passgate.server.store.push import PENDING, REFUSED, PushChallengeRow, PushDeviceRow

__all__ = ["PENDING", "REFUSED", "action_challenge", "user_devices"]


async def user_devices(
    session: AsyncSession, tenant_id: str, user_id: str, now: datetime
) -> list[PushDeviceRow]:
    return await push.find_devices(db_of(session), tenant_id, user_id, now)


async def action_challenge(
    session: AsyncSession, action_id: str, *, pending_at: datetime | None = None
) -> PushChallengeRow | None:
    return await push.get_action_challenge(db_of(session), action_id, pending_at=pending_at)
