"""Audit log queries: one insert, and pages newest first by `(occurred_at, id)`, each filter
served by `ix_audit_events_occurred` or `ix_audit_events_tenant_occurred`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.store.tables import AuditEvent


async def add_event(session: AsyncSession, event: AuditEvent) -> None:
    session.add(event)
    await session.flush()


async def find_events(
    session: AsyncSession,
    *,
    tenant_id: str | None,
    actor_id: str | None,
    action_prefix: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> Sequence[AuditEvent]:
    """Events matching every given filter, newest first, strictly older than `before`."""
    query = select(AuditEvent)
    if tenant_id is not None:
        query = query.where(AuditEvent.tenant_id == tenant_id)
    if actor_id is not None:
        query = query.where(AuditEvent.actor_id == actor_id)
    if action_prefix is not None:
        query = query.where(AuditEvent.action.startswith(action_prefix, autoescape=True))
    if before is not None:
        occurred, event_id = before
        query = query.where(
            or_(
                AuditEvent.occurred_at < occurred,
                and_(AuditEvent.occurred_at == occurred, AuditEvent.id < event_id),
            )
        )
    query = query.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc()).limit(limit)
    return (await session.scalars(query)).all()
