"""Recovery code routes of the Client API, Passgate's own (Authsignal's client SDKs have
none; the Server API's POST /users/{id}/authenticators makes a set as Authsignal's does),
with the Bearer token of the user's action (docs/totp-and-recovery-codes.md#recovery-codes):

- POST /client/user-authenticators/recovery-code (no body) -> {userAuthenticatorId, userId,
  recoveryCodes}: a new set, shown once; the one enrolment rule decides.
- POST /client/verify/recovery-code {verificationCode} -> {isVerified, accessToken?,
  failureReason?}, as the other verify routes answer."""

from __future__ import annotations

from fastapi import APIRouter

from passgate.server.client_api.auth import TokenCaller
from passgate.server.client_api.totp import VerifyCodeRequest, VerifyCodeResponse, verify_response
from passgate.server.database import Database
from passgate.server.schemas import WireModel
from passgate.server.services import recovery_codes

router = APIRouter(tags=["recovery codes"])


class RecoveryCodesResponse(WireModel):
    user_authenticator_id: str
    user_id: str
    recovery_codes: list[str]


@router.post("/user-authenticators/recovery-code")
async def enroll_recovery_codes(caller: TokenCaller, db: Database) -> RecoveryCodesResponse:
    assert caller.claims is not None
    issued = await recovery_codes.enroll(db, caller.tenant, caller.claims)
    return RecoveryCodesResponse(
        user_authenticator_id=issued.authenticator.id,
        user_id=issued.authenticator.user_id,
        recovery_codes=issued.codes,
    )


@router.post("/verify/recovery-code", response_model_exclude_none=True)
async def verify_recovery_code(
    caller: TokenCaller, db: Database, body: VerifyCodeRequest
) -> VerifyCodeResponse:
    assert caller.claims is not None
    verified = await recovery_codes.verify(db, caller.tenant, caller.claims, body.verification_code)
    return verify_response(verified)
