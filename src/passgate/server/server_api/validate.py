"""`POST /validate`: the backend redeems the token a challenge produced
(docs/wire.md#server-api-endpoints)."""

from __future__ import annotations

from fastapi import APIRouter

from passgate.server.database import Database, Db
from passgate.server.schemas import ValidateRequest, ValidateResponse
from passgate.server.server_api.auth import SecretKey
from passgate.server.services import actions, tenants
from passgate.server.services.enums import ActionState

router = APIRouter(tags=["validate"])


@router.post("/validate", response_model_exclude_none=True)
async def validate(body: ValidateRequest, key: SecretKey, db: Database) -> ValidateResponse:
    # Well-formed requests are answered by server/fast_routes.py, which calls `validated`
    # without FastAPI's dependency solving; this route answers the rest (and documents it).
    return await validated(db, key, body)


async def validated(db: Db, key: tenants.SecretKey, body: ValidateRequest) -> ValidateResponse:
    result = await actions.validate(
        db, key, body.token, user_id=body.user_id, action_code=body.action
    )
    action = result.action
    if action is None:
        return ValidateResponse(is_valid=False, error=result.error)
    return ValidateResponse(
        is_valid=result.is_valid,
        state=ActionState(action.state),
        state_updated_at=action.state_updated_at,
        user_id=action.user_id,
        action_code=action.action_code,
        action=action.action_code,
        idempotency_key=action.idempotency_key,
        verification_method=action.verification_method,
        error=result.error,
    )
