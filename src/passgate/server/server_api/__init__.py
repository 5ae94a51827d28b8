"""The Server API (`/v1/users/...`, `/v1/validate`, and Passgate's `/v1/audit-events`),
called by an app's backend with its tenant secret key."""

from fastapi import APIRouter

from passgate.server.server_api import actions, audit, challenges, push_links, users, validate

router = APIRouter()
for module in (actions, users, validate, audit, push_links, challenges):
    router.include_router(module.router)

__all__ = ["router"]
