"""Result types, as Authsignal's Flutter SDK 3.1.0 names them, in snake_case
(docs/wire.md#client-sdk-surface)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True, slots=True)
class AuthsignalResponse(Generic[T]):
    """Every SDK call returns one: `data` on success, else `error` (a message for people) and
    `error_code` (for code). API errors never raise."""

    data: T | None = None
    error: str | None = None
    error_code: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.error_code is None


class ErrorCode(StrEnum):
    """Error codes the SDK itself produces; server codes (e.g. `expired_token`) pass through."""

    USER_CANCELED = "user_canceled"
    NO_CREDENTIAL = "no_credential"
    TOKEN_NOT_SET = "token_not_set"
    TOKEN_REQUIRED = "token_required"
    TOKEN_INVALID = "token_invalid"
    INVALID_CREDENTIAL = "invalid_credential"
    NETWORK_ERROR = "network_error"
    API_ERROR = "api_error"
    SDK_ERROR = "sdk_error"


@dataclass(frozen=True, kw_only=True, slots=True)
class SignUpResponse:
    token: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SignInResponse:
    is_verified: bool
    token: str | None = None
    user_id: str | None = None
    user_authenticator_id: str | None = None
    username: str | None = None
    display_name: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AppCredential:
    """A push (or QR / in-app) device credential. Mapped from the wire as the mobile SDKs do:
    credential_id from `userAuthenticatorId`, created_at from `verifiedAt`."""

    credential_id: str
    created_at: str
    user_id: str
    last_authenticated_at: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class UpdatedAppCredential:
    user_authenticator_id: str
    user_id: str
    last_verified_at: str
    push_token: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ChallengeUser:
    custom: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AppChallenge:
    challenge_id: str
    action_code: str | None = None
    idempotency_key: str | None = None
    user_agent: str | None = None
    device_id: str | None = None
    ip_address: str | None = None
    custom: dict[str, Any] | None = None
    user: ChallengeUser | None = None
    expires_at: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenPayloadOther:
    action_code: str | None = None
    idempotency_key: str | None = None
    publishable_key: str | None = None
    tenant_id: str | None = None
    user_id: str | None = None
    username: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenPayload:
    aud: str | None = None
    sub: str | None = None
    exp: int | None = None
    iat: int | None = None
    scope: str | None = None
    other: TokenPayloadOther | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class EnrollResponse:
    """An email address, phone number or magic-link address added to the user; it counts as
    enrolled once its first code (or link) verifies."""

    user_authenticator_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class EnrollTotpResponse:
    """A new authenticator-app secret: show `uri` as a QR code, or `secret` for typing in."""

    user_authenticator_id: str
    uri: str
    secret: str


@dataclass(frozen=True, kw_only=True, slots=True)
class RecoveryCodesResponse:
    """A new set of recovery codes, replacing any earlier set: show them to the user once
    (the server keeps only keyed hashes of them). Each works once."""

    user_authenticator_id: str
    recovery_codes: list[str]


@dataclass(frozen=True, kw_only=True, slots=True)
class ChallengeResponse:
    challenge_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class VerifyResponse:
    """A code, link or security key checked. A wrong or spent code is not an error:
    `is_verified` is False and `failure_reason` says why (`CODE_INVALID_OR_EXPIRED`,
    `MAX_ATTEMPTS_EXCEEDED`). On success `token` is for your backend's validate."""

    is_verified: bool
    token: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SecurityKeyEnrollResponse:
    token: str | None = None
    user_authenticator_id: str | None = None
