"""`SoftwareAuthenticator`'s direct path (passgate.authenticators._direct) against fido2's
client path, which it stands in for: the same request through both gives the same JSON, the
same clientDataJSON and attestation objects fido2's own encoders produce, signatures that
verify with `cryptography`, and the same choices (credential, counter, user handle). Requests
it does not take go through fido2 and end as they always did. And the credential file, now
written from cached per-credential JSON, is byte for byte what json.dumps wrote before."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import secrets
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor
from fido2.cose import ES256, CoseKey
from fido2.webauthn import (
    AttestationObject,
    AttestedCredentialData,
    AuthenticatorData,
    CollectedClientData,
)

from passgate.authenticators import (
    AuthenticatorError,
    AuthenticatorErrorCode,
    SoftwareAuthenticator,
)
from passgate.authenticators._device import ALGORITHMS as NAMED
from passgate.authenticators._device import cose_key
from passgate.authenticators._fido2 import Fido2Authenticator

RP_ID = "localhost"
ALGORITHMS = [-7, -8, -35, -36, -37, -257, -48, -49, -50]
FLAG = AuthenticatorData.FLAG


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def creation_options(**changes: Any) -> dict[str, Any]:
    options = {
        "rp": {"name": "Tests", "id": RP_ID},
        "user": {"id": b64url(uuid.uuid4().bytes), "name": "alice", "displayName": "Alice"},
        "challenge": b64url(secrets.token_bytes(32)),
        "pubKeyCredParams": [{"type": "public-key", "alg": alg} for alg in ALGORITHMS],
        "timeout": 300000,
        "excludeCredentials": [],
        "authenticatorSelection": {
            "residentKey": "preferred",
            "requireResidentKey": False,
            "userVerification": "required",
        },
        "attestation": "none",
    }
    return {**options, **changes}


def request_options(allow: list[str] | None = None, **changes: Any) -> dict[str, Any]:
    options = {
        "challenge": b64url(secrets.token_bytes(32)),
        "timeout": 300000,
        "rpId": RP_ID,
        "allowCredentials": [{"type": "public-key", "id": cid} for cid in allow or []],
        "userVerification": "required",
    }
    return {**options, **changes}


def through_fido2_create(device: SoftwareAuthenticator, options: dict[str, Any]) -> Any:
    return Fido2Authenticator.create(device, options)


def through_fido2_get(device: SoftwareAuthenticator, options: dict[str, Any]) -> Any:
    return Fido2Authenticator.get(device, options)


def verify(public_key: CoseKey, auth_data: bytes, client_data: bytes, signature: bytes) -> None:
    """The signature over authenticatorData || SHA-256(clientDataJSON), checked with
    `cryptography` directly for ES256 and through fido2's COSE classes (which use it) else."""
    message = auth_data + hashlib.sha256(client_data).digest()
    if public_key[3] == ES256.ALGORITHM:
        numbers = ec.EllipticCurvePublicNumbers(
            int.from_bytes(public_key[-2], "big"),
            int.from_bytes(public_key[-3], "big"),
            ec.SECP256R1(),
        )
        numbers.public_key().verify(signature, message, ec.ECDSA(hashes.SHA256()))
    else:
        public_key.verify(message, signature)


def check_registration(
    device: SoftwareAuthenticator, options: dict[str, Any], created: dict[str, Any]
) -> tuple[CoseKey, AuthenticatorData]:
    """Parse with fido2, re-encode with fido2's constructors, verify the self-attestation."""
    client_data = unb64url(created["response"]["clientDataJSON"])
    expected = CollectedClientData.create(
        type="webauthn.create", challenge=unb64url(options["challenge"]), origin="https://localhost"
    )
    assert client_data == bytes(expected)
    raw = unb64url(created["response"]["attestationObject"])
    parsed = AttestationObject(raw)
    auth_data = parsed.auth_data
    credential = auth_data.credential_data
    assert credential is not None
    assert parsed.fmt == "packed" and set(parsed.att_stmt) == {"alg", "sig"}
    assert auth_data.rp_id_hash == hashlib.sha256(RP_ID.encode()).digest()
    assert auth_data.counter == 0
    assert bytes(credential.aaguid) == bytes.fromhex(device.device.vault.aaguid)
    assert b64url(credential.credential_id) == created["id"] == created["rawId"]
    assert parsed.att_stmt["alg"] == credential.public_key[3]
    rebuilt = AttestationObject.create(
        "packed",
        AuthenticatorData.create(
            auth_data.rp_id_hash,
            auth_data.flags,
            auth_data.counter,
            AttestedCredentialData.create(
                credential.aaguid, credential.credential_id, credential.public_key
            ),
        ),
        {"alg": parsed.att_stmt["alg"], "sig": parsed.att_stmt["sig"]},
    )
    assert bytes(rebuilt) == raw  # fido2's own encoders give the same bytes
    verify(credential.public_key, bytes(auth_data), client_data, parsed.att_stmt["sig"])
    return credential.public_key, auth_data


