"""CORS for the Client API only, and only for origins a tenant lists.

A preflight carries no credentials, so it is answered for any origin that some tenant lists
(the per-process `OriginIndex`). The real request then gets `Access-Control-Allow-Origin`
only when the tenant that authenticated it (Basic tenant id, or the token's tenant) lists the
origin; the Client API's auth records that tenant's origins on the request state, so error
responses (an expired token's 401 included) carry the same headers and a browser app can read
the `errorCode`. The Server API never gets CORS headers: its secret key must never be usable
from a browser."""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from passgate.server.errors import error_response
from passgate.server.services.origins import OriginIndex

CLIENT_API = "/v1/client/"
# Where the request state keeps the authenticating tenant's origins (set by client_api.auth).
TENANT_ORIGINS = "passgate_tenant_origins"
# DELETE: a user removing one of their own authenticators (a token scoped
# remove:authenticators; docs/recovery.md).
ALLOW_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type"
# A 429 or 503 says when to come back; a page on another origin may read it.
EXPOSE_HEADERS = "Retry-After"
# The routes Authsignal's browser SDK calls with `credentials: "include"` (its `useCookies`
# flows): the three `/web` routes, and registration (C3), authentication options (C4) and
# verify (C5) after them.
CREDENTIALED_PATHS = frozenset(
    CLIENT_API + path
    for path in (
        "challenge/web",
        "user-authenticators/passkey/registration-options/web",
        "user-authenticators/passkey/authentication-options/web",
        "user-authenticators/passkey",
        "user-authenticators/passkey/authentication-options",
        "verify/passkey",
    )
)


def allows_credentials(path: str) -> bool:
    return path.rstrip("/") in CREDENTIALED_PATHS


class ClientApiCors:
    def __init__(self, app: ASGIApp, *, index: OriginIndex, max_age: int) -> None:
        self.app = app
        self.index = index
        self.max_age = str(max_age)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(CLIENT_API):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if scope["method"] == "OPTIONS" and origin and "access-control-request-method" in headers:
            await self._preflight(scope, receive, send, origin)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers.add_vary_header("Origin")
                listed: Collection[str] = scope.get("state", {}).get(TENANT_ORIGINS, ())
                if origin and origin in listed:
                    response_headers["Access-Control-Allow-Origin"] = origin
                    response_headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
                    if allows_credentials(scope["path"]):
                        response_headers["Access-Control-Allow-Credentials"] = "true"
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, scope: Scope, receive: Receive, send: Send, origin: str) -> None:
        if not await self.index.tenants_listing(origin):
            response = error_response(
                403, "forbidden", f"No tenant of this server lists the origin {origin}."
            )
            response.headers["Vary"] = "Origin"
            await response(scope, receive, send)
            return
        response = JSONResponse({})
        response.headers.update(
            {
                "Vary": "Origin",
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": self.max_age,
            }
        )
        if allows_credentials(scope["path"]):
            response.headers["Access-Control-Allow-Credentials"] = "true"
        await response(scope, receive, send)
