"""The requesting page's side of push: start a challenge, poll its outcome, or wait for it
(docs/wire.md#push-routes)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import JSONResponse

from passgate.server.client_api.auth import TokenCaller
from passgate.server.client_api.push_schemas import (
    StartChallengeRequest,
    StartChallengeResponse,
    VerifyRequest,
    VerifyResponse,
)
from passgate.server.database import Database
from passgate.server.errors import error_response
from passgate.server.push import Hub
from passgate.server.services import actions
from passgate.server.services.push import challenges
from passgate.server.services.push.challenges import MAX_WAIT_SECONDS
from passgate.server.services.push.errors import TooManyRequests

router = APIRouter(tags=["push"])
RATE_LIMITED = "Too many push challenges for this user; try again in a few minutes."


@router.post(
    "/challenge/push", response_model=StartChallengeResponse, response_model_exclude_none=True
)
async def start_challenge(
    body: StartChallengeRequest, caller: TokenCaller, db: Database, hub: Hub
) -> StartChallengeResponse | JSONResponse:
    assert caller.claims is not None
    started = await challenges.start_for_token(
        db,
        caller.tenant,
        caller.claims,
        hub,
        action_code=body.action,
        authenticator_id=body.user_authenticator_id,
    )
    if started.challenge is None:
        # Returned, not raised: the refused attempt is recorded when the request commits.
        return error_response(TooManyRequests.status_code, TooManyRequests.error_code, RATE_LIMITED)
    return StartChallengeResponse(
        challenge_id=started.challenge.id,
        expires_at=int(started.challenge.expires_at.timestamp()),
        verification_code=started.challenge.verification_code,
    )


@router.post("/verify/push", response_model_exclude_none=True)
async def verify(
    body: VerifyRequest,
    caller: TokenCaller,
    db: Database,
    hub: Hub,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS)] = 0,
) -> VerifyResponse:
    """W2; with `wait` (a Passgate extension) it answers as soon as the challenge is consumed."""
    assert caller.claims is not None
    status = await challenges.status(
        db, caller.tenant, caller.claims, body.challenge_id, hub=hub, wait=wait
    )
    token = (
        None
        if status.action is None
        else actions.action_token(caller.tenant, status.action, caller.claims.username)
    )
    return VerifyResponse(
        is_verified=status.is_verified, is_consumed=status.is_consumed, access_token=token
    )