@pytest.mark.parametrize(
    "algorithm", ["ES256", "EdDSA", "RS256", "ES384", "ES512", "PS256", "ML-DSA-44"]
)
def test_registration_parses_re_encodes_and_verifies(tmp_path: Path, algorithm: str) -> None:
    device = SoftwareAuthenticator(tmp_path / "a.bin", algorithms=[algorithm])
    options = creation_options()
    created = device.create(options)
    public_key, auth_data = check_registration(device, options, created)
    assert auth_data.flags == FLAG.UP | FLAG.UV | FLAG.AT
    assert public_key[3] == NAMED[algorithm]
    options = request_options([created["id"]])
    asserted = device.get(options)
    auth_data = AuthenticatorData(unb64url(asserted["response"]["authenticatorData"]))
    assert auth_data.counter == 1
    client_data = unb64url(asserted["response"]["clientDataJSON"])
    verify(public_key, bytes(auth_data), client_data, unb64url(asserted["response"]["signature"]))
    # The direct path answered both: fido2's client was never made.
    assert device._clients == {}


def test_the_es256_key_is_the_one_fido2_encodes() -> None:
    for _ in range(20):
        key = ec.generate_private_key(ec.SECP256R1())
        expected = cbor.encode(ES256.from_cryptography_key(key.public_key()))  # type: ignore[no-untyped-call]
        assert cose_key(ES256.ALGORITHM, key) == expected


@pytest.mark.parametrize("synced", [False, True])
def test_both_paths_give_the_same_answers(tmp_path: Path, synced: bool) -> None:
    device = SoftwareAuthenticator(tmp_path / "both.bin", synced=synced)
    options = creation_options()
    by_fido2 = through_fido2_create(device, options)
    direct = device.create(options)
    assert json.dumps(by_fido2, sort_keys=False).count(":") == json.dumps(direct).count(":")
    assert list(by_fido2) == list(direct)
    assert list(by_fido2["response"]) == list(direct["response"])
    assert by_fido2["response"]["clientDataJSON"] == direct["response"]["clientDataJSON"]
    assert {k: v for k, v in by_fido2.items() if k not in ("id", "rawId", "response")} == {
        k: v for k, v in direct.items() if k not in ("id", "rawId", "response")
    }
    keys = {}
    for made in (by_fido2, direct):
        public_key, auth_data = check_registration(device, options, made)
        backup = FLAG.BE | FLAG.BS if synced else 0
        assert auth_data.flags == FLAG.UP | FLAG.UV | FLAG.AT | backup
        keys[made["id"]] = public_key

    newest, older = direct["id"], by_fido2["id"]
    counter = 0
    cases = [(None, newest), ([older], older), ([older, newest], older), ([newest, older], newest)]
    for allow, chosen in cases:
        for assert_with in (through_fido2_get, SoftwareAuthenticator.get):
            options = request_options(allow)
            answer = assert_with(device, options)
            assert answer["id"] == answer["rawId"] == chosen
            assert list(answer) == list(direct)
            expected_fields = ["clientDataJSON", "authenticatorData", "signature"]
            if allow is None:
                expected_fields.append("userHandle")
                assert answer["response"]["userHandle"] == options_user_id(device, chosen)
            assert list(answer["response"]) == expected_fields
            client_data = unb64url(answer["response"]["clientDataJSON"])
            assert client_data == bytes(
                CollectedClientData.create(
                    type="webauthn.get",
                    challenge=unb64url(options["challenge"]),
                    origin="https://localhost",
                )
            )
            auth_data = AuthenticatorData(unb64url(answer["response"]["authenticatorData"]))
            assert auth_data.rp_id_hash == hashlib.sha256(RP_ID.encode()).digest()
            assert auth_data.flags == FLAG.UP | FLAG.UV | (FLAG.BE | FLAG.BS if synced else 0)
            assert auth_data.credential_data is None and auth_data.extensions is None
            if not synced:
                counter += 1
            stored = next(c for c in device.device.vault.credentials if c.credential_id == chosen)
            assert auth_data.counter == (0 if synced else stored.sign_count)
            signature = unb64url(answer["response"]["signature"])
            verify(keys[chosen], bytes(auth_data), client_data, signature)
            with pytest.raises(InvalidSignature):
                verify(keys[chosen], bytes(auth_data), client_data + b" ", signature)
    total = sum(c.sign_count for c in device.device.vault.credentials)
    assert total == counter


def options_user_id(device: SoftwareAuthenticator, credential_id: str) -> str:
    return next(
        c.user_id for c in device.device.vault.credentials if c.credential_id == credential_id
    )


