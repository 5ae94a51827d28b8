"""The authenticator model behind a passkey, from its AAGUID: `aaguidMapping {name,
svgIconLight, svgIconDark}` in the Client API's list (C7) and the Server API's, as Authsignal
shows it; nothing for AAGUIDs the list does not know."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx

from passgate.authenticators import SoftwareAuthenticator
from tests.passkeys.helpers import Ceremony, bearer

APPLE_PASSWORDS = "fbfc3007-154e-4ecc-8c0b-6e020557d7bd"


def authenticator_with_aaguid(path: Path, aaguid: str | None) -> SoftwareAuthenticator:
    device = SoftwareAuthenticator(path)
    if aaguid is not None:
        device.device.vault.aaguid = aaguid.replace("-", "")
    return device


def test_known_aaguid_has_a_name_and_icons(
    ceremony: Ceremony, http: httpx.Client, tmp_path: Path
) -> None:
    device = authenticator_with_aaguid(tmp_path / "apple.bin", APPLE_PASSWORDS)
    added = ceremony.register(device, "mapped-user")
    listed = ceremony.http.get("/client/user-authenticators", headers=bearer(added["accessToken"]))
    assert listed.status_code == 200, listed.text
    credential = listed.json()[0]["webauthnCredential"]
    assert credential["aaguid"] == APPLE_PASSWORDS
    mapping = credential["aaguidMapping"]
    assert mapping["name"] == "Apple Passwords"
    assert credential["name"] == "Apple Passwords"
    for icon in (mapping["svgIconLight"], mapping["svgIconDark"]):
        prefix, _, data = icon.partition(",")
        assert prefix == "data:image/svg+xml;base64"
        assert base64.b64decode(data).lstrip().startswith(b"<svg")

    # The Server API shows the same authenticator the same way.
    server_side = http.get("/users/mapped-user/authenticators").json()
    assert server_side[0]["webauthnCredential"]["aaguidMapping"] == mapping


def test_unknown_aaguid_has_no_mapping(ceremony: Ceremony, tmp_path: Path) -> None:
    device = authenticator_with_aaguid(tmp_path / "random.bin", None)
    added = ceremony.register(device, "unmapped-user")
    listed = ceremony.http.get("/client/user-authenticators", headers=bearer(added["accessToken"]))
    credential = listed.json()[0]["webauthnCredential"]
    assert credential["aaguid"]
    assert "aaguidMapping" not in credential
    assert "name" not in credential
