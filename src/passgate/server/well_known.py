"""The files that tie native apps to a relying party Passgate hosts, chosen by the Host header:
`/.well-known/apple-app-site-association` and `/.well-known/assetlinks.json`
(docs/wire.md#native-app-association)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from passgate.server.database import Database
from passgate.server.services import passkey_policy, well_known
from passgate.server.services.errors import NotFound

router = APIRouter(prefix="/.well-known", tags=["well-known"], include_in_schema=False)


async def _policies(request: Request, db: Database) -> list[passkey_policy.PasskeyPolicy]:
    found = await well_known.hosted_policies(db, request.headers.get("host", ""))
    if not found:
        raise NotFound("No tenant here uses this host as its relying party id.")
    return found


@router.get("/apple-app-site-association")
async def apple_app_site_association(request: Request, db: Database) -> dict[str, Any]:
    return well_known.apple_app_site_association(await _policies(request, db))


@router.get("/assetlinks.json")
async def asset_links(request: Request, db: Database) -> list[dict[str, Any]]:
    return well_known.asset_links(await _policies(request, db))
