"""One-time code routes of the Client API: email OTP (E1-E3), SMS (S1-S3) and WhatsApp
(WA1-WA2), all with the Bearer token of the user's action (docs/one-time-codes.md).

Enrolment sends the first code at once, as Authsignal does: an app calls verify right after
enroll. Challenge takes no body (the SDKs send none, with or without a Content-Type). A wrong
or expired code is answered 200 `{isVerified: false, failureReason}`; only a malformed request,
a refused enrolment or a send over its limits is an HTTP error."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import StringConstraints

from passgate.server.client_api.auth import TokenCaller
from passgate.server.database import Database
from passgate.server.delivery import Messaging
from passgate.server.forwarded import client_ip
from passgate.server.schemas import AuthenticatorResponse, Email, PhoneNumber, WireModel
from passgate.server.services import otp
from passgate.server.services.delivery import Messenger
from passgate.server.services.enums import VerificationMethod
from passgate.server.views import authenticator_response

router = APIRouter(tags=["one-time codes"])

VerificationCode = Annotated[str, StringConstraints(max_length=otp.MAX_CODE_INPUT)]


class EmailOtpEnrollRequest(WireModel):
    email: Email


class SmsEnrollRequest(WireModel):
    phone_number: PhoneNumber


class OtpVerifyRequest(WireModel):
    verification_code: VerificationCode


class OtpEnrollResponse(WireModel):
    user_authenticator_id: str
    user_id: str


class OtpChallengeResponse(WireModel):
    challenge_id: str


class OtpVerifyResponse(WireModel):
    is_verified: bool
    access_token: str | None = None
    failure_reason: str | None = None
    # Only when this code completed the authenticator's enrolment.
    user_authenticator: AuthenticatorResponse | None = None


async def _enroll(
    caller: TokenCaller,
    db: Database,
    request: Request,
    messenger: Messenger,
    method: VerificationMethod,
    destination: str,
) -> OtpEnrollResponse:
    assert caller.claims is not None
    added = await otp.enroll(
        db,
        caller.tenant,
        caller.claims,
        messenger,
        method=method,
        destination=destination,
        client_ip=client_ip(request),
    )
    return OtpEnrollResponse(user_authenticator_id=added.id, user_id=added.user_id)


async def _challenge(
    caller: TokenCaller,
    db: Database,
    request: Request,
    messenger: Messenger,
    method: VerificationMethod,
) -> OtpChallengeResponse:
    assert caller.claims is not None
    sent = await otp.challenge(
        db, caller.tenant, caller.claims, messenger, method=method, client_ip=client_ip(request)
    )
    return OtpChallengeResponse(challenge_id=sent.id)


async def _verify(
    caller: TokenCaller, db: Database, method: VerificationMethod, code: str
) -> OtpVerifyResponse:
    assert caller.claims is not None
    verified = await otp.verify(db, caller.tenant, caller.claims, method=method, code=code)
    return OtpVerifyResponse(
        is_verified=verified.is_verified,
        access_token=verified.token,
        failure_reason=verified.failure_reason,
        user_authenticator=(
            authenticator_response(verified.enrolled) if verified.enrolled else None
        ),
    )


@router.post("/user-authenticators/email-otp")
async def enroll_email(
    caller: TokenCaller,
    db: Database,
    request: Request,
    messenger: Messaging,
    body: EmailOtpEnrollRequest,
) -> OtpEnrollResponse:
    return await _enroll(caller, db, request, messenger, VerificationMethod.EMAIL_OTP, body.email)


@router.post("/challenge/email-otp")
async def challenge_email(
    caller: TokenCaller, db: Database, request: Request, messenger: Messaging
) -> OtpChallengeResponse:
    return await _challenge(caller, db, request, messenger, VerificationMethod.EMAIL_OTP)


@router.post("/verify/email-otp", response_model_exclude_none=True)
async def verify_email(
    caller: TokenCaller, db: Database, body: OtpVerifyRequest
) -> OtpVerifyResponse:
    return await _verify(caller, db, VerificationMethod.EMAIL_OTP, body.verification_code)


@router.post("/user-authenticators/sms")
async def enroll_sms(
    caller: TokenCaller,
    db: Database,
    request: Request,
    messenger: Messaging,
    body: SmsEnrollRequest,
) -> OtpEnrollResponse:
    return await _enroll(caller, db, request, messenger, VerificationMethod.SMS, body.phone_number)


@router.post("/challenge/sms")
async def challenge_sms(
    caller: TokenCaller, db: Database, request: Request, messenger: Messaging
) -> OtpChallengeResponse:
    return await _challenge(caller, db, request, messenger, VerificationMethod.SMS)


@router.post("/verify/sms", response_model_exclude_none=True)
async def verify_sms(
    caller: TokenCaller, db: Database, body: OtpVerifyRequest
) -> OtpVerifyResponse:
    return await _verify(caller, db, VerificationMethod.SMS, body.verification_code)


@router.post("/challenge/whatsapp")
async def challenge_whatsapp(
    caller: TokenCaller, db: Database, request: Request, messenger: Messaging
) -> OtpChallengeResponse:
    return await _challenge(caller, db, request, messenger, VerificationMethod.WHATSAPP)


@router.post("/verify/whatsapp", response_model_exclude_none=True)
async def verify_whatsapp(
    caller: TokenCaller, db: Database, body: OtpVerifyRequest
) -> OtpVerifyResponse:
    return await _verify(caller, db, VerificationMethod.WHATSAPP, body.verification_code)
