"""Audit log statements: one INSERT, and pages newest first by `(occurred_at, id)`, each filter
served by `ix_audit_events_occurred` or `ix_audit_events_tenant_occurred`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, insert, or_, select

from passgate.server.store.db import Db
from passgate.server.store.tables import AuditEvent


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEventRow:
    """A row of `audit_events` (store/tables.py says what each column means)."""

    id: str
    occurred_at: datetime
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    tenant_id: str | None
    source: str | None
    details: dict[str, Any] | None

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> AuditEventRow:
        return cls(**{name: row[name] for name in cls.__slots__})


AUDIT_EVENTS = cast(Table, AuditEvent.__table__)
_c = AUDIT_EVENTS.c
INSERT_EVENT = insert(AUDIT_EVENTS)


async def insert_event(db: Db, event: AuditEventRow) -> None:
    await db.execute(INSERT_EVENT, {name: getattr(event, name) for name in event.__slots__})


async def find_events(
    db: Db,
    *,
    tenant_id: str | None,
    actor_id: str | None,
    action_prefix: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[AuditEventRow]:
    """Events matching every given filter, newest first, strictly older than `before`."""
    query = select(AUDIT_EVENTS)
    if tenant_id is not None:
        query = query.where(_c.tenant_id == tenant_id)
    if actor_id is not None:
        query = query.where(_c.actor_id == actor_id)
    if action_prefix is not None:
        query = query.where(_c.action.startswith(action_prefix, autoescape=True))
    if before is not None:
        occurred, event_id = before
        query = query.where(
            or_(
                _c.occurred_at < occurred,
                and_(_c.occurred_at == occurred, _c.id < event_id),
            )
        )
    query = query.order_by(_c.occurred_at.desc(), _c.id.desc()).limit(limit)
    return [AuditEventRow.of(row) for row in await db.all(query)]
