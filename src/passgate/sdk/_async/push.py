"""`client.push`: a device that approves actions, as the Flutter SDK's `AuthsignalPush`.

A Passgate extension: `add_credential(link=...)` enrols with a push enrolment link
(`{public url}/push-enrolment#token=TOKEN`, docs/push-enrolment-links.md), whose token is
the Bearer of the ordinary enrolment call; `read_push_link` takes such a link apart."""

from __future__ import annotations

import base64
import binascii
import json
import platform
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from passgate.sdk._protocol import ApiRequest, basic_auth, bearer_auth
from passgate.sdk._push_protocol import (
    PUSH_PATH,
    SIGNATURE_HEADER,
    DeviceKeys,
    parse_challenge,
    parse_credential,
    parse_is_verified,
    parse_updated_credential,
    public_key_base64,
    public_key_param,
    removal_message,
    sign,
)
from passgate.sdk._types import (
    AppChallenge,
    AppCredential,
    AuthsignalResponse,
    ErrorCode,
    UpdatedAppCredential,
)

if TYPE_CHECKING:
    from passgate.sdk._async.client import Authsignal

NO_KEY = "No push credential on this device: call push.add_credential first."
# The wire value Authsignal's API knows; a Python device speaks Android's encodings.
DEVICE_PLATFORM = "android"
# A push enrolment link's path under Passgate's public URL; the API is `/v1` beside it.
PUSH_LINK_PATH = "/push-enrolment"


@dataclass(frozen=True, kw_only=True, slots=True)
class PushEnrolmentLink:
    """What a push enrolment link says: its token (the Bearer that enrols one device), the
    API it belongs to (`base_url`, including /v1), and the token's tenant, user and expiry
    (read without checking the signature: the server checks it)."""

    token: str
    base_url: str
    tenant_id: str
    user_id: str
    expires_at: int  # Unix seconds

    @property
    def expired(self) -> bool:
        return self.expires_at <= time.time()


def read_push_link(link: str) -> PushEnrolmentLink:
    """Take a push enrolment link apart; `ValueError` says what is wrong with it."""
    parts = urlsplit(link.strip())
    token = parse_qs(parts.fragment).get("token", [""])[0]
    if parts.scheme not in ("http", "https") or not parts.netloc or not token:
        raise ValueError(
            "Not a push enrolment link: expected https://HOST/push-enrolment#token=TOKEN."
        )
    path = parts.path.rstrip("/")
    if not path.endswith(PUSH_LINK_PATH):
        raise ValueError(f"Not a push enrolment link: its path should end in {PUSH_LINK_PATH}.")
    api_path = path[: -len(PUSH_LINK_PATH)] + "/v1"
    claims = _unverified_claims(token)
    other = claims.get("other")
    tenant_id = other.get("tenantId") if isinstance(other, dict) else None
    if not isinstance(tenant_id, str) or not isinstance(claims.get("exp"), int):
        raise ValueError("The link's token is not a Passgate token.")
    return PushEnrolmentLink(
        token=token,
        base_url=urlunsplit((parts.scheme, parts.netloc, api_path, "", "")),
        tenant_id=tenant_id,
        user_id=str(claims.get("sub", "")),
        expires_at=claims["exp"],
    )


