"""`GET /audit-events`: the tenant's audit log, newest first, for its backend (a Passgate
extension: Authsignal's Server API has no such route; docs/server-api.md#audit-log)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from passgate.server.database import Database
from passgate.server.schemas import WireModel
from passgate.server.server_api.auth import SecretKeyTenant
from passgate.server.services import audit

router = APIRouter(tags=["audit"])
# A cursor is an ISO 8601 time, "|" and an event id: well under this.
MAX_CURSOR = 100


class AuditEventResponse(WireModel):
    """One event: who (`actorType`: admin, api, user or system; `actorId`), did what
    (`action`, a dotted verb), to what (`targetType`, `targetId`), when, from where
    (`source`: an IP address, or `cli`), and what changed (`details`; never a secret)."""

    id: str
    occurred_at: datetime
    actor_type: str
    actor_id: str | None = None
    action: str
    target_type: str | None = None
    target_id: str | None = None
    source: str | None = None
    details: dict[str, Any] | None = None


class AuditEventsResponse(WireModel):
    events: list[AuditEventResponse]
    # Pass as `before` for the next (older) page; absent on the last page.
    next_cursor: str | None = None


@router.get("/audit-events", response_model_exclude_none=True)
async def list_audit_events(
    tenant: SecretKeyTenant,
    db: Database,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 50,
    before: Annotated[str | None, Query(min_length=1, max_length=MAX_CURSOR)] = None,
) -> AuditEventsResponse:
    page = await audit.tenant_events(db, tenant.id, before=before, limit=limit)
    return AuditEventsResponse(
        events=[
            AuditEventResponse.model_validate(event, from_attributes=True) for event in page.events
        ],
        next_cursor=page.next_cursor,
    )
