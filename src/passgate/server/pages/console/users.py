"""A tenant's users: search, one user's record (passkeys with their authenticator's name and
icon, push devices, recent actions), naming and removing passkeys and devices, a push
enrolment link for a new device (its QR code shown once, on the page the POST answers),
deleting the user. User ids can hold any character, so they travel in query strings and form
fields."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request, Response
from markupsafe import Markup

from passgate.server.database import Database
from passgate.server.pages.console import forms, web
from passgate.server.services import push_links, tenant_admin, tenants, user_admin
from passgate.server.services.errors import InvalidRequest

router = APIRouter(route_class=web.ConsoleRoute)
UserId = Annotated[str, Form(max_length=255)]
AuthenticatorId = Annotated[str, Form(max_length=36)]


def user_url(tenant_id: str, user_id: str) -> str:
    return f"/admin/tenants/{tenant_id}/user?{urlencode({'id': user_id})}"


@router.get("/tenants/{tenant_id}/users")
async def users_page(
    request: Request,
    tenant_id: str,
    signed_in: web.SignedIn,
    db: Database,
    q: Annotated[str, Query(max_length=255)] = "",
) -> Response:
    context = {
        "overview": await tenant_admin.overview(db, tenant_id),
        "tab": "users",
        "query": q,
        "users": await user_admin.search(db, tenant_id, q),
        "deleted": request.query_params.get("deleted"),
    }
    return web.page(request, "console/users.html", context)


async def _user_page(
    request: Request,
    db: Database,
    tenant_id: str,
    user_id: str,
    refusal: forms.Refusal | None = None,
    push_link: push_links.PushLink | None = None,
) -> Response:
    context = {
        "overview": await tenant_admin.overview(db, tenant_id),
        "tab": "users",
        "record": await user_admin.record(db, tenant_id, user_id),
        "refusal": refusal,
        "done": request.query_params.get("done"),
        "push_link": push_link,
        "push_link_qr": Markup(push_link.qr_svg()) if push_link else None,
    }
    status = refusal.status_code if refusal else 200
    return web.page(request, "console/user.html", context, status_code=status)


@router.get("/tenants/{tenant_id}/user")
async def user_page(
    request: Request,
    tenant_id: str,
    signed_in: web.SignedIn,
    db: Database,
    id: Annotated[str, Query(max_length=255)] = "",
) -> Response:
    return await _user_page(request, db, tenant_id, id)


@router.post("/tenants/{tenant_id}/user/passkeys/rename")
async def rename_passkey(
    request: Request,
    tenant_id: str,
    signed_in: web.CheckedForm,
    db: Database,
    user_id: UserId = "",
    authenticator_id: AuthenticatorId = "",
    name: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    actor = web.actor(request, signed_in)
    _done, refusal = await forms.attempt(
        db,
        lambda: user_admin.rename_passkey(db, actor, tenant_id, user_id, authenticator_id, name),
    )
    if refusal is not None:
        return await _user_page(request, db, tenant_id, user_id, refusal)
    return web.redirect(user_url(tenant_id, user_id) + "&done=renamed")


@router.post("/tenants/{tenant_id}/user/push-enrolment-link")
async def push_enrolment_link(
    request: Request,
    tenant_id: str,
    signed_in: web.CheckedForm,
    db: Database,
    user_id: UserId = "",
) -> Response:
    """Answered with the user's page showing the link: it is shown once, never stored."""
    if not user_id:
        raise InvalidRequest("user_id is required")
    tenant = await tenants.get_tenant(db, tenant_id)
    link, refusal = await forms.attempt(
        db,
        lambda: push_links.create(
            db,
            tenant,
            user_id,
            public_url=web.settings_of(request).public_url,
            actor=web.actor(request, signed_in),
        ),
    )
    return await _user_page(request, db, tenant_id, user_id, refusal, link)


@router.post("/tenants/{tenant_id}/user/authenticators/delete")
async def delete_authenticator(
    request: Request,
    tenant_id: str,
    signed_in: web.CheckedForm,
    db: Database,
    user_id: UserId = "",
    authenticator_id: AuthenticatorId = "",
) -> Response:
    actor = web.actor(request, signed_in)
    await user_admin.delete_authenticator(db, actor, tenant_id, user_id, authenticator_id)
    return web.redirect(user_url(tenant_id, user_id) + "&done=deleted")


@router.post("/tenants/{tenant_id}/user/delete")
async def delete_user(
    request: Request,
    tenant_id: str,
    signed_in: web.CheckedForm,
    db: Database,
    user_id: UserId = "",
    confirm: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    if not confirm:
        raise InvalidRequest("tick the box to confirm deleting the user")
    await user_admin.delete_user(db, web.actor(request, signed_in), tenant_id, user_id)
    return web.redirect(f"/admin/tenants/{tenant_id}/users?deleted=1")
