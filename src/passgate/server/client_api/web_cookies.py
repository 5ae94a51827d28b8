"""The cookie that binds a challenge to one browser, for Authsignal's browser SDK's
`useCookies` flows (its `/web` routes, called with `credentials: "include"`).

A `/web` route starts a challenge and sets an HttpOnly cookie on Passgate's origin holding a
random value; the challenge keeps only the value's SHA-256. Registration (C3) and verify (C5)
of that challenge are refused without the same cookie, so a challenge id that leaks from the
page is useless to another browser. `SameSite=None; Secure` when Passgate's public URL is
https (the app's page is usually on another site); plain `SameSite=Lax` over http (localhost
in development and tests), where browsers refuse `SameSite=None` without `Secure`.
[inferred: Authsignal does not document its cookie; this is Passgate's design]"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response

from passgate.server import binding_cookies
from passgate.server.settings import Settings

COOKIE = "passgate_challenge"
COOKIE_PATH = "/v1/client"
COOKIE_SECONDS = 15 * 60


def bind(request: Request, response: Response) -> str:
    """Set (or refresh) the browser's binding cookie and return the hash to store with a new
    challenge. One value per browser, so several challenges in its tabs can be open at once."""
    value = request.cookies.get(COOKIE)
    if value is None or not binding_cookies.is_value(value):
        value = binding_cookies.new_value()
    settings: Settings = request.app.state.settings
    response.set_cookie(
        COOKIE,
        value,
        max_age=COOKIE_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        secure=settings.secure_cookies,
        samesite="none" if settings.secure_cookies else "lax",
    )
    return binding_cookies.digest(value)


async def _hosted_origin(request: Request) -> str | None:
    settings: Settings = request.app.state.settings
    return settings.public_origin


async def _binding(request: Request) -> str | None:
    """The hash of this browser's binding cookie, if it sent one."""
    return binding_cookies.presented(request, COOKIE)


# Passgate's own public origin, where the hosted challenge page runs.
HostedOrigin = Annotated[str | None, Depends(_hosted_origin)]
# The binding cookie's hash, when the browser sent one.
PresentedBinding = Annotated[str | None, Depends(_binding)]
