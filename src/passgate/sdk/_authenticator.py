"""What the SDK needs from a passkey authenticator, and how one reports failure.

`passgate.authenticators` has two: `SoftwareAuthenticator` (a CTAP2 device in a file) and
`SecurityKeyAuthenticator` (a USB key, or Windows Hello). Any object with these methods works,
for example one that drives a platform API."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol, TypeVar, runtime_checkable

from passgate.sdk._types import AuthsignalResponse

T = TypeVar("T")


class AuthenticatorErrorCode(StrEnum):
    """The codes the mobile SDKs report for authenticator-side failures (docs/wire.md#transport)."""

    USER_CANCELED = "user_canceled"
    NO_CREDENTIAL = "no_credential"
    MATCHED_EXCLUDED_CREDENTIAL = "matched_excluded_credential"
    NOT_SUPPORTED = "passkeys_not_supported"
    SDK_ERROR = "sdk_error"


class AuthenticatorError(Exception):
    """An authenticator could not do what was asked; `code` says why."""

    def __init__(self, code: AuthenticatorErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def authenticator_failed(exc: AuthenticatorError) -> AuthsignalResponse[T]:
    """An authenticator's failure as a call's result (the SDK never raises it)."""
    return AuthsignalResponse(error=exc.message, error_code=str(exc.code))


@runtime_checkable
class PasskeyAuthenticator(Protocol):
    """Options and results are the W3C JSON forms (`PublicKeyCredentialCreationOptionsJSON`,
    `RegistrationResponseJSON`, ...), exactly as they travel to and from the server."""

    def create(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Make a credential (navigator.credentials.create)."""
        ...

    def get(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Assert with a credential (navigator.credentials.get)."""
        ...

    def cancel(self) -> None:
        """Abandon the ceremony in progress, if any."""
        ...

    def is_available(self) -> bool:
        """Whether a ceremony could run now (a key is plugged in, the file is readable)."""
        ...

    def credential_ids(self) -> list[str]:
        """Credential ids (base64url) this authenticator knows it holds, newest first; empty
        when it cannot tell (a security key without credential management)."""
        ...