def _unverified_claims(token: str) -> dict[str, Any]:
    pieces = token.split(".")
    if len(pieces) != 3:
        raise ValueError("The link's token is not a Passgate token.")
    payload = pieces[1] + "=" * (-len(pieces[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        raise ValueError("The link's token is not a Passgate token.") from None
    if not isinstance(claims, dict):
        raise ValueError("The link's token is not a Passgate token.")
    return claims


class AuthsignalPush:
    def __init__(self, client: Authsignal, device_keys: DeviceKeys | None) -> None:
        self._client = client
        self._keys = device_keys

    @property
    def device_keys(self) -> DeviceKeys:
        if self._keys is None:
            from passgate.authenticators.device_keys import default_device_keys

            self._keys = default_device_keys(self._client.tenant_id, self._client.base_url)
        return self._keys

    async def add_credential(
        self,
        token: str | None = None,
        push_token: str | None = None,
        *,
        device_name: str | None = None,
        link: str | None = None,
    ) -> AuthsignalResponse[AppCredential]:
        """Enroll this device for push. The token (from your backend's `track`, the cached
        one, or a push enrolment `link`'s) is the proof; the device key is made on first use
        and kept in `device_keys`. A link is refused here, before any request, when it is
        malformed, expired or for another tenant than this client's."""
        if link is not None:
            try:
                found = read_push_link(link)
            except ValueError as exc:
                return AuthsignalResponse(error=str(exc), error_code=ErrorCode.TOKEN_INVALID)
            if found.tenant_id != self._client.tenant_id:
                return AuthsignalResponse(
                    error=f"The link is for tenant {found.tenant_id}, not this client's.",
                    error_code=ErrorCode.TOKEN_INVALID,
                )
            if found.expired:
                return AuthsignalResponse(
                    error="The push enrolment link has expired: ask for a new one.",
                    error_code="expired_token",
                )
            token = found.token
        token = token or self._client.token
        if not token:
            return AuthsignalResponse(
                error="A token is required.", error_code=ErrorCode.TOKEN_NOT_SET
            )
        key = self.device_keys.load() or self.device_keys.create()
        body = {
            "publicKey": public_key_base64(key),
            "deviceName": device_name or platform.node() or "Python device",
            "devicePlatform": DEVICE_PLATFORM,
        }
        if push_token:
            body["pushToken"] = push_token
        request = ApiRequest(
            method="POST", path=PUSH_PATH, authorization=bearer_auth(token), body=body
        )
        return await self._client._api.call(request, parse_credential)

    async def get_credential(self) -> AuthsignalResponse[AppCredential]:
        key = self.device_keys.load()
        if key is None:
            return AuthsignalResponse()
        request = ApiRequest(
            method="GET",
            path=PUSH_PATH,
            authorization=self._basic(),
            params={"publicKey": public_key_param(key)},
        )
        return await self._client._api.call(request, parse_credential)

    async def remove_credential(self) -> AuthsignalResponse[bool]:
        """Remove the device from the server and delete its key here, even when the server
        call fails (as the mobile SDKs do)."""
        key = self.device_keys.load()
        if key is None:
            return AuthsignalResponse(data=False, error=NO_KEY, error_code=ErrorCode.NO_CREDENTIAL)
        body = {"publicKey": public_key_base64(key), "signature": sign(key, removal_message())}
        request = ApiRequest(
            method="POST", path=f"{PUSH_PATH}/remove", authorization=self._basic(), body=body
        )
        try:
            response = await self._client._api.call(request, lambda _data: True)
        finally:
            self.device_keys.delete()
        return response

    async def get_challenge(
        self, wait: float | None = None
    ) -> AuthsignalResponse[AppChallenge | None]:
        """The challenge waiting for this device (`data` is None when there is none). With
        `wait` (seconds, up to 60; a Passgate extension) the server holds the call until one
        arrives."""
        key = self.device_keys.load()
        if key is None:
            return AuthsignalResponse(error=NO_KEY, error_code=ErrorCode.NO_CREDENTIAL)
        params = {"publicKey": public_key_param(key)}
        nonce = await self._client._api.call(
            ApiRequest(
                method="POST",
                path=f"{PUSH_PATH}/challenge/sign",
                authorization=self._basic(),
                params=params,
            ),
            lambda data: data.get("message"),
        )
        if not nonce.ok:
            return AuthsignalResponse(error=nonce.error, error_code=nonce.error_code)
        headers = {SIGNATURE_HEADER: sign(key, nonce.data)} if nonce.data else {}
        if wait:
            params["wait"] = str(wait)
        request = ApiRequest(
            method="GET",
            path=f"{PUSH_PATH}/challenge",
            authorization=self._basic(),
            params=params,
            headers=headers,
            timeout=(wait or 0) + self._client.timeout,
        )
        return await self._client._api.call(request, parse_challenge)

    async def update_challenge(
        self, challenge_id: str, approved: bool, verification_code: str | None = None
    ) -> AuthsignalResponse[bool]:
        """Approve or reject; `data` is whether the action is now verified. With number
        matching, approving needs the number the requesting screen shows."""
        key = self.device_keys.load()
        if key is None:
            return AuthsignalResponse(error=NO_KEY, error_code=ErrorCode.NO_CREDENTIAL)
        body = {
            "publicKey": public_key_base64(key),
            "challengeId": challenge_id,
            "signature": sign(key, challenge_id),
            "approved": approved,
            "verificationCode": verification_code,
        }
        request = ApiRequest(
            method="POST", path=f"{PUSH_PATH}/challenge", authorization=self._basic(), body=body
        )
        return await self._client._api.call(request, parse_is_verified)

    async def update_credential(
        self, push_token: str, *, reset_expiry: bool = True
    ) -> AuthsignalResponse[UpdatedAppCredential]:
        """Register a new push token (and restart the credential's lifetime)."""
        key = self.device_keys.load()
        if key is None:
            return AuthsignalResponse(error=NO_KEY, error_code=ErrorCode.NO_CREDENTIAL)
        signing = await self._client._api.call(
            ApiRequest(
                method="POST",
                path=f"{PUSH_PATH}/sign",
                authorization=self._basic(),
                params={"publicKey": public_key_param(key)},
            ),
            lambda data: (str(data["challengeId"]), str(data["message"])),
        )
        if signing.data is None:
            return AuthsignalResponse(error=signing.error, error_code=signing.error_code)
        challenge_id, message = signing.data
        body = {
            "challengeId": challenge_id,
            "publicKey": public_key_base64(key),
            "signature": sign(key, message),
            "pushToken": push_token,
            "resetExpiry": reset_expiry,
        }
        request = ApiRequest(method="PATCH", path=PUSH_PATH, authorization=self._basic(), body=body)
        return await self._client._api.call(request, parse_updated_credential)

    def _basic(self) -> str:
        return basic_auth(self._client.tenant_id)
