"""The code path for every authenticator: fido2's WebAuthn client (`Fido2Client` over a
CTAP device, or `WindowsClient` over webauthn.dll), fed the server's JSON options and giving
back the browser's JSON result. fido2 errors are translated here, and only here.

`SoftwareAuthenticator` answers the plain ceremony without it (passgate.authenticators._direct,
same bytes out) and comes here for everything else."""

from __future__ import annotations

import functools
import threading
import typing
from collections.abc import Mapping
from typing import Any

import fido2.utils
from fido2.client import (
    ClientError,
    DefaultClientDataCollector,
    Fido2Client,
    UserInteraction,
    WebAuthnClient,
)
from fido2.ctap import CtapDevice
from fido2.rpid import verify_rp_id
from fido2.webauthn import PublicKeyCredentialCreationOptions, PublicKeyCredentialRequestOptions

from passgate.sdk._authenticator import AuthenticatorError, AuthenticatorErrorCode

Code = AuthenticatorErrorCode


@functools.cache
def _class_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _get_type_hints(obj: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """`typing.get_type_hints`, remembered per class. fido2 2.x asks it for a dataclass's field
    types each time it builds or parses one of its WebAuthn/CTAP objects, and with string
    annotations that means compiling every annotation again: about 60% of the CPU of a
    software authenticator's ceremony. A class's hints never change, so asking once is enough."""
    if args or kwargs or not isinstance(obj, type):
        return typing.get_type_hints(obj, *args, **kwargs)
    return dict(_class_hints(obj))  # a copy: the caller may change it


if getattr(fido2.utils, "get_type_hints", None) is typing.get_type_hints:
    fido2.utils.get_type_hints = _get_type_hints  # type: ignore[attr-defined]


class Fido2Authenticator:
    """Base for `SoftwareAuthenticator` and `SecurityKeyAuthenticator`.

    `origin` is what clientDataJSON says the request came from; by default `https://<rpId>`,
    which is also what iOS and Android apps associated with the domain produce."""

    def __init__(
        self, *, origin: str | None = None, user_interaction: UserInteraction | None = None
    ) -> None:
        self._origin = origin
        self._interaction = user_interaction or UserInteraction()
        self._cancel = threading.Event()

    def _device(self) -> CtapDevice | None:
        """The CTAP device to talk to, or None when none is present."""
        raise NotImplementedError

    def _client(self, origin: str) -> WebAuthnClient:
        device = self._device()
        if device is None:
            raise AuthenticatorError(Code.NOT_SUPPORTED, "no authenticator is connected")
        collector = DefaultClientDataCollector(origin, verify=_origin_may_use)
        return Fido2Client(device, collector, self._interaction)

    def _origin_for(self, rp_id: str) -> str:
        return self._origin or f"https://{rp_id}"

    def create(self, options: Mapping[str, Any]) -> dict[str, Any]:
        rp_id = str(options.get("rp", {}).get("id") or "")
        event = self._fresh_event()
        try:
            response = self._client(self._origin_for(rp_id)).make_credential(
                PublicKeyCredentialCreationOptions.from_dict(dict(options)), event=event
            )
        except ClientError as exc:
            raise _translate(exc, creating=True) from exc
        return _json(response)

    def get(self, options: Mapping[str, Any]) -> dict[str, Any]:
        rp_id = str(options.get("rpId") or "")
        event = self._fresh_event()
        try:
            selection = self._client(self._origin_for(rp_id)).get_assertion(
                PublicKeyCredentialRequestOptions.from_dict(dict(options)), event=event
            )
        except ClientError as exc:
            raise _translate(exc, creating=False) from exc
        return _json(selection.get_response(0))

    def cancel(self) -> None:
        self._cancel.set()

    def is_available(self) -> bool:
        return self._device() is not None

    def credential_ids(self) -> list[str]:
        return []

    def _fresh_event(self) -> threading.Event:
        self._cancel = threading.Event()
        return self._cancel


def _origin_may_use(rp_id: str, origin: str) -> bool:
    """fido2's rule (https origin on the rpId or a subdomain of it), plus what Android's
    Credential Manager does for an app the site's assetlinks.json vouches for: origin
    `android:apk-key-hash:<signing cert hash>`; the relying party checks that hash."""
    return origin.startswith("android:apk-key-hash:") or verify_rp_id(rp_id, origin)


def _json(response: Any) -> dict[str, Any]:
    """fido2's responses are JSON mappings (base64url strings inside); make plain dicts."""
    if isinstance(response, Mapping):
        return {str(key): _json(value) for key, value in dict(response).items()}
    if isinstance(response, list | tuple):
        return [_json(item) for item in response]  # type: ignore[return-value]
    return response  # type: ignore[no-any-return]


def _translate(exc: ClientError, *, creating: bool) -> AuthenticatorError:
    if exc.code == ClientError.ERR.DEVICE_INELIGIBLE:
        if creating:
            return AuthenticatorError(
                Code.MATCHED_EXCLUDED_CREDENTIAL, "a passkey for this account already exists"
            )
        return AuthenticatorError(Code.NO_CREDENTIAL, "no passkey for this site is available")
    if exc.code == ClientError.ERR.TIMEOUT:
        return AuthenticatorError(Code.USER_CANCELED, "the ceremony was canceled or timed out")
    return AuthenticatorError(Code.SDK_ERROR, f"authenticator error: {exc!r}")