def test_what_the_direct_path_leaves_to_fido2(tmp_path: Path) -> None:
    device = SoftwareAuthenticator(tmp_path / "rest.bin")
    made = device.create(creation_options())
    # Extensions: fido2's client processes them (credProps answers rk).
    extended = device.create(creation_options(extensions={"credProps": True}))
    assert extended["clientExtensionResults"] == {"credProps": {"rk": True}}
    count = len(device.device.vault.credentials)
    # An excluded credential that is present: refused, nothing stored.
    with pytest.raises(AuthenticatorError) as excluded:
        device.create(
            creation_options(excludeCredentials=[{"type": "public-key", "id": made["id"]}])
        )
    assert excluded.value.code == AuthenticatorErrorCode.MATCHED_EXCLUDED_CREDENTIAL
    # No algorithm this device makes; an origin the rpId does not allow.
    with pytest.raises(AuthenticatorError) as no_algorithm:
        device.create(creation_options(pubKeyCredParams=[{"type": "public-key", "alg": -257}]))
    assert no_algorithm.value.code == AuthenticatorErrorCode.SDK_ERROR
    fixed = SoftwareAuthenticator(tmp_path / "fixed.bin", origin="https://localhost")
    with pytest.raises(AuthenticatorError) as wrong_origin:
        fixed.create(creation_options(rp={"name": "Other", "id": "example.com"}))
    assert wrong_origin.value.code == AuthenticatorErrorCode.SDK_ERROR
    assert fixed.device.vault.credentials == []
    with pytest.raises(AuthenticatorError) as wrong_origin:
        fixed.get(request_options(rpId="example.com"))
    assert wrong_origin.value.code == AuthenticatorErrorCode.SDK_ERROR
    assert len(device.device.vault.credentials) == count
    # Nothing to assert with: not for this rpId, not among the allowed ids.
    counts = [c.sign_count for c in device.device.vault.credentials]
    other = SoftwareAuthenticator(tmp_path / "other.bin", origin="https://example.com")
    for authenticator, options in [
        (other, request_options(rpId="example.com")),
        (device, request_options([b64url(b"not one of mine")])),
    ]:
        with pytest.raises(AuthenticatorError) as missing:
            authenticator.get(options)
        assert missing.value.code == AuthenticatorErrorCode.NO_CREDENTIAL
    assert [c.sign_count for c in device.device.vault.credentials] == counts


def old_plain(path: Path) -> tuple[bytes, bytes]:
    """(the file's decrypted vault, json.dumps of the vault as the file says it is)."""
    fernet = Fernet(path.with_name(path.name + ".key").read_bytes().strip())
    plain = fernet.decrypt(json.loads(path.read_bytes())["data"].encode())
    data = json.loads(plain)
    return plain, json.dumps(
        {"aaguid": data["aaguid"], "credentials": data["credentials"]}
    ).encode()


def test_the_file_is_what_json_dumps_wrote(tmp_path: Path) -> None:
    path = tmp_path / "file.bin"
    device = SoftwareAuthenticator(path)
    ids = [device.create(creation_options())["id"] for _ in range(3)]
    device.get(request_options([ids[1]]))
    device.get(request_options())
    envelope = path.read_bytes()
    assert envelope == json.dumps(json.loads(envelope)).encode()
    assert list(json.loads(envelope)) == ["format", "kdf", "salt", "data"]
    plain, dumped = old_plain(path)
    vault = device.device.vault
    expected = {
        "aaguid": vault.aaguid,
        "credentials": [dataclasses.asdict(c) for c in vault.credentials],
    }
    assert plain == dumped == json.dumps(expected).encode()
    # The counters written are the moved ones (the cached JSON of a changed credential is
    # made again), and a new process reads them.
    counts = {c["credential_id"]: c["sign_count"] for c in json.loads(plain)["credentials"]}
    assert counts == {ids[0]: 0, ids[1]: 1, ids[2]: 1}
    again = SoftwareAuthenticator(path)
    assert [c.sign_count for c in again.device.vault.credentials] == [0, 1, 1]
    pem = again.device.vault.credentials[0].private_key.encode()
    assert serialization.load_pem_private_key(pem, password=None) is not None


@pytest.mark.parametrize("user_verification", ["preferred", "discouraged", None])
def test_user_verification_and_resident_key_wishes_change_nothing(
    tmp_path: Path, user_verification: str | None
) -> None:
    """fido2's client asks this device for uv whatever the request says (it has built-in
    verification), and the device makes every credential discoverable: both paths set the
    same flags for every wish."""
    device = SoftwareAuthenticator(tmp_path / "uv.bin")
    selection = {"residentKey": "discouraged", "userVerification": user_verification}
    selection = {k: v for k, v in selection.items() if v is not None}
    flags = set()
    for create in (through_fido2_create, SoftwareAuthenticator.create):
        made = create(device, creation_options(authenticatorSelection=selection))
        flags.add(
            AttestationObject(unb64url(made["response"]["attestationObject"])).auth_data.flags
        )
    for get in (through_fido2_get, SoftwareAuthenticator.get):
        options = request_options(userVerification=user_verification)
        if user_verification is None:
            del options["userVerification"]
        asserted = get(device, options)
        flags.add(
            AuthenticatorData(unb64url(asserted["response"]["authenticatorData"])).flags | FLAG.AT
        )
    assert flags == {FLAG.UP | FLAG.UV | FLAG.AT}
