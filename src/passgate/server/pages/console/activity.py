"""Activity: sign-ins, approvals and rejections per hour over the last 7 days as a chart,
and the audit log of every admin change, filtered and paged."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from passgate.server.database import Database
from passgate.server.pages.console import web
from passgate.server.pages.console.chart import hourly_chart
from passgate.server.services import activity, audit, tenants

router = APIRouter(route_class=web.ConsoleRoute)
Filter = Annotated[str, Query(max_length=320)]


@router.get("/activity")
async def activity_page(
    request: Request,
    signed_in: web.SignedIn,
    db: Database,
    tenant: Filter = "",
    actor: Filter = "",
    action: Filter = "",
    before: Filter = "",
) -> Response:
    counts = await activity.hourly(db, tenant or None)
    events = await audit.list_events(
        db,
        tenant_id=tenant or None,
        actor_id=actor or None,
        action_prefix=action or None,
        before=before or None,
    )
    context = {
        "chart": hourly_chart(counts),
        "events": events,
        "tenants": await tenants.list_tenants(db),
        "filters": {"tenant": tenant, "actor": actor, "action": action},
    }
    return web.page(request, "console/activity.html", context)
