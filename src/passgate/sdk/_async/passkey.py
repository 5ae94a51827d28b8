"""`client.passkey`: sign up and sign in with a passkey, as the Flutter SDK's
`AuthsignalPasskey` does (docs/wire.md#client-sdk-surface, #flows), over any `PasskeyAuthenticator`.

The async client calls the authenticator in a worker thread: a USB key waits for a touch, and
the event loop keeps serving other tasks meanwhile. The generated blocking twin calls it
directly (scripts/generate_sync.py has the rule)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from passgate.sdk import _passkey_wire as wire
from passgate.sdk._authenticator import (
    AuthenticatorError,
    AuthenticatorErrorCode,
    PasskeyAuthenticator,
    authenticator_failed,
)
from passgate.sdk._protocol import basic_auth, bearer_auth, failed
from passgate.sdk._types import AuthsignalResponse, ErrorCode, SignInResponse, SignUpResponse

if TYPE_CHECKING:
    from passgate.sdk._async.client import Authsignal


class Passkey:
    def __init__(self, client: Authsignal, authenticator: PasskeyAuthenticator | None) -> None:
        self._client = client
        self._authenticator = authenticator
        self._credential_id: str | None = None
        self._autofill_pending = False

    def _require_authenticator(self) -> PasskeyAuthenticator:
        if self._authenticator is None:
            raise AuthenticatorError(
                AuthenticatorErrorCode.NOT_SUPPORTED,
                "no passkey_authenticator was given to Authsignal(...)",
            )
        return self._authenticator

    async def sign_up(
        self,
        token: str | None = None,
        username: str | None = None,
        display_name: str | None = None,
        ignore_passkey_already_exists_error: bool = False,
    ) -> AuthsignalResponse[SignUpResponse]:
        """Create a passkey for the user of `token` (your backend's `track` token, else the
        cached one) and register it; the result's token is for your backend's validate."""
        token = token or self._client.token
        if not token:
            return AuthsignalResponse(
                error="A token is required: pass one or call set_token first.",
                error_code=ErrorCode.TOKEN_NOT_SET,
            )
        authorization = bearer_auth(token)
        options = await self._client._api.call(
            wire.registration_options_request(authorization, username, display_name),
            wire.read_options,
        )
        if options.data is None:
            return failed(options)
        challenge_id, creation_options = options.data
        try:
            authenticator = self._require_authenticator()
            credential = await asyncio.to_thread(authenticator.create, creation_options)
        except AuthenticatorError as exc:
            if (
                ignore_passkey_already_exists_error
                and exc.code == AuthenticatorErrorCode.MATCHED_EXCLUDED_CREDENTIAL
            ):
                return AuthsignalResponse()
            return authenticator_failed(exc)
        added = await self._client._api.call(
            wire.add_passkey_request(
                authorization, challenge_id, credential, self._client.get_device_id()
            ),
            wire.read_verified,
        )
        if added.data is None:
            return failed(added)
        if added.data.token:
            self._client.set_token(added.data.token)
        self._credential_id = str(credential.get("id") or "") or None
        return AuthsignalResponse(data=SignUpResponse(token=added.data.token))

    async def sign_in(
        self, action: str | None = None, token: str | None = None, autofill: bool = False
    ) -> AuthsignalResponse[SignInResponse]:
        """With `action`: a sign-in recorded as that action. With a token (given or cached):
        for that token's user. With neither: discoverable, the authenticator picks the user."""
        if autofill and self._autofill_pending:
            return AuthsignalResponse()
        self._autofill_pending = autofill
        try:
            return await self._sign_in(action, token)
        finally:
            self._autofill_pending = False

    async def _sign_in(
        self, action: str | None, token: str | None
    ) -> AuthsignalResponse[SignInResponse]:
        challenge_id = None
        token = None if action else token or self._client.token
        authorization = bearer_auth(token) if token else basic_auth(self._client.tenant_id)
        if action:
            started = await self._client._api.call(
                wire.challenge_request(authorization, action), wire.read_challenge_id
            )
            if started.data is None:
                return failed(started)
            challenge_id = started.data
        options = await self._client._api.call(
            wire.authentication_options_request(authorization, challenge_id), wire.read_options
        )
        if options.data is None:
            return failed(options)
        challenge_id, request_options = options.data
        try:
            authenticator = self._require_authenticator()
            credential = await asyncio.to_thread(authenticator.get, request_options)
        except AuthenticatorError as exc:
            return authenticator_failed(exc)
        verified = await self._client._api.call(
            wire.verify_request(
                authorization, challenge_id, credential, self._client.get_device_id()
            ),
            wire.read_verified,
        )
        if verified.data is not None and verified.data.token:
            self._client.set_token(verified.data.token)
            self._credential_id = str(credential.get("id") or "") or None
        return verified

    def cancel(self) -> None:
        """Abandon a sign-up or sign-in waiting on the authenticator (callable from any thread)."""
        if self._authenticator is not None:
            self._authenticator.cancel()

    async def is_supported(self) -> bool:
        authenticator = self._authenticator
        if authenticator is None:
            return False
        return await asyncio.to_thread(authenticator.is_available)  # may probe USB devices

    async def should_prompt_to_create_passkey(
        self, username: str | None = None
    ) -> AuthsignalResponse[bool]:
        """True when this device holds no passkey the server knows: time to offer one."""
        found = await self._lookup_local_credential()
        if found.error_code == ErrorCode.INVALID_CREDENTIAL:
            return AuthsignalResponse(data=True)
        if found.data is None and found.error_code is not None:
            return failed(found)
        return AuthsignalResponse(data=not found.data)

    async def is_available_on_device(self) -> AuthsignalResponse[bool]:
        """Deprecated in the Flutter SDK: whether this device's passkey is known to the server."""
        found = await self._lookup_local_credential()
        if found.error_code == ErrorCode.INVALID_CREDENTIAL:
            return AuthsignalResponse(data=False)
        return found

    async def _lookup_local_credential(self) -> AuthsignalResponse[bool]:
        credential_id = self._credential_id
        authenticator = self._authenticator
        if credential_id is None and authenticator is not None:
            credential_ids = await asyncio.to_thread(authenticator.credential_ids)
            credential_id = next(iter(credential_ids), None)
        if credential_id is None:
            return AuthsignalResponse(data=False)
        return await self._client._api.call(
            wire.lookup_request(basic_auth(self._client.tenant_id), credential_id),
            lambda data: bool(data.get("credentialId")),
        )
