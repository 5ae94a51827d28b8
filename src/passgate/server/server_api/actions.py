"""Track, read and change actions (docs/wire.md#server-api)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime

from passgate.server.database import Database, Db
from passgate.server.observability import TENANT_ID
from passgate.server.push import Hub
from passgate.server.schemas import (
    ActionResponse,
    TrackAttributes,
    TrackResponse,
    UpdateActionRequest,
)
from passgate.server.server_api.auth import SecretKey, SecretKeyTenant
from passgate.server.server_api.paths import ActionCode, IdempotencyKey, UserId
from passgate.server.services import actions, tenants
from passgate.server.services.actions import ActionRow
from passgate.server.services.enums import ActionState
from passgate.server.services.push import challenges as push_challenges
from passgate.server.services.push.hub import PushHub

router = APIRouter(tags=["actions"])


def action_response(action: ActionRow) -> ActionResponse:
    return ActionResponse.model_validate(action, from_attributes=True)


def challenge_page_url(request: Request, token: str) -> str:
    base = request.app.state.settings.public_url or str(request.base_url)
    return f"{base.rstrip('/')}/challenge?token={token}"


@router.post("/users/{userId}/actions/{action}", response_model_exclude_none=True)
async def track(
    user_id: UserId,
    action_code: ActionCode,
    request: Request,
    key: SecretKey,
    db: Database,
    hub: Hub,
    attributes: TrackAttributes | None = None,
) -> TrackResponse:
    # Well-formed requests are answered by server/fast_routes.py, which calls `tracked`
    # without FastAPI's dependency solving; this route answers the rest (and documents it).
    return await tracked(request, db, key, hub, user_id, action_code, attributes)


async def tracked(
    request: Request,
    db: Db,
    key: tenants.SecretKey,
    hub: PushHub,
    user_id: str,
    action_code: str,
    attributes: TrackAttributes | None,
) -> TrackResponse:
    given = attributes or TrackAttributes()
    track_request = actions.TrackRequest(
        idempotency_key=given.idempotency_key,
        redirect_url=given.redirect_url,
        ip_address=given.ip_address,
        user_agent=given.user_agent,
        device_id=given.device_id,
        scope=given.scope,
        email=given.email,
        phone_number=given.phone_number,
        username=given.username,
        custom=given.custom,
        locale=given.locale,
    )
    tracked = await actions.track(db, key, user_id, action_code, track_request)
    setattr(request.state, TENANT_ID, tracked.tenant.id)  # for the request's log line
    challenge = await push_challenges.start_on_track(db, tracked, hub)
    return TrackResponse(
        idempotency_key=tracked.action.idempotency_key,
        state=ActionState(tracked.action.state),
        url=challenge_page_url(request, tracked.token),
        token=tracked.token,
        is_enrolled=tracked.enrollment.is_enrolled,
        enrolled_verification_methods=tracked.enrollment.enrolled_methods,
        allowed_verification_methods=tracked.enrollment.allowed_methods,
        default_verification_method=tracked.enrollment.default_method,
        challenge_id=challenge.id if challenge else None,
        verification_code=challenge.verification_code if challenge else None,
    )


@router.get("/users/{userId}/actions/{action}/{idempotencyKey}", response_model_exclude_none=True)
async def get_action(
    user_id: UserId,
    action_code: ActionCode,
    idempotency_key: IdempotencyKey,
    tenant: SecretKeyTenant,
    db: Database,
) -> ActionResponse:
    action = await actions.get_action(db, tenant, user_id, action_code, idempotency_key)
    code = await push_challenges.verification_code(db, action)
    return action_response(action).model_copy(update={"verification_code": code})


@router.patch("/users/{userId}/actions/{action}/{idempotencyKey}", response_model_exclude_none=True)
async def update_action(
    user_id: UserId,
    action_code: ActionCode,
    idempotency_key: IdempotencyKey,
    body: UpdateActionRequest,
    tenant: SecretKeyTenant,
    db: Database,
) -> ActionResponse:
    action = await actions.set_state(db, tenant, user_id, action_code, idempotency_key, body.state)
    return action_response(action)


@router.get("/users/{userId}/actions", response_model_exclude_none=True)
async def query_actions(
    user_id: UserId,
    tenant: SecretKeyTenant,
    db: Database,
    from_date: Annotated[AwareDatetime | None, Query(alias="fromDate")] = None,
    codes: Annotated[str | None, Query(max_length=2000)] = None,
    state: ActionState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ActionResponse]:
    found = await actions.query_actions(
        db,
        tenant,
        user_id,
        from_date=from_date,
        action_codes=[code for code in (codes or "").split(",") if code],
        state=state,
        limit=limit,
    )
    return [action_response(action) for action in found]
