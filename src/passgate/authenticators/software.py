"""`SoftwareAuthenticator`: a passkey provider in a file, for programs, tests and servers."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from fido2.client import WebAuthnClient
from fido2.ctap import CtapDevice

from passgate.authenticators import _direct
from passgate.authenticators._device import SoftwareCtapDevice
from passgate.authenticators._fido2 import Fido2Authenticator, _origin_may_use
from passgate.authenticators._store import CredentialFile


class SoftwareAuthenticator(Fido2Authenticator):
    """A CTAP2 authenticator whose credentials live encrypted in the file at `path` and
    survive restarts. It answers like a platform passkey: discoverable credentials, user
    verification, `packed` self-attestation. A plain ceremony (no extensions, nothing to
    refuse) is answered directly by the device, giving the bytes fido2's `Fido2Client` would;
    anything else is driven by `Fido2Client`, the same code that drives a USB security key.

    - `passphrase`: derives the file's encryption key (scrypt); without one, a random key is
      kept in `<path>.key`.
    - `algorithms`: what it may create, preferred first: "ES256" (default), "EdDSA", "RS256",
      "ES384", "ES512", "PS256", "ML-DSA-44", "ML-DSA-65", "ML-DSA-87".
    - `synced=True`: sets the backup-eligible and backed-up flags and a sign count of 0, as
      iCloud Keychain or Google Password Manager passkeys do.
    - `origin`: clientDataJSON's origin; default `https://<rpId>` (what a browser on the
      relying party's site, or an iOS app associated with it, reports). An Android app
      reports `android:apk-key-hash:<base64url SHA-256 of its signing certificate>`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        passphrase: str | None = None,
        *,
        algorithms: Sequence[str] = ("ES256",),
        synced: bool = False,
        origin: str | None = None,
    ) -> None:
        super().__init__(origin=origin)
        self.path = os.fspath(path)
        self.device = SoftwareCtapDevice(
            CredentialFile(path, passphrase),
            algorithms=algorithms,
            backup_eligible=synced,
            backed_up=synced,
        )
        self._clients: dict[str, WebAuthnClient] = {}

    def _device(self) -> CtapDevice:
        return self.device

    def _client(self, origin: str) -> WebAuthnClient:
        """One fido2 client per origin, kept: this device is always present and never
        changes, so there is no need to make a client (and ask for its getInfo) per ceremony."""
        client = self._clients.get(origin)
        if client is None:
            client = self._clients[origin] = super()._client(origin)
        return client

    def create(self, options: Mapping[str, Any]) -> dict[str, Any]:
        made = _direct.create(self.device, options, self._origin_for, _origin_may_use)
        return super().create(options) if made is None else made

    def get(self, options: Mapping[str, Any]) -> dict[str, Any]:
        asserted = _direct.get(self.device, options, self._origin_for, _origin_may_use)
        return super().get(options) if asserted is None else asserted

    def credential_ids(self) -> list[str]:
        credentials = sorted(self.device.vault.credentials, key=lambda c: -c.created_at)
        return [credential.credential_id for credential in credentials]
