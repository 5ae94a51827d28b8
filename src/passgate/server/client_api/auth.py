"""Client API authentication: a Bearer token from `track` or a previous verify, else Basic
carrying only the tenant id, in any of the three encodings the SDKs use
(docs/wire.md#authorization-headers)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, Request

from passgate.server.cors import TENANT_ORIGINS
from passgate.server.database import Database
from passgate.server.observability import TENANT_ID
from passgate.server.services import tenants, tokens
from passgate.server.services.errors import InvalidToken, Unauthorized
from passgate.server.services.tenants import TenantRow
from passgate.server.services.tokens import TokenClaims

MISSING_TENANT = "The request needs a Bearer token or Basic authorization with the tenant id."
TOKEN_REQUIRED = "This call needs a Bearer token from your backend's track call."


@dataclass(frozen=True, slots=True)
class ClientCaller:
    """Who is calling: always a tenant; with a Bearer token, also the user and action.
    `token`: the Bearer token (to check again against a fresh tenant, see `recheck`)."""

    tenant: TenantRow
    claims: TokenClaims | None
    token: str | None = None

    def recheck(
        self, db: Database
    ) -> Callable[[datetime | None], Awaitable[tuple[TenantRow, TokenClaims | None]]]:
        """For a caller resolved from the per-process tenant cache: given the tenant's version
        as a deciding statement read it, the tenant and claims to decide with. The same
        version keeps them; another one reads the tenant afresh and checks the token again
        (a rotated signing key fails it); no tenant (None) is refused."""

        async def fresh(version: datetime | None) -> tuple[TenantRow, TokenClaims | None]:
            if version is not None and version == self.tenant.updated_at:
                return self.tenant, self.claims
            tenant = None if version is None else await tenants.find_tenant(db, self.tenant.id)
            if tenant is None:
                raise Unauthorized("Unknown tenant id.", error_code="unauthorized")
            if self.token is None:
                return tenant, None
            try:
                return tenant, tokens.decode_token(tenant, self.token)
            except InvalidToken as exc:
                raise Unauthorized(exc.description, error_code=exc.error_code) from exc

        return fresh


def _b64decode_lenient(text: str) -> bytes:
    """Either alphabet, padding optional."""
    text = text.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def tenant_id_from_basic(credentials: str) -> str | None:
    """Android `base64("id:")`, iOS `base64url("id:")` unpadded, browser
    `btoa(encodeURIComponent(id))` without a colon: all give `id`."""
    try:
        decoded = unquote(_b64decode_lenient(credentials).decode("utf-8"))
    except (binascii.Error, ValueError):
        return None
    tenant_id = decoded.split(":", 1)[0].strip()
    return tenant_id or None


def _unverified_tenant_id(token: str) -> str | None:
    """The tenant a token claims to be from; the signature is checked against that tenant."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(_b64decode_lenient(parts[1]))
    except (binascii.Error, ValueError):
        return None
    other = claims.get("other") if isinstance(claims, dict) else None
    tenant_id = other.get("tenantId") if isinstance(other, dict) else None
    return tenant_id if isinstance(tenant_id, str) else None


async def _tenant(
    request: Request,
    db: Database,
    tenant_id: str | None,
    code: str,
    message: str,
    *,
    cached: bool = False,
) -> TenantRow:
    tenant = None
    if tenant_id and len(tenant_id) <= 36:
        tenant = (tenants.cached(tenant_id) if cached else None) or await tenants.find_tenant(
            db, tenant_id
        )
    if tenant is None:
        raise Unauthorized(message, error_code=code)
    # From here on, even an error (an expired token, say) is readable by the tenant's origins.
    setattr(request.state, TENANT_ORIGINS, tenant.origins)
    setattr(request.state, TENANT_ID, tenant.id)  # for the request's log line
    return tenant


async def _client_caller(request: Request, db: Database) -> ClientCaller:
    return await _resolve(request, db, cached=False)


async def _cached_client_caller(request: Request, db: Database) -> ClientCaller:
    return await _resolve(request, db, cached=True)


async def _resolve(
    request: Request, db: Database, *, cached: bool, accept: frozenset[str] = frozenset()
) -> ClientCaller:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and credentials.strip():
        token = credentials.strip()
        tenant = await _tenant(
            request,
            db,
            _unverified_tenant_id(token),
            "invalid_token",
            "The token is not valid.",
            cached=cached,
        )
        try:
            try:
                claims = tokens.decode_token(tenant, token, accept=accept)
            except tokens.UnknownSigningKey:
                if not cached:
                    raise
                # Signed with a key newer than this process's copy of the tenant (a rotation
                # elsewhere): read the tenant again and check once more.
                tenant = await _tenant(
                    request, db, tenant.id, "invalid_token", "The token is not valid."
                )
                claims = tokens.decode_token(tenant, token, accept=accept)
        except InvalidToken as exc:
            raise Unauthorized(exc.description, error_code=exc.error_code) from exc
        return ClientCaller(tenant, claims, token)
    if scheme == "basic" and credentials.strip():
        tenant_id = tenant_id_from_basic(credentials)
        return ClientCaller(
            await _tenant(
                request, db, tenant_id, "unauthorized", "Unknown tenant id.", cached=cached
            ),
            None,
        )
    raise Unauthorized(MISSING_TENANT)


async def _token_caller(caller: Annotated[ClientCaller, Depends(_client_caller)]) -> ClientCaller:
    if caller.claims is None:
        raise Unauthorized(TOKEN_REQUIRED, error_code="token_required")
    return caller


async def _push_enrolment_caller(request: Request, db: Database) -> ClientCaller:
    caller = await _resolve(request, db, cached=False, accept=frozenset({tokens.PUSH_ENROLMENT}))
    return await _token_caller(caller)


async def _cached_token_caller(
    caller: Annotated[ClientCaller, Depends(_cached_client_caller)],
) -> ClientCaller:
    return await _token_caller(caller)


# Bearer if given, else Basic(tenant id).
AnyCaller = Annotated[ClientCaller, Depends(_client_caller)]
# Bearer required: `caller.claims` is set.
TokenCaller = Annotated[ClientCaller, Depends(_token_caller)]
# The same, and a push enrolment link's token is taken too: only P2 (a device's enrolment).
PushEnrolmentCaller = Annotated[ClientCaller, Depends(_push_enrolment_caller)]
# The same, with the tenant from the per-process cache when this process has seen it (no
# statement): only for routes whose deciding statement returns the tenant's version and that
# then decide with `caller.recheck` (the passkey routes; docs/passkeys.md).
CachedAnyCaller = Annotated[ClientCaller, Depends(_cached_client_caller)]
CachedTokenCaller = Annotated[ClientCaller, Depends(_cached_token_caller)]
