"""Wire models of the push Client API (docs/wire.md#push-routes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import StringConstraints

from passgate.server import limits
from passgate.server.schemas import ActionCode, WireModel

PublicKey = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Signature = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ChallengeId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
DevicePlatform = Annotated[str, StringConstraints(max_length=limits.DEVICE_PLATFORM)]
PushToken = Annotated[str, StringConstraints(max_length=limits.PUSH_TOKEN)]


class AddCredentialRequest(WireModel):
    public_key: PublicKey
    device_name: Annotated[str, StringConstraints(max_length=limits.DEVICE_NAME)] | None = None
    device_platform: DevicePlatform | None = None
    push_token: PushToken | None = None
    # Accepted for wire compatibility; App Attest / Play Integrity are not verified (yet).
    perform_attestation: dict[str, Any] | None = None


class RemoveCredentialRequest(WireModel):
    public_key: PublicKey
    signature: Signature


class UpdateChallengeRequest(WireModel):
    public_key: PublicKey
    challenge_id: ChallengeId
    signature: Signature
    approved: bool
    verification_code: Annotated[str, StringConstraints(max_length=16)] | None = None


class UpdateCredentialRequest(WireModel):
    challenge_id: ChallengeId
    public_key: PublicKey
    signature: Signature
    push_token: PushToken | None = None
    reset_expiry: bool | None = None


class StartChallengeRequest(WireModel):
    action: ActionCode | None = None
    user_authenticator_id: Annotated[str, StringConstraints(max_length=limits.ID)] | None = None


class VerifyRequest(WireModel):
    challenge_id: ChallengeId


class CredentialResponse(WireModel):
    user_authenticator_id: str
    user_id: str
    verified_at: datetime
    last_verified_at: datetime | None = None
    expires_at: datetime | None = None


class RemovedResponse(WireModel):
    removed_authenticator_id: str


class MessageResponse(WireModel):
    message: str


class SigningChallengeResponse(WireModel):
    challenge_id: str
    message: str


class ChallengeResponse(WireModel):
    """P5. `userAuthenticatorId` is always present (Android requires it); the rest only when a
    challenge is pending. Never the verification code: the person types what the requester
    shows."""

    user_authenticator_id: str
    challenge_id: str | None = None
    user_id: str | None = None
    action_code: str | None = None
    idempotency_key: str | None = None
    user_agent: str | None = None
    device_id: str | None = None
    ip_address: str | None = None
    expires_at: int | None = None
    created_at: int | None = None
    custom: dict[str, Any] | None = None


class UpdateChallengeResponse(WireModel):
    is_verified: bool
    failure_reason: str | None = None


class UpdatedCredentialResponse(WireModel):
    user_authenticator_id: str
    user_id: str
    last_verified_at: datetime
    push_token: str | None = None
    expires_at: datetime | None = None


class StartChallengeResponse(WireModel):
    challenge_id: str
    expires_at: int
    verification_code: str | None = None


class VerifyResponse(WireModel):
    is_verified: bool
    is_consumed: bool
    access_token: str | None = None
