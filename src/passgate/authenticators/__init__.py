"""Passkey authenticators for the SDK: `Authsignal(..., passkey_authenticator=...)`.

from passgate.authenticators import SoftwareAuthenticator, SecurityKeyAuthenticator
"""

from passgate.authenticators.security_key import SecurityKeyAuthenticator
from passgate.authenticators.software import SoftwareAuthenticator
from passgate.sdk._authenticator import (
    AuthenticatorError,
    AuthenticatorErrorCode,
    PasskeyAuthenticator,
)

__all__ = [
    "AuthenticatorError",
    "AuthenticatorErrorCode",
    "PasskeyAuthenticator",
    "SecurityKeyAuthenticator",
    "SoftwareAuthenticator",
]
