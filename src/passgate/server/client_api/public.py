"""Unauthenticated tenant material: the JWKS that verifies the tenant's tokens
(docs/wire.md#signing-and-jwks)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from passgate.server.database import Database
from passgate.server.services import tenants, tokens

router = APIRouter(tags=["public"])


@router.get("/public/{tenantId}/.well-known/jwks")
async def jwks(
    tenant_id: Annotated[str, Path(alias="tenantId", max_length=36)], db: Database
) -> dict[str, Any]:
    tenant = await tenants.get_tenant(db, tenant_id)
    return tokens.public_jwks(tenant)
