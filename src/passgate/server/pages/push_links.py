"""Push enrolment link pages (docs/push-enrolment-links.md), on Passgate's public URL:

- `GET /push-enrolment`: where a link points. The token is in the fragment, which the
  browser keeps to itself; the page tells a person who opened the link in a browser how
  to use it instead (scan it from the authenticator app, or `passgate device enroll --link`).
- `GET /push-enrolment/new?token=...`: the hosted page's offer to a signed-in user (a token
  from a track scoped `add:authenticators`, or the token a successful challenge answered): a
  button, because showing the code spends the token's leave to add an authenticator.
- `POST /push-enrolment/new` (form field `token`): makes the link (`push_links.
  create_for_token`, the one enrolment rule) and shows its QR code once.

The token is the credential and travels in the form, so no cookie is involved. Refusals show
the reason with the service's status code. The pages speak English, German or French: the
token's action's locale, else its user's, else the browser's `Accept-Language` (the landing
page, which never sees the token, and refusals go by the header alone). The hosted challenge
page opens the QR code in a new tab after a recovery (docs/recovery.md), so the shown page
says the tab may be closed once the device is added."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from markupsafe import Markup
from starlette.responses import HTMLResponse

from passgate.server.database import Database
from passgate.server.pages.rendering import render
from passgate.server.pages.translations import PUSH_ENROLMENT, page_language, texts
from passgate.server.services import enrolment, hosted_page, push_links, tenants, tokens
from passgate.server.services.errors import InvalidToken, PassgateError, Unauthorized
from passgate.server.services.tenants import TenantRow
from passgate.server.services.tokens import TokenClaims
from passgate.server.settings import Settings

router = APIRouter(include_in_schema=False)
Token = Annotated[str, Form(max_length=hosted_page.MAX_TOKEN_LENGTH)]
TEMPLATE = "push_enrolment.html"


@router.get(push_links.PAGE_PATH)
async def landing_page(request: Request) -> HTMLResponse:
    return render(request, TEMPLATE, {"mode": "landing", **_language(request)})


@router.get(push_links.PAGE_PATH + "/new")
async def offer_page(
    request: Request,
    db: Database,
    token: Annotated[str, Query(max_length=hosted_page.MAX_TOKEN_LENGTH)] = "",
) -> HTMLResponse:
    try:
        tenant, claims = await _authenticate(db, token)
        await enrolment.check(db, tenant, claims)  # refused now rather than after the click
    except PassgateError as refusal:
        return _refusal(request, refusal)
    context = {
        "mode": "offer",
        "token": token,
        "tenant_name": tenant.name,
        **_language(request, await hosted_page.preferred_locale(db, tenant, claims)),
    }
    return render(request, TEMPLATE, context)


@router.post(push_links.PAGE_PATH + "/new")
async def show_link(request: Request, db: Database, token: Token = "") -> HTMLResponse:
    settings: Settings = request.app.state.settings
    try:
        tenant, claims = await _authenticate(db, token)
        link = await push_links.create_for_token(db, tenant, claims, public_url=settings.public_url)
    except PassgateError as refusal:
        return _refusal(request, refusal)
    locale = await hosted_page.preferred_locale(db, tenant, claims)
    context: dict[str, Any] = {
        **_language(request, locale),
        "mode": "shown",
        "tenant_name": tenant.name,
        "link": link,
        "qr": Markup(link.qr_svg()),
    }
    return render(request, TEMPLATE, context)


async def _authenticate(db: Database, token: str) -> tuple[TenantRow, TokenClaims]:
    tenant_id = hosted_page.claimed_tenant_id(token) if token else None
    tenant = await tenants.find_tenant(db, tenant_id) if tenant_id else None
    if tenant is None:
        raise Unauthorized("The link's token is not valid.", error_code="invalid_token")
    return tenant, tokens.decode_token(tenant, token)


def _language(request: Request, locale: str | None = None) -> dict[str, Any]:
    language = page_language(request.headers.get("accept-language"), locale)
    return {"lang": language, "text": texts(language, PUSH_ENROLMENT)}


def _refusal(request: Request, refusal: PassgateError) -> HTMLResponse:
    """The refusal in the page's words, with the service's own (English) reason below it."""
    token_refused = isinstance(refusal, InvalidToken | Unauthorized)
    status = 401 if isinstance(refusal, InvalidToken) else refusal.status_code
    context = {
        "mode": "refused",
        "token_refused": token_refused,
        "message": refusal.description,
        **_language(request),
    }
    return render(request, TEMPLATE, context, status_code=status)
