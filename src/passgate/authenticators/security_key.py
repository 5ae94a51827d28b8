"""`SecurityKeyAuthenticator`: a hardware key over USB HID (or NFC via a given device), and
Windows Hello / security keys through webauthn.dll on Windows."""

from __future__ import annotations

import sys
from collections.abc import Callable

from fido2.client import DefaultClientDataCollector, UserInteraction, WebAuthnClient
from fido2.ctap import CtapDevice
from fido2.ctap2.pin import ClientPin
from fido2.hid import CtapHidDevice

from passgate.authenticators._fido2 import Fido2Authenticator


class _Interaction(UserInteraction):
    def __init__(self, pin: str | Callable[[], str | None] | None, on_touch: Callable[[], None]):
        self._pin = pin
        self._on_touch = on_touch

    def prompt_up(self) -> None:
        self._on_touch()

    def request_pin(self, permissions: ClientPin.PERMISSION, rp_id: str | None) -> str | None:
        return self._pin() if callable(self._pin) else self._pin


class SecurityKeyAuthenticator(Fido2Authenticator):
    """Uses the first FIDO2 key found (`CtapHidDevice.list_devices()`), or `device` when given
    (for example `fido2.pcsc.CtapPcscDevice` for NFC). On Windows it uses the system WebAuthn
    API instead, as non-administrator processes must.

    - `pin`: the key's PIN, or a function asked for it when the key needs one.
    - `on_touch`: called when the key waits for a touch (default: print a prompt).

    On Linux the process needs access to `/dev/hidraw*` (root, or a udev rule)."""

    def __init__(
        self,
        device: CtapDevice | None = None,
        *,
        pin: str | Callable[[], str | None] | None = None,
        on_touch: Callable[[], None] | None = None,
        origin: str | None = None,
        use_windows_api: bool | None = None,
    ) -> None:
        touch = on_touch or (lambda: print("Touch your security key.", file=sys.stderr))
        super().__init__(origin=origin, user_interaction=_Interaction(pin, touch))
        self._given = device
        self._windows = use_windows_api if use_windows_api is not None else _windows_available()

    def _device(self) -> CtapDevice | None:
        if self._given is not None:
            return self._given
        return next(iter(CtapHidDevice.list_devices()), None)

    def _client(self, origin: str) -> WebAuthnClient:
        if self._windows and self._given is None:  # pragma: no cover - Windows only
            from fido2.client.windows import WindowsClient

            return WindowsClient(DefaultClientDataCollector(origin))
        return super()._client(origin)

    def is_available(self) -> bool:
        return self._windows or self._device() is not None


def _windows_available() -> bool:
    if sys.platform != "win32":
        return False
    from fido2.client.windows import WindowsClient  # pragma: no cover - Windows only

    return bool(WindowsClient.is_available())  # pragma: no cover
