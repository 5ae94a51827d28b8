"""Sans-I/O halves of the fallback methods' calls (email and SMS codes, WhatsApp, authenticator
apps, recovery codes, magic links, security keys): what to send, how to read it.

Every call carries the user's token as Bearer. The requests are the ones Authsignal's SDKs
send: a call that has nothing to say (a challenge, a TOTP enrolment) has no body at all, and
the security-key calls carry bare WebAuthn JSON, with no `challengeId` around it (the server
finds the challenge by its bytes in clientDataJSON)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from passgate.sdk._protocol import ApiRequest
from passgate.sdk._types import (
    ChallengeResponse,
    EnrollResponse,
    EnrollTotpResponse,
    RecoveryCodesResponse,
    SecurityKeyEnrollResponse,
    VerifyResponse,
)

AUTHENTICATORS = "/client/user-authenticators"
SECURITY_KEY = f"{AUTHENTICATORS}/security-key"


def _post(authorization: str, path: str, body: Mapping[str, Any] | None = None) -> ApiRequest:
    return ApiRequest(method="POST", path=path, authorization=authorization, body=body)


def enroll_request(
    authorization: str, method: str, body: Mapping[str, Any] | None = None
) -> ApiRequest:
    """`method` is the path's name for it: `email-otp`, `sms`, `totp`, `email-magic-link`,
    `recovery-code`."""
    return _post(authorization, f"{AUTHENTICATORS}/{method}", body)


def challenge_request(authorization: str, method: str) -> ApiRequest:
    """Send a code (or a link) to the user's enrolled address or number: no body."""
    return _post(authorization, f"/client/challenge/{method}")


def verify_request(authorization: str, method: str, code: str) -> ApiRequest:
    return _post(authorization, f"/client/verify/{method}", {"verificationCode": code})


def finalize_magic_link_request(authorization: str) -> ApiRequest:
    """One poll: has the link been confirmed? The browser SDK sends an empty object."""
    return _post(authorization, "/client/verify/email-magic-link/finalize", {})


def security_key_registration_options_request(authorization: str) -> ApiRequest:
    return _post(authorization, f"{SECURITY_KEY}/registration-options", {})


def add_security_key_request(authorization: str, credential: Mapping[str, Any]) -> ApiRequest:
    return _post(authorization, SECURITY_KEY, credential)


def security_key_authentication_options_request(authorization: str) -> ApiRequest:
    return _post(authorization, f"{SECURITY_KEY}/authentication-options", {})


def verify_security_key_request(authorization: str, credential: Mapping[str, Any]) -> ApiRequest:
    return _post(authorization, "/client/verify/security-key", credential)


def read_enroll(data: dict[str, Any]) -> EnrollResponse:
    return EnrollResponse(user_authenticator_id=str(data["userAuthenticatorId"]))


def read_enroll_totp(data: dict[str, Any]) -> EnrollTotpResponse:
    return EnrollTotpResponse(
        user_authenticator_id=str(data["userAuthenticatorId"]),
        uri=str(data["uri"]),
        secret=str(data["secret"]),
    )


def read_recovery_codes(data: dict[str, Any]) -> RecoveryCodesResponse:
    codes = data["recoveryCodes"]
    if not isinstance(codes, list):
        raise TypeError("recoveryCodes is not a list")
    return RecoveryCodesResponse(
        user_authenticator_id=str(data["userAuthenticatorId"]),
        recovery_codes=[str(code) for code in codes],
    )


def read_challenge(data: dict[str, Any]) -> ChallengeResponse:
    return ChallengeResponse(challenge_id=str(data["challengeId"]))


def read_verify(data: dict[str, Any]) -> VerifyResponse:
    """The wire's `accessToken` is the SDK's `token`, as in the mobile and browser SDKs."""
    return VerifyResponse(
        is_verified=bool(data.get("isVerified")),
        token=data.get("accessToken"),
        failure_reason=data.get("failureReason"),
    )


def read_bare_options(data: dict[str, Any]) -> dict[str, Any]:
    """WebAuthn options as they came: the reply is the options object itself."""
    if "challenge" not in data:
        raise KeyError("challenge")
    return data


def read_security_key_added(data: dict[str, Any]) -> SecurityKeyEnrollResponse:
    return SecurityKeyEnrollResponse(
        token=data.get("accessToken"), user_authenticator_id=data.get("userAuthenticatorId")
    )
