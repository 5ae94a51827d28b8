"""Server API authentication: HTTP Basic with the tenant secret key as the username."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends, Request

from passgate.server.database import Database
from passgate.server.observability import TENANT_ID
from passgate.server.services import tenants
from passgate.server.services.tenants import TenantRow


def basic_username(authorization: str | None) -> str | None:
    """The username of a `Basic` Authorization header, or None when absent or malformed."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic" or not credentials:
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


async def _secret_key_tenant(request: Request, db: Database) -> TenantRow:
    tenant = await tenants.authenticate(db, basic_username(request.headers.get("authorization")))
    setattr(request.state, TENANT_ID, tenant.id)  # for the request's log line
    return tenant


SecretKeyTenant = Annotated[TenantRow, Depends(_secret_key_tenant)]


def request_secret_key(request: Request) -> tenants.SecretKey:
    """The caller's secret key, not yet checked (`Unauthorized` when there is none)."""
    key = tenants.secret_key(basic_username(request.headers.get("authorization")))
    if key.tenant is not None:  # the tenant this key last opened, for the request's log line
        setattr(request.state, TENANT_ID, key.tenant.id)
    return key


async def _secret_key(request: Request) -> tenants.SecretKey:
    return request_secret_key(request)


# The caller's secret key, not yet checked: for routes whose own statement checks it (track,
# validate), so the check costs no statement of its own.
SecretKey = Annotated[tenants.SecretKey, Depends(_secret_key)]
