"""A backend's own one-time codes (docs/one-time-codes.md#server-api): `POST /challenge` sends a
code by email, SMS or WhatsApp, `POST /verify` answers it, `POST /claim` gives the verified
challenge to a user and returns a token for its action, and `GET /challenges` reads one back;
as Authsignal's Node SDK calls them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import StringConstraints

from passgate.server import limits
from passgate.server.database import Database
from passgate.server.delivery import Messaging
from passgate.server.schemas import (
    ActionCode,
    Email,
    IdempotencyKey,
    Locale,
    PhoneNumber,
    ShortText,
    WireModel,
)
from passgate.server.server_api.auth import SecretKeyTenant
from passgate.server.services import otp
from passgate.server.services.enums import VerificationMethod
from passgate.server.services.otp import OtpChallengeRow

router = APIRouter(tags=["challenges"])

UserIdField = Annotated[str, StringConstraints(min_length=1, max_length=limits.USER_ID)]
ChallengeIdField = Annotated[str, StringConstraints(max_length=limits.ID)]
VerificationCode = Annotated[str, StringConstraints(max_length=otp.MAX_CODE_INPUT)]


class StartOtpChallengeRequest(WireModel):
    """What Authsignal's SDKs send; the rest of their fields (deviceId, userAgent, custom,
    scope, challengeId) are accepted and ignored."""

    verification_method: VerificationMethod | None = None
    action: ActionCode | None = None
    idempotency_key: IdempotencyKey | None = None
    user_id: UserIdField | None = None
    email: Email | None = None
    phone_number: PhoneNumber | None = None
    sms_channel: ShortText | None = None
    locale: Locale | None = None
    ip_address: Annotated[str, StringConstraints(max_length=limits.IP_ADDRESS)] | None = None


class StartOtpChallengeResponse(WireModel):
    challenge_id: str
    idempotency_key: str
    # Unix seconds.
    expires_at: int


class VerifyOtpChallengeRequest(WireModel):
    challenge_id: ChallengeIdField
    verification_code: VerificationCode


class VerifyOtpChallengeResponse(WireModel):
    is_verified: bool
    email: str | None = None
    phone_number: str | None = None
    verification_method: str | None = None
    failure_reason: str | None = None


class ClaimOtpChallengeRequest(WireModel):
    challenge_id: ChallengeIdField
    user_id: UserIdField
    skip_verification_check: bool | None = None


class ClaimOtpChallengeResponse(WireModel):
    token: str
    verification_method: str


class OtpChallengeLookupResponse(WireModel):
    challenge_id: str | None = None
    expires_at: int | None = None
    verification_method: str | None = None
    sms_channel: str | None = None
    phone_number: str | None = None
    email: str | None = None
    action: str | None = None


def _contact(row: OtpChallengeRow) -> dict[str, Any]:
    phone = otp.is_phone(VerificationMethod(row.method))
    return {
        "email": None if phone else row.destination,
        "phone_number": row.destination if phone else None,
    }


@router.post("/challenge")
async def start_challenge(
    tenant: SecretKeyTenant, db: Database, messenger: Messaging, body: StartOtpChallengeRequest
) -> StartOtpChallengeResponse:
    method = otp.method_for(
        body.verification_method,
        email=body.email,
        phone_number=body.phone_number,
        sms_channel=body.sms_channel,
    )
    sent = await otp.start_for_backend(
        db,
        tenant,
        messenger,
        method=method,
        user_id=body.user_id,
        email=body.email,
        phone_number=body.phone_number,
        action_code=body.action,
        idempotency_key=body.idempotency_key,
        locale=body.locale,
        ip_address=body.ip_address,
    )
    assert sent.idempotency_key is not None
    return StartOtpChallengeResponse(
        challenge_id=sent.id,
        idempotency_key=sent.idempotency_key,
        expires_at=int(sent.expires_at.timestamp()),
    )


@router.post("/verify", response_model_exclude_none=True)
async def verify_challenge(
    tenant: SecretKeyTenant, db: Database, body: VerifyOtpChallengeRequest
) -> VerifyOtpChallengeResponse:
    answer, found = await otp.verify_for_backend(
        db, tenant, body.challenge_id, body.verification_code
    )
    if answer.challenge is None:
        return VerifyOtpChallengeResponse(
            is_verified=False,
            failure_reason=answer.failure_reason,
            verification_method=found.method if found else None,
        )
    return VerifyOtpChallengeResponse(
        is_verified=True, verification_method=answer.challenge.method, **_contact(answer.challenge)
    )


@router.post("/claim")
async def claim_challenge(
    tenant: SecretKeyTenant, db: Database, body: ClaimOtpChallengeRequest
) -> ClaimOtpChallengeResponse:
    token, method = await otp.claim(
        db,
        tenant,
        body.challenge_id,
        body.user_id,
        skip_verification_check=bool(body.skip_verification_check),
    )
    return ClaimOtpChallengeResponse(token=token, verification_method=method.value)


@router.get("/challenges", response_model_exclude_none=True)
async def get_challenge(
    tenant: SecretKeyTenant,
    db: Database,
    challenge_id: Annotated[str | None, Query(alias="challengeId", max_length=limits.ID)] = None,
    user_id: Annotated[str | None, Query(alias="userId", max_length=limits.USER_ID)] = None,
    action: Annotated[str | None, Query(max_length=limits.ACTION_CODE)] = None,
    verification_method: Annotated[
        VerificationMethod | None, Query(alias="verificationMethod")
    ] = None,
) -> OtpChallengeLookupResponse:
    found = await otp.find_for_backend(
        db,
        tenant,
        challenge_id=challenge_id,
        user_id=user_id,
        action_code=action,
        method=verification_method,
    )
    if found is None:
        return OtpChallengeLookupResponse()
    method = VerificationMethod(found.method)
    return OtpChallengeLookupResponse(
        challenge_id=found.id,
        expires_at=int(found.expires_at.timestamp()),
        verification_method=method.value,
        sms_channel=(
            ("WHATSAPP" if method == VerificationMethod.WHATSAPP else "SMS")
            if otp.is_phone(method)
            else None
        ),
        action=found.action_code,
        **_contact(found),
    )
