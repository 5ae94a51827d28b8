"""`client.security_key`: a roaming authenticator (a USB or NFC key) as a method of its own,
as the browser SDK's `securityKey` has it, beside passkeys.

It uses the same `PasskeyAuthenticator` abstraction as `client.passkey`: a
`SecurityKeyAuthenticator` for a real key, or a `SoftwareAuthenticator`, which answers as a
cross-platform authenticator. Unlike the passkey calls, these carry bare WebAuthn JSON with no
`challengeId`, and they are always for the user of the cached token."""

from __future__ import annotations

from typing import TYPE_CHECKING

from passgate.sdk import _fallback_wire as wire
from passgate.sdk._sync.codes import BearerMethod
from passgate.sdk._authenticator import (
    AuthenticatorError,
    AuthenticatorErrorCode,
    PasskeyAuthenticator,
    authenticator_failed,
)
from passgate.sdk._protocol import bearer_auth, failed, token_not_set
from passgate.sdk._types import AuthsignalResponse, SecurityKeyEnrollResponse, VerifyResponse

if TYPE_CHECKING:
    from passgate.sdk._sync.client import AuthsignalSync


class AuthsignalSecurityKey(BearerMethod):
    def __init__(self, client: AuthsignalSync, authenticator: PasskeyAuthenticator | None) -> None:
        super().__init__(client)
        self._authenticator = authenticator

    def _require_authenticator(self) -> PasskeyAuthenticator:
        if self._authenticator is None:
            raise AuthenticatorError(
                AuthenticatorErrorCode.NOT_SUPPORTED,
                "no security_key_authenticator was given to Authsignal(...)",
            )
        return self._authenticator

    def enroll(self) -> AuthsignalResponse[SecurityKeyEnrollResponse]:
        """Register a new credential on the key for the user of the cached token."""
        token = self._client.token
        if not token:
            return token_not_set()
        authorization = bearer_auth(token)
        options = self._client._api.call(
            wire.security_key_registration_options_request(authorization), wire.read_bare_options
        )
        if options.data is None:
            return failed(options)
        try:
            authenticator = self._require_authenticator()
            credential = authenticator.create(options.data)
        except AuthenticatorError as exc:
            return authenticator_failed(exc)
        added = self._client._api.call(
            wire.add_security_key_request(authorization, credential), wire.read_security_key_added
        )
        if added.data is not None and added.data.token:
            self._client.set_token(added.data.token)
        return added

    def verify(self) -> AuthsignalResponse[VerifyResponse]:
        """Prove the user holds one of their enrolled keys."""
        token = self._client.token
        if not token:
            return token_not_set()
        authorization = bearer_auth(token)
        options = self._client._api.call(
            wire.security_key_authentication_options_request(authorization),
            wire.read_bare_options,
        )
        if options.data is None:
            return failed(options)
        try:
            authenticator = self._require_authenticator()
            credential = authenticator.get(options.data)
        except AuthenticatorError as exc:
            return authenticator_failed(exc)
        return self._verify(lambda auth: wire.verify_security_key_request(auth, credential))

    def cancel(self) -> None:
        """Abandon an enrolment or verify waiting for a touch (callable from any thread)."""
        if self._authenticator is not None:
            self._authenticator.cancel()
