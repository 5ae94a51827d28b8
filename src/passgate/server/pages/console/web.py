"""What every console route shares: the signed-in admin, the CSRF and Origin checks, cookies,
rendering, and turning domain errors into pages.

- The session cookie is HttpOnly, `SameSite=Strict`, scoped to /admin, and `Secure` when the
  public URL is https.
- Every POST must come from the console's own origin (`Origin` header equal to the public
  origin) and, once signed in, carry the session's CSRF token (a hidden form field, or the
  `X-CSRF-Token` header for the passkey calls of console.js).
- Pages are sent with `Referrer-Policy: same-origin`: browsers then send the real `Origin` on
  the console's own form posts (with `no-referrer` they send `Origin: null`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Form, Request, Response
from fastapi.routing import APIRoute
from starlette.responses import JSONResponse, RedirectResponse

from passgate.server import binding_cookies, forwarded
from passgate.server.database import Database, undo_writes
from passgate.server.errors import error_response
from passgate.server.pages.rendering import render
from passgate.server.services import audit
from passgate.server.services.admins import ceremonies, sessions
from passgate.server.services.errors import Forbidden, PassgateError, Unauthorized
from passgate.server.services.passkey_policy import PasskeyPolicy
from passgate.server.settings import Settings

SESSION_COOKIE = "passgate_admin"
CEREMONY_COOKIE = "passgate_admin_ceremony"
COOKIE_PATH = "/admin"
CEREMONY_SECONDS = 5 * 60
HOME = "/admin/tenants"


def _wants_json(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("application/json")


class ConsoleRoute(APIRoute):
    """Domain errors become an error page (or, for console.js's JSON calls, Authsignal's
    error body); a missing or ended session sends the browser to the sign-in page. The
    request's transaction has been rolled back by then: nothing is half-saved."""

    # Even a GET may write: it refreshes the admin's session (server/database.py).
    writes_on_get = True

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handle(request)
            except PassgateError as exc:
                # Caught before the session dependency exits: it would commit otherwise.
                await undo_writes(request, exc)
                return _error(request, exc)

        return route


def _error(request: Request, exc: PassgateError) -> Response:
    if _wants_json(request):
        return error_response(exc.status_code, exc.error_code, exc.description)
    if isinstance(exc, Unauthorized):
        target = request.url.path if request.method == "GET" else HOME
        if request.url.query and request.method == "GET":
            target += "?" + request.url.query
        response = RedirectResponse(f"/admin/sign-in?next={quote(target)}", status_code=303)
        if request.cookies.get(SESSION_COOKIE):
            clear_session_cookie(request, response)
        return response
    return page(request, "console/error.html", {"error": exc}, status_code=exc.status_code)


def page(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    signed_in: sessions.SignedIn | None = None,
    status_code: int = 200,
) -> Response:
    """A console page: the template with the signed-in admin and their CSRF token."""
    signed_in = signed_in or getattr(request.state, "signed_in", None)
    full = {
        "signed_in": signed_in,
        "csrf_token": signed_in.csrf_token if signed_in else None,
        "referrer_policy": "same-origin",
        "json_text": json_text,
        **context,
    }
    headers = {"Referrer-Policy": "same-origin"}
    return render(request, template, full, status_code=status_code, headers=headers)


def json_text(value: Any) -> str:
    """Data for people to read (audit details, an action's custom data): JSON as typed,
    left to the template's autoescaping rather than `tojson`'s \\u0027 escapes."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303)


def json_reply(body: Mapping[str, Any]) -> JSONResponse:
    return JSONResponse(dict(body))


# Settings, policy, actor ------------------------------------------------------------------


def settings_of(request: Request) -> Settings:
    found: Settings = request.app.state.settings
    return found


def admin_policy(request: Request) -> PasskeyPolicy:
    return ceremonies.admin_policy(settings_of(request).public_url)


def limits(request: Request) -> sessions.SessionLimits:
    return sessions.SessionLimits.from_settings(settings_of(request))


def client_ip(request: Request) -> str | None:
    return forwarded.client_ip(request)


def actor(request: Request, signed_in: sessions.SignedIn) -> audit.Actor:
    """The signed-in admin, from this request's address: who and where, for the audit log."""
    return audit.Actor(type="admin", id=signed_in.admin.email, source=client_ip(request))


# Checks ----------------------------------------------------------------------------------


def check_origin(request: Request) -> None:
    """A state-changing request must come from a page of the console itself."""
    expected = settings_of(request).public_origin
    if expected is None or request.headers.get("origin", "").lower() != expected:
        raise Forbidden(
            "This request did not come from the console's own pages.",
            error_code="origin_refused",
        )


async def _signed_in(request: Request, db: Database) -> sessions.SignedIn:
    token = request.cookies.get(SESSION_COOKIE)
    signed_in = await sessions.resolve(db, token, limits(request))
    request.state.signed_in = signed_in
    return signed_in


async def _checked_form(
    request: Request,
    signed_in: Annotated[sessions.SignedIn, Depends(_signed_in)],
    csrf_token: Annotated[str, Form()] = "",
) -> sessions.SignedIn:
    check_origin(request)
    sessions.check_csrf(signed_in, csrf_token)
    return signed_in


async def _checked_json(
    request: Request, signed_in: Annotated[sessions.SignedIn, Depends(_signed_in)]
) -> sessions.SignedIn:
    check_origin(request)
    sessions.check_csrf(signed_in, request.headers.get("x-csrf-token"))
    return signed_in


# A page view by a signed-in admin.
SignedIn = Annotated[sessions.SignedIn, Depends(_signed_in)]
# A form post by a signed-in admin, from the console's origin, with the session's CSRF token.
CheckedForm = Annotated[sessions.SignedIn, Depends(_checked_form)]
# A JSON call of console.js by a signed-in admin, with the CSRF token in X-CSRF-Token.
CheckedJson = Annotated[sessions.SignedIn, Depends(_checked_json)]


# Cookies ---------------------------------------------------------------------------------


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    settings = settings_of(request)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.console_session_hours * 3600,
        path=COOKIE_PATH,
        httponly=True,
        secure=settings.secure_cookies,
        samesite="strict",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        secure=settings_of(request).secure_cookies,
        samesite="strict",
    )


def bind_ceremony(request: Request, response: Response) -> str:
    """Set a fresh HttpOnly cookie binding a passkey ceremony to this browser; returns the
    hash the challenge keeps."""
    value = binding_cookies.new_value()
    response.set_cookie(
        CEREMONY_COOKIE,
        value,
        max_age=CEREMONY_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        secure=settings_of(request).secure_cookies,
        samesite="strict",
    )
    return binding_cookies.digest(value)


def clear_ceremony_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        CEREMONY_COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        secure=settings_of(request).secure_cookies,
        samesite="strict",
    )


def presented_ceremony(request: Request) -> str | None:
    return binding_cookies.presented(request, CEREMONY_COOKIE)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path, never another site."""
    if target and target.startswith("/admin") and not target.startswith("//"):
        return target
    return HOME
