"""The user's removal of their own authenticators (a Passgate extension; docs/recovery.md):
after a recovery, the devices that were lost are removed with a token the app's backend
tracked with scope `remove:authenticators`. The hosted page calls it; so may an app."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from passgate.server.client_api.auth import TokenCaller
from passgate.server.client_api.rate_limits import ClientWriteLimit
from passgate.server.database import Database
from passgate.server.schemas import WireModel
from passgate.server.services import recovery

router = APIRouter(tags=["recovery"])
AuthenticatorId = Annotated[str, Path(alias="userAuthenticatorId", max_length=36)]


class RemovedResponse(WireModel):
    removed_authenticator_id: str
    verification_method: str


@router.delete("/user-authenticators/{userAuthenticatorId}", dependencies=[ClientWriteLimit])
async def remove_authenticator(
    authenticator_id: AuthenticatorId, caller: TokenCaller, db: Database
) -> RemovedResponse:
    assert caller.claims is not None
    method = await recovery.remove_authenticator(db, caller.tenant, caller.claims, authenticator_id)
    return RemovedResponse(removed_authenticator_id=authenticator_id, verification_method=method)
