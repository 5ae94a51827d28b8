"""Where client-side keys live: passkey authenticators for `Authsignal(...,
passkey_authenticator=...)`, and the push device's P-256 key (`device_keys=...`).

    from passgate.authenticators import SoftwareAuthenticator, SecurityKeyAuthenticator
    from passgate.authenticators import DeviceKeyStore
"""

from passgate.authenticators.device_keys import (
    DeviceKeyStore,
    KeyringDeviceKeyStore,
    default_device_keys,
)
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
    "DeviceKeyStore",
    "KeyringDeviceKeyStore",
    "PasskeyAuthenticator",
    "SecurityKeyAuthenticator",
    "SoftwareAuthenticator",
    "default_device_keys",
]
