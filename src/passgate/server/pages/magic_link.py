"""An email magic link's page, `<public url>/magic-link/<link id>/<secret>` (the link itself;
services/magic_links.py makes it and says what it may do).

GET only shows the page: mail scanners and link previews fetch links, so opening one must
change nothing. Its button POSTs the secret back in the form to `/magic-link/<link id>`,
which confirms the link (once, before it expires). That POST needs no other protection
against cross-site requests: without the secret, which only the mailbox holds, it confirms
nothing. Both answer a page for every outcome, with a 4xx status for a link that is unknown
(404) or expired or used (410). Like every hosted page: no-store, no-referrer, and nobody
may frame it. Its language (English, German or French) is the browser's `Accept-Language`:
the link may be opened on any device, and it names no track."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

from passgate.server.database import Database
from passgate.server.pages.rendering import render
from passgate.server.pages.translations import MAGIC_LINK, page_language, texts
from passgate.server.services import branding, magic_links
from passgate.server.services.magic_links import LinkView

router = APIRouter(include_in_schema=False)

STATUS = {"ready": 200, "confirmed": 200, "unknown": 404, "expired": 410, "used": 410}
# A form with one secret in it is far smaller; anything longer is not this page's form.
MAX_FORM = 1024


@router.get(magic_links.PATH + "/{link_id}/{secret}")
async def show(link_id: str, secret: str, request: Request, db: Database) -> HTMLResponse:
    view = await magic_links.open_link(db, link_id, secret)
    return _page(request, view, link_id=link_id, secret=secret)


@router.post(magic_links.PATH + "/{link_id}")
async def confirm(link_id: str, request: Request, db: Database) -> HTMLResponse:
    body = await request.body()
    form = parse_qs(body.decode("utf-8", "replace")) if len(body) <= MAX_FORM else {}
    secret = (form.get("secret") or [""])[0]
    view = await magic_links.confirm_link(db, link_id, secret)
    return _page(request, view, link_id=link_id, secret="")


def _page(request: Request, view: LinkView, *, link_id: str, secret: str) -> HTMLResponse:
    tenant = view.tenant
    accent = branding.accent(tenant) if tenant else None
    language = page_language(request.headers.get("accept-language"))
    text = texts(language, MAGIC_LINK, tenant=tenant.name if tenant else "", email=view.email or "")
    context: dict[str, Any] = {
        "lang": language,
        "text": text,
        "state": view.state,
        "heading": text[f"title_{view.state}"],
        "tenant_name": tenant.name if tenant else None,
        "email": view.email,
        "confirm_path": f"{magic_links.PATH}/{link_id}",
        "secret": secret if view.state == "ready" else "",
        "accent": accent,
        "accent_color": accent.color if accent else None,
    }
    return render(request, "magic_link.html", context, status_code=STATUS[view.state])
