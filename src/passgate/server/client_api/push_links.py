"""Push enrolment links (a Passgate extension, docs/push-enrolment-links.md): the user's app
or the hosted page, holding a token that may add an authenticator, asks for a link and QR
code that a second device (a phone, `passgate device enroll --link`) enrols with."""

from __future__ import annotations

from fastapi import APIRouter, Request

from passgate.server.client_api.auth import TokenCaller
from passgate.server.database import Database
from passgate.server.schemas import WireModel
from passgate.server.services import push_links
from passgate.server.settings import Settings

router = APIRouter(tags=["push"])


class PushLinkResponse(WireModel):
    user_id: str
    url: str
    token: str
    expires_at: int
    qr_code_svg: str


def link_response(link: push_links.PushLink) -> PushLinkResponse:
    return PushLinkResponse(
        user_id=link.user_id,
        url=link.url,
        token=link.token,
        expires_at=link.expires_at,
        qr_code_svg=link.qr_svg(),
    )


@router.post("/push-enrolment-links")
async def create_link(request: Request, caller: TokenCaller, db: Database) -> PushLinkResponse:
    """Spends the token's leave to add an authenticator (the one enrolment rule) on the link."""
    assert caller.claims is not None
    settings: Settings = request.app.state.settings
    link = await push_links.create_for_token(
        db, caller.tenant, caller.claims, public_url=settings.public_url
    )
    return link_response(link)
