"""Authenticator app routes of the Client API (T1, T2), with the Bearer token of the user's
action (docs/totp-and-recovery-codes.md).

T1 takes no body (Authsignal's SDKs send none, with or without a Content-Type) and answers
Authsignal's `{userAuthenticatorId, userId, uri, secret}`, and, as Passgate's own additions,
the URI as a QR code: `qrCodeSvg` (inline SVG) and `qrCodePng` (a `data:image/png` URI). A
wrong or reused code is answered 200 `{isVerified: false, failureReason}`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import StringConstraints

from passgate.server.client_api.auth import TokenCaller
from passgate.server.database import Database
from passgate.server.schemas import AuthenticatorResponse, WireModel
from passgate.server.services import totp
from passgate.server.services.guessable_codes import CodeVerification
from passgate.server.views import authenticator_response

router = APIRouter(tags=["authenticator apps"])

# Longer than any code a person types: the code is compared, never stored.
VerificationCode = Annotated[str, StringConstraints(max_length=32)]


class TotpEnrollResponse(WireModel):
    user_authenticator_id: str
    user_id: str
    uri: str
    secret: str
    qr_code_svg: str
    qr_code_png: str


class VerifyCodeRequest(WireModel):
    verification_code: VerificationCode


class VerifyCodeResponse(WireModel):
    is_verified: bool
    access_token: str | None = None
    failure_reason: str | None = None
    # Only when this code completed the authenticator's enrolment.
    user_authenticator: AuthenticatorResponse | None = None


def verify_response(verified: CodeVerification) -> VerifyCodeResponse:
    added = verified.authenticator
    return VerifyCodeResponse(
        is_verified=verified.is_verified,
        access_token=verified.token,
        failure_reason=verified.failure_reason,
        user_authenticator=authenticator_response(added) if added is not None else None,
    )


@router.post("/user-authenticators/totp")
async def enroll_totp(caller: TokenCaller, db: Database) -> TotpEnrollResponse:
    assert caller.claims is not None
    enrolled = await totp.enroll(db, caller.tenant, caller.claims)
    return TotpEnrollResponse(
        user_authenticator_id=enrolled.authenticator.id,
        user_id=enrolled.authenticator.user_id,
        uri=enrolled.uri,
        secret=enrolled.secret,
        qr_code_svg=totp.qr_svg(enrolled.uri),
        qr_code_png=totp.qr_png(enrolled.uri),
    )


@router.post("/verify/totp", response_model_exclude_none=True)
async def verify_totp(
    caller: TokenCaller, db: Database, body: VerifyCodeRequest
) -> VerifyCodeResponse:
    assert caller.claims is not None
    verified = await totp.verify(db, caller.tenant, caller.claims, body.verification_code)
    return verify_response(verified)
