"""Push device routes (docs/wire.md#push-routes): Basic(tenant) plus a device signature, except
enrolment, whose proof is the Bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query

from passgate.server.client_api.auth import AnyCaller, CachedAnyCaller, PushEnrolmentCaller
from passgate.server.client_api.push_schemas import (
    AddCredentialRequest,
    ChallengeResponse,
    CredentialResponse,
    MessageResponse,
    RemoveCredentialRequest,
    RemovedResponse,
    SigningChallengeResponse,
    UpdateChallengeRequest,
    UpdateChallengeResponse,
    UpdateCredentialRequest,
    UpdatedCredentialResponse,
)
from passgate.server.database import Database, writes
from passgate.server.push import Hub
from passgate.server.services import push_links
from passgate.server.services.push import challenges, devices, nonces
from passgate.server.services.push.challenges import MAX_WAIT_SECONDS

router = APIRouter(prefix="/user-authenticators/push", tags=["push"])
PublicKeyQuery = Annotated[str, Query(alias="publicKey", min_length=1, max_length=1000)]


def credential_response(found: devices.Device) -> CredentialResponse:
    return CredentialResponse(
        user_authenticator_id=found.device.id,
        user_id=found.device.user_id,
        verified_at=found.verified_at or found.created_at,
        last_verified_at=found.last_verified_at,
        expires_at=found.device.expires_at,
    )


@router.get("", response_model_exclude_none=True)
async def get_credential(
    public_key: PublicKeyQuery, caller: AnyCaller, db: Database
) -> CredentialResponse:
    return credential_response(await devices.find(db, caller.tenant, public_key))


@router.post("", response_model_exclude_none=True)
async def add_credential(
    body: AddCredentialRequest, caller: PushEnrolmentCaller, db: Database
) -> CredentialResponse:
    """The token: one from the backend's track or a verify, or a push enrolment link's."""
    assert caller.claims is not None
    enroll = push_links.enroll if caller.claims.purpose else devices.enroll
    enrolled = await enroll(
        db,
        caller.tenant,
        caller.claims,
        public_key=body.public_key,
        device_name=body.device_name,
        device_platform=body.device_platform,
        push_token=body.push_token,
    )
    return credential_response(enrolled)


@router.post("/remove")
async def remove_credential(
    body: RemoveCredentialRequest, caller: AnyCaller, db: Database
) -> RemovedResponse:
    removed = await devices.remove(db, caller.tenant, body.public_key, body.signature)
    return RemovedResponse(removed_authenticator_id=removed)


@router.post("/challenge/sign")
async def challenge_message(
    public_key: PublicKeyQuery, caller: CachedAnyCaller, db: Database
) -> MessageResponse:
    message = await devices.issue_message(
        db, caller.tenant, public_key, nonces.CHALLENGE, recheck=caller.recheck(db)
    )
    return MessageResponse(message=message)


@router.get("/challenge", response_model_exclude_none=True)
@writes  # uses up the device's signed message, then waits without a connection (PushHub)
async def get_challenge(
    public_key: PublicKeyQuery,
    caller: CachedAnyCaller,
    db: Database,
    hub: Hub,
    signature: Annotated[str | None, Header(alias="X-Authsignal-Signature", max_length=200)] = None,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS)] = 0,
) -> ChallengeResponse:
    pending = await challenges.pending_for_device(
        db,
        caller.tenant,
        hub,
        public_key=public_key,
        signature=signature,
        wait=wait,
        recheck=caller.recheck(db),
    )
    challenge, action = pending.challenge, pending.action
    if challenge is None or action is None:
        return ChallengeResponse(user_authenticator_id=pending.device_id)
    return ChallengeResponse(
        user_authenticator_id=pending.device_id,
        challenge_id=challenge.id,
        user_id=action.user_id,
        action_code=action.action_code,
        idempotency_key=action.idempotency_key,
        user_agent=action.user_agent,
        device_id=action.device_id,
        ip_address=action.ip_address,
        expires_at=int(challenge.expires_at.timestamp()),
        created_at=int(challenge.created_at.timestamp()),
        custom=action.custom,
    )


@router.post("/challenge", response_model_exclude_none=True)
async def update_challenge(
    body: UpdateChallengeRequest, caller: CachedAnyCaller, db: Database, hub: Hub
) -> UpdateChallengeResponse:
    answer = await challenges.answer(
        db,
        caller.tenant,
        public_key=body.public_key,
        challenge_id=body.challenge_id,
        signature=body.signature,
        approved=body.approved,
        verification_code=body.verification_code,
        recheck=caller.recheck(db),
        hub=hub,
    )
    return UpdateChallengeResponse(
        is_verified=answer.is_verified, failure_reason=answer.failure_reason
    )


@router.post("/sign")
async def credential_message(
    public_key: PublicKeyQuery, caller: AnyCaller, db: Database
) -> SigningChallengeResponse:
    message = await devices.issue_message(db, caller.tenant, public_key, nonces.CREDENTIAL)
    return SigningChallengeResponse(challenge_id=message, message=message)


@router.patch("", response_model_exclude_none=True)
async def update_credential(
    body: UpdateCredentialRequest, caller: AnyCaller, db: Database
) -> UpdatedCredentialResponse:
    updated = await devices.update(
        db,
        caller.tenant,
        body.public_key,
        message=body.challenge_id,
        signature=body.signature,
        push_token=body.push_token,
        reset_expiry=bool(body.reset_expiry),
    )
    return UpdatedCredentialResponse(
        user_authenticator_id=updated.device.id,
        user_id=updated.device.user_id,
        last_verified_at=updated.last_verified_at or updated.created_at,
        push_token=updated.device.push_token,
        expires_at=updated.device.expires_at,
    )
