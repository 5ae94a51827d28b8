"""Sans-I/O halves of the passkey calls: what to send, how to read it
(docs/wire.md#passkey-routes)."""

from __future__ import annotations

from typing import Any

from passgate.sdk._protocol import ApiRequest
from passgate.sdk._types import SignInResponse

PASSKEY = "/client/user-authenticators/passkey"


def challenge_request(authorization: str, action: str) -> ApiRequest:
    return ApiRequest(
        method="POST",
        path="/client/challenge",
        authorization=authorization,
        body={"action": action},
    )


def registration_options_request(
    authorization: str, username: str | None, display_name: str | None
) -> ApiRequest:
    body = {"username": username, "displayName": display_name}
    return ApiRequest(
        method="POST",
        path=f"{PASSKEY}/registration-options",
        authorization=authorization,
        body={key: value for key, value in body.items() if value is not None},
    )


def add_passkey_request(
    authorization: str, challenge_id: str, credential: dict[str, Any], device_id: str
) -> ApiRequest:
    body = {
        "challengeId": challenge_id,
        "registrationCredential": credential,
        "deviceId": device_id,
    }
    return ApiRequest(method="POST", path=PASSKEY, authorization=authorization, body=body)


def authentication_options_request(authorization: str, challenge_id: str | None) -> ApiRequest:
    return ApiRequest(
        method="POST",
        path=f"{PASSKEY}/authentication-options",
        authorization=authorization,
        body={"challengeId": challenge_id} if challenge_id else {},
    )


def verify_request(
    authorization: str, challenge_id: str, credential: dict[str, Any], device_id: str
) -> ApiRequest:
    body = {
        "challengeId": challenge_id,
        "authenticationCredential": credential,
        "deviceId": device_id,
    }
    return ApiRequest(
        method="POST", path="/client/verify/passkey", authorization=authorization, body=body
    )


def lookup_request(authorization: str, credential_id: str) -> ApiRequest:
    return ApiRequest(
        method="GET",
        path=PASSKEY,
        authorization=authorization,
        params={"credentialId": credential_id},
    )


def read_challenge_id(data: dict[str, Any]) -> str:
    return str(data["challengeId"])


def read_options(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    options = data["options"]
    if not isinstance(options, dict):
        raise TypeError("options is not an object")
    return str(data["challengeId"]), options


def read_verified(data: dict[str, Any]) -> SignInResponse:
    return SignInResponse(
        is_verified=bool(data.get("isVerified")),
        token=data.get("accessToken"),
        user_id=data.get("userId"),
        user_authenticator_id=data.get("userAuthenticatorId"),
        username=data.get("username"),
        display_name=data.get("userDisplayName"),
    )
