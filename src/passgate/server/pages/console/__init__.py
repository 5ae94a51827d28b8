"""The admin console at /admin: server-rendered pages that call the services, as the APIs
do. Admins sign in with passkeys; see docs/web.md."""

from __future__ import annotations

from fastapi import APIRouter

from passgate.server.pages.console import (
    account,
    activity,
    apps,
    auth,
    delivery,
    keys,
    push,
    tenants,
    users,
)

router = APIRouter(prefix="/admin", include_in_schema=False)
for area in (auth, account, tenants, apps, push, delivery, keys, users, activity):
    router.include_router(area.router)
