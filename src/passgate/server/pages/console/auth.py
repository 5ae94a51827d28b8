"""Signing in and out of the console, and enrolling a passkey from a one-time link.

The WebAuthn calls are JSON, made by static/console.js; each ceremony is bound to the browser
by an HttpOnly cookie and checked against the console's origin."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from passgate.server.database import Database
from passgate.server.pages.console import web
from passgate.server.services.admins import accounts, ceremonies, sessions

router = APIRouter(route_class=web.ConsoleRoute)


class LinkBody(BaseModel):
    token: str = Field(max_length=200)


class FinishBody(BaseModel):
    challenge_id: str = Field(alias="challengeId", max_length=36)
    credential: dict[str, Any]
    next: str | None = Field(default=None, max_length=2000)


@router.get("/")
async def home() -> Response:
    """/admin/ (and /admin, which Starlette redirects here) opens the tenants."""
    return web.redirect(web.HOME)


@router.get("/sign-in")
async def sign_in_page(request: Request, next: str = "") -> Response:
    context = {"next": web.safe_next(next), "unavailable": None}
    try:
        web.admin_policy(request)
    except ceremonies.ConsoleUnavailable as exc:
        context["unavailable"] = exc.description
    return web.page(request, "console/sign_in.html", context)


@router.post("/sign-in/options")
async def sign_in_options(request: Request, response: Response, db: Database) -> Any:
    web.check_origin(request)
    binding = web.bind_ceremony(request, response)
    started = await ceremonies.sign_in_options(db, web.admin_policy(request), binding)
    return {"challengeId": started.challenge_id, "options": started.options}


@router.post("/sign-in/finish")
async def sign_in_finish(
    request: Request, response: Response, body: FinishBody, db: Database
) -> Any:
    web.check_origin(request)
    admin = await ceremonies.finish_sign_in(
        db,
        web.admin_policy(request),
        challenge_id=body.challenge_id,
        credential=body.credential,
        binding_hash=web.presented_ceremony(request),
    )
    await _start_session(request, response, db, admin)
    return {"redirect": web.safe_next(body.next)}


@router.get("/enrol")
async def enrol_page(
    request: Request, db: Database, token: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    """The page an enrolment link opens: whose passkey it makes, and the button."""
    _link, admin = await accounts.check_link(db, token)
    web.admin_policy(request)
    return web.page(request, "console/enrol.html", {"admin": admin, "token": token})


@router.post("/enrol/options")
async def enrol_options(request: Request, response: Response, body: LinkBody, db: Database) -> Any:
    web.check_origin(request)
    binding = web.bind_ceremony(request, response)
    policy = web.admin_policy(request)
    started = await ceremonies.enrolment_options(db, policy, body.token, binding)
    return {"challengeId": started.challenge_id, "options": started.options}


@router.post("/enrol/finish")
async def enrol_finish(request: Request, response: Response, body: FinishBody, db: Database) -> Any:
    web.check_origin(request)
    admin = await ceremonies.finish_registration(
        db,
        web.admin_policy(request),
        challenge_id=body.challenge_id,
        credential=body.credential,
        binding_hash=web.presented_ceremony(request),
        signed_in=None,
        source=web.client_ip(request),
    )
    await _start_session(request, response, db, admin)
    return {"redirect": "/admin/account?enrolled=1"}


async def _start_session(
    request: Request, response: Response, db: Database, admin: accounts.AdminRow
) -> None:
    token = await sessions.start(
        db,
        admin,
        web.limits(request),
        ip_address=web.client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )
    web.set_session_cookie(request, response, token)
    web.clear_ceremony_cookie(request, response)


@router.post("/sign-out")
async def sign_out(request: Request, signed_in: web.CheckedForm, db: Database) -> Response:
    await sessions.sign_out(db, signed_in, web.client_ip(request))
    response = web.redirect("/admin/sign-in?signed_out=1")
    web.clear_session_cookie(request, response)
    return response
