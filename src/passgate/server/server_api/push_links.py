"""Push enrolment links for a backend (a Passgate extension, docs/push-enrolment-links.md):
`POST /v1/users/{userId}/push-enrolment-links` makes a short-lived, single-use link (and its
QR code) that lets one device enrol for push for the user."""

from __future__ import annotations

from fastapi import APIRouter, Request

from passgate.server.client_api.push_links import PushLinkResponse, link_response
from passgate.server.database import Database
from passgate.server.server_api.auth import SecretKeyTenant
from passgate.server.server_api.paths import UserId
from passgate.server.services import audit, push_links
from passgate.server.settings import Settings

router = APIRouter(tags=["users"])


@router.post("/users/{userId}/push-enrolment-links")
async def create_link(
    request: Request, user_id: UserId, tenant: SecretKeyTenant, db: Database
) -> PushLinkResponse:
    settings: Settings = request.app.state.settings
    link = await push_links.create(
        db, tenant, user_id, public_url=settings.public_url, actor=audit.api_actor()
    )
    return link_response(link)
