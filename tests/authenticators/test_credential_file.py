"""The software authenticator's credentials file: written by hand here in its documented format
(passgate-software-authenticator/1: JSON envelope, Fernet under scrypt(N=2^15, r=8, p=1) of the
passphrase), opened, used, and read back the same way after the authenticator rewrote it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from passgate.authenticators import AuthenticatorError, SoftwareAuthenticator

PASSPHRASE = "correct horse"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fernet(salt: bytes) -> Fernet:
    key = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(PASSPHRASE.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def read_vault(path: Path) -> dict[str, Any]:
    envelope = json.loads(path.read_text())
    assert envelope["format"] == "passgate-software-authenticator/1"
    assert envelope["kdf"] == "scrypt"
    plain = fernet(base64.b64decode(envelope["salt"])).decrypt(envelope["data"].encode())
    return dict(json.loads(plain))


def request_options() -> dict[str, Any]:
    return {"rpId": "localhost", "challenge": b64url(secrets.token_bytes(32))}


def test_a_file_in_the_format_opens_signs_and_stays_in_the_format(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    credential_id = b64url(secrets.token_bytes(32))
    vault = {
        "aaguid": secrets.token_hex(16),
        "credentials": [
            {
                "credential_id": credential_id,
                "rp_id": "localhost",
                "user_id": b64url(b"user-1"),
                "user_name": "ada",
                "display_name": "Ada",
                "algorithm": -7,
                "private_key": pem,
                "sign_count": 41,
                "created_at": 1700000000.0,
            }
        ],
    }
    salt = os.urandom(16)
    path = tmp_path / "passkeys.bin"
    envelope = {
        "format": "passgate-software-authenticator/1",
        "kdf": "scrypt",
        "salt": base64.b64encode(salt).decode(),
        "data": fernet(salt).encrypt(json.dumps(vault).encode()).decode(),
    }
    path.write_text(json.dumps(envelope))

    device = SoftwareAuthenticator(path, PASSPHRASE)
    assert device.credential_ids() == [credential_id]
    for expected_count in (42, 43):  # two ceremonies: two rewrites under the same key
        options = request_options()
        assertion = device.get(options)
        assert assertion["id"] == credential_id
        response = assertion["response"]
        auth_data = unb64url(response["authenticatorData"])
        assert int.from_bytes(auth_data[33:37], "big") == expected_count
        signed = auth_data + hashlib.sha256(unb64url(response["clientDataJSON"])).digest()
        key.public_key().verify(unb64url(response["signature"]), signed, ec.ECDSA(hashes.SHA256()))
        # Read back independently: still encrypted at rest, same format, same salt and KDF.
        rewritten = read_vault(path)
        assert rewritten["credentials"][0]["sign_count"] == expected_count
        assert rewritten["credentials"][0]["private_key"] == pem
        assert json.loads(path.read_text())["salt"] == envelope["salt"]
        assert pem.encode() not in path.read_bytes()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert not path.with_name(path.name + ".tmp").exists()

    with pytest.raises(AuthenticatorError):
        SoftwareAuthenticator(path, "another passphrase")


def test_a_new_file_made_by_the_authenticator_reads_with_the_documented_kdf(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new.bin"
    device = SoftwareAuthenticator(path, PASSPHRASE)
    user = {"id": b64url(b"user-2"), "name": "grace", "displayName": "Grace"}
    options = {
        "rp": {"id": "localhost", "name": "Test"},
        "user": user,
        "challenge": b64url(secrets.token_bytes(32)),
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
    }
    created = device.create(options)
    device.get(request_options())
    stored = read_vault(path)["credentials"]
    assert [item["credential_id"] for item in stored] == [created["id"]]
    assert stored[0]["sign_count"] == 1
    assert SoftwareAuthenticator(path, PASSPHRASE).credential_ids() == [created["id"]]
