"""The authenticators on their own: the software CTAP2 device behind fido2's real client,
its encrypted file, and the security-key path (driven here by the software device, as no
hardware is attached; real keys are exercised by hand, see docs/passkeys.md)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from fido2.ctap2 import Ctap2

from passgate.authenticators import (
    AuthenticatorError,
    AuthenticatorErrorCode,
    PasskeyAuthenticator,
    SecurityKeyAuthenticator,
    SoftwareAuthenticator,
)
from passgate.server.services import relying_party
from tests.passkeys.test_vectors import policy

RP = policy("localhost", ["https://localhost"], user_verification_required=True)
HANDLE = "3f1c2a9e-6b7d-4e21-9c0a-5d8e7f6a1b2c"


def creation_options(exclude: list[str] | None = None) -> tuple[dict[str, Any], bytes]:
    challenge = secrets.token_bytes(32)
    options = relying_party.registration_options(
        RP,
        challenge=challenge,
        user_handle=HANDLE,
        username="alice",
        display_name="Alice",
        exclude_credential_ids=exclude or [],
    )
    return options, challenge


def request_options() -> tuple[dict[str, Any], bytes]:
    challenge = secrets.token_bytes(32)
    return relying_party.authentication_options(
        RP, challenge=challenge, allow_credential_ids=[]
    ), challenge


def register_and_assert(device: PasskeyAuthenticator) -> relying_party.VerifiedPasskey:
    options, challenge = creation_options()
    registered = relying_party.verify_registration(
        RP, device.create(options), expected_challenge=challenge
    )
    options, challenge = request_options()
    assertion = device.get(options)
    assert relying_party.user_handle_of(assertion) == HANDLE
    relying_party.verify_assertion(
        RP,
        assertion,
        expected_challenge=challenge,
        public_key=registered.public_key,
        stored_sign_count=registered.sign_count,
    )
    return registered


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA", "RS256"])
def test_each_algorithm(tmp_path: Path, algorithm: str) -> None:
    device = SoftwareAuthenticator(tmp_path / "a.bin", "pw", algorithms=[algorithm])
    assert isinstance(device, PasskeyAuthenticator)
    registered = register_and_assert(device)
    assert registered.attestation_format == "packed"
    assert registered.device_type == "single_device"


def test_the_file_is_encrypted_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "passkeys.bin"
    device = SoftwareAuthenticator(path, "a passphrase")
    registered = register_and_assert(device)
    stored = path.read_text()
    assert "PRIVATE KEY" not in stored and "alice" not in stored
    assert json.loads(stored)["kdf"] == "scrypt"
    again = SoftwareAuthenticator(path, "a passphrase")
    assert again.credential_ids() == [registered.credential_id]
    options, _challenge = request_options()
    assert again.get(options)["id"] == registered.credential_id
    with pytest.raises(AuthenticatorError, match="wrong passphrase"):
        SoftwareAuthenticator(path, "another passphrase")


def test_synced_passkeys_report_backup_and_a_zero_counter(tmp_path: Path) -> None:
    device = SoftwareAuthenticator(tmp_path / "s.bin", synced=True)
    registered = register_and_assert(device)
    assert registered.backed_up and registered.device_type == "multi_device"
    assert registered.sign_count == 0


def test_excluded_credentials_and_missing_ones(tmp_path: Path) -> None:
    device = SoftwareAuthenticator(tmp_path / "x.bin")
    registered = register_and_assert(device)
    options, _challenge = creation_options(exclude=[registered.credential_id])
    with pytest.raises(AuthenticatorError) as excluded:
        device.create(options)
    assert excluded.value.code == AuthenticatorErrorCode.MATCHED_EXCLUDED_CREDENTIAL
    empty = SoftwareAuthenticator(tmp_path / "empty.bin")
    with pytest.raises(AuthenticatorError) as missing:
        empty.get(request_options()[0])
    assert missing.value.code == AuthenticatorErrorCode.NO_CREDENTIAL


def test_it_speaks_ctap2_to_fido2_itself(tmp_path: Path) -> None:
    info = Ctap2(SoftwareAuthenticator(tmp_path / "c.bin").device).get_info()
    assert "FIDO_2_0" in info.versions
    assert info.options["rk"] and info.options["uv"]


def test_origin_defaults_to_the_rp_id_and_can_be_set(tmp_path: Path) -> None:
    options, _ = creation_options()
    default = SoftwareAuthenticator(tmp_path / "o1.bin").create(options)
    native = SoftwareAuthenticator(tmp_path / "o2.bin", origin="https://login.localhost")
    made = native.create(options)
    origin_of = relying_party.b64decode_any
    assert json.loads(origin_of(default["response"]["clientDataJSON"]))["origin"] == (
        "https://localhost"
    )
    client_data = json.loads(origin_of(made["response"]["clientDataJSON"]))
    assert (client_data["origin"], client_data["crossOrigin"]) == ("https://login.localhost", False)


def test_security_key_path_with_a_device(tmp_path: Path) -> None:
    """The security-key authenticator runs fido2's client over whatever CTAP device it is
    given; here the software one stands in for a USB key."""
    device = SoftwareAuthenticator(tmp_path / "key.bin").device
    touched: list[bool] = []
    key = SecurityKeyAuthenticator(device, on_touch=lambda: touched.append(True))
    assert key.is_available()
    register_and_assert(key)
    assert key.credential_ids() == []  # a real key cannot list without a PIN


def test_security_key_without_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    from fido2.hid import CtapHidDevice

    monkeypatch.setattr(CtapHidDevice, "list_devices", classmethod(lambda cls: iter(())))
    key = SecurityKeyAuthenticator(use_windows_api=False)
    assert not key.is_available()
    with pytest.raises(AuthenticatorError) as refused:
        key.create(creation_options()[0])
    assert refused.value.code == AuthenticatorErrorCode.NOT_SUPPORTED
