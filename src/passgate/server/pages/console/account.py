"""The signed-in admin's own passkeys (add another, remove one) and the admins of this server
with their live sessions, which any admin may revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response

from passgate.server.database import Database
from passgate.server.pages.console import web
from passgate.server.pages.console.auth import FinishBody
from passgate.server.services.admins import accounts, ceremonies, sessions

router = APIRouter(route_class=web.ConsoleRoute)


@router.get("/account")
async def account(
    request: Request, signed_in: web.SignedIn, db: Database, enrolled: str = ""
) -> Response:
    admin = signed_in.admin
    context = {
        "passkeys": await accounts.passkeys(db, admin.id),
        "sessions": await sessions.live_sessions(db, admin.id, web.limits(request)),
        "current_session": signed_in.session_id,
        "enrolled": bool(enrolled),
    }
    return web.page(request, "console/account.html", context)


@router.post("/account/passkeys/options")
async def passkey_options(
    request: Request, response: Response, signed_in: web.CheckedJson, db: Database
) -> Any:
    binding = web.bind_ceremony(request, response)
    policy = web.admin_policy(request)
    started = await ceremonies.passkey_options(db, policy, signed_in.admin, binding)
    return {"challengeId": started.challenge_id, "options": started.options}


@router.post("/account/passkeys/finish")
async def passkey_finish(
    request: Request, body: FinishBody, signed_in: web.CheckedJson, db: Database
) -> Any:
    await ceremonies.finish_registration(
        db,
        web.admin_policy(request),
        challenge_id=body.challenge_id,
        credential=body.credential,
        binding_hash=web.presented_ceremony(request),
        signed_in=signed_in.admin,
        source=web.client_ip(request),
    )
    return {"redirect": "/admin/account?added=1"}


@router.post("/account/passkeys/{passkey_id}/delete")
async def passkey_delete(
    request: Request, passkey_id: str, signed_in: web.CheckedForm, db: Database
) -> Response:
    actor = web.actor(request, signed_in)
    await accounts.remove_passkey(db, actor, signed_in.admin, passkey_id)
    return web.redirect("/admin/account")


@router.get("/admins")
async def admins(request: Request, signed_in: web.SignedIn, db: Database) -> Response:
    listed = await accounts.list_admins(db)
    return web.page(request, "console/admins.html", {"admins": listed})


@router.get("/admins/{admin_id}")
async def admin_detail(
    request: Request, admin_id: str, signed_in: web.SignedIn, db: Database
) -> Response:
    admin = await accounts.get_admin(db, admin_id)
    context = {
        "admin": admin,
        "passkeys": await accounts.passkeys(db, admin.id),
        "sessions": await sessions.live_sessions(db, admin.id, web.limits(request)),
        "current_session": signed_in.session_id,
    }
    return web.page(request, "console/admin.html", context)


@router.post("/admins/{admin_id}/sessions/revoke")
async def revoke_sessions(
    request: Request,
    admin_id: str,
    signed_in: web.CheckedForm,
    db: Database,
    session_id: Annotated[str, Form(max_length=36)] = "",
) -> Response:
    """Revoke one session (`session_id`) or, without it, all of the admin's sessions."""
    admin = await accounts.get_admin(db, admin_id)
    actor = web.actor(request, signed_in)
    await sessions.revoke(db, actor, admin, session_id or None)
    return web.redirect(f"/admin/admins/{admin.id}?revoked=1")
