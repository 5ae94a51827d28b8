"""`Authsignal`: the client object apps create once, as in the Flutter SDK."""

from __future__ import annotations

import uuid
from types import TracebackType

import httpx

from passgate.sdk._sync.codes import (
    AuthsignalEmail,
    AuthsignalRecoveryCode,
    AuthsignalSms,
    AuthsignalTotp,
    AuthsignalWhatsapp,
)
from passgate.sdk._sync.email_magic_link import AuthsignalEmailMagicLink
from passgate.sdk._sync.passkey import Passkey
from passgate.sdk._sync.push import AuthsignalPush
from passgate.sdk._sync.security_key import AuthsignalSecurityKey
from passgate.sdk._sync.transport import ApiTransport
from passgate.sdk._authenticator import PasskeyAuthenticator
from passgate.sdk._protocol import DEFAULT_BASE_URL, basic_auth, bearer_auth
from passgate.sdk._push_protocol import DeviceKeys


class AuthsignalSync:
    """Talks to a Passgate server, or to Authsignal's hosted API, as the Flutter SDK does.

    `base_url` includes `/v1` (see `Region`). `device_id` identifies this installation to the
    server; without one a random id is made for the lifetime of the object.
    `passkey_authenticator` makes and uses passkeys for `client.passkey`, and `device_keys`
    holds the push device key for `client.push` (see `passgate.authenticators`).
    `security_key_authenticator` is the roaming key `client.security_key` uses.

    The fallback methods (`email`, `sms`, `whatsapp`, `totp`, `email_magic_link`,
    `security_key`, `recovery_code`) act for the user of the cached token (`set_token`)."""

    def __init__(
        self,
        tenant_id: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        passkey_authenticator: PasskeyAuthenticator | None = None,
        device_keys: DeviceKeys | None = None,
        security_key_authenticator: PasskeyAuthenticator | None = None,
        device_id: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not tenant_id:
            raise ValueError("tenant_id is required")
        self.tenant_id = tenant_id
        self.base_url = base_url.rstrip("/")
        self._device_id = device_id or str(uuid.uuid4())
        self._token: str | None = None
        self.timeout = timeout
        self._api = ApiTransport(self.base_url, tenant_id, transport=transport, timeout=timeout)
        self.passkey = Passkey(self, passkey_authenticator)
        # Push: this device approves actions. Its key lives in `device_keys` (default: the OS
        # keyring where there is one, else an encrypted file; see passgate.authenticators).
        self.push = AuthsignalPush(self, device_keys)
        self.email = AuthsignalEmail(self)
        self.sms = AuthsignalSms(self)
        self.whatsapp = AuthsignalWhatsapp(self)
        self.totp = AuthsignalTotp(self)
        self.recovery_code = AuthsignalRecoveryCode(self)
        self.email_magic_link = AuthsignalEmailMagicLink(self)
        self.security_key = AuthsignalSecurityKey(self, security_key_authenticator)

    def set_token(self, token: str) -> None:
        """Cache a token from your backend's `track`; calls that need one use it."""
        self._token = token

    def get_device_id(self) -> str:
        return self._device_id

    @property
    def token(self) -> str | None:
        return self._token

    def _authorization(self, token: str | None = None) -> str:
        """Bearer when a token is given or cached, else Basic with the tenant id
        (docs/wire.md#authorization-headers)."""
        token = token or self._token
        return bearer_auth(token) if token else basic_auth(self.tenant_id)

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> AuthsignalSync:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
