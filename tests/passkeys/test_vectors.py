"""Replays of real authenticators' responses (tests/passkeys/vectors/*.json, each with where
it came from) through Passgate's relying party, plus the checks py_webauthn leaves to us."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from fido2 import cbor
from fido2.cose import ES256
from fido2.webauthn import AttestedCredentialData, AuthenticatorData
from pyasn1.codec.der import encoder as der_encoder  # type: ignore[import-untyped]
from pyasn1.type.univ import OctetString  # type: ignore[import-untyped]

from passgate.server.services import relying_party
from passgate.server.services.passkey_policy import AndroidApp, PasskeyPolicy
from passgate.server.services.relying_party import CeremonyRefused, b64decode_any, b64url

VECTORS = Path(__file__).parent / "vectors"
REGISTRATIONS = json.loads((VECTORS / "registrations.json").read_text())["vectors"]
AUTHENTICATIONS = json.loads((VECTORS / "authentications.json").read_text())["vectors"]


def policy(rp_id: str, origins: list[str], **changes: Any) -> PasskeyPolicy:
    values: dict[str, Any] = {
        "rp_id": rp_id,
        "rp_name": "Vectors",
        "expected_origins": tuple(origins),
        "user_verification_required": False,
        "attestation": "none",
        "authenticator_attachment": None,
        "resident_key_required": False,
        "max_passkeys_per_user": 10,
        "ios_apps": (),
        "android_apps": (),
    }
    return PasskeyPolicy(**{**values, **changes})


@pytest.fixture
def expired_chains_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """For vectors whose certificates expired or end at an unshipped test root: the chain's
    dates and anchor are not checked; every signature still is."""
    from OpenSSL import crypto

    monkeypatch.setattr(crypto.X509StoreContext, "verify_certificate", lambda self: None)


@pytest.mark.parametrize("vector", REGISTRATIONS, ids=[v["format"] for v in REGISTRATIONS])
def test_registration_vectors(vector: dict[str, Any], request: pytest.FixtureRequest) -> None:
    if vector.get("expiredChain"):
        request.getfixturevalue("expired_chains_allowed")
    roots: dict[str, list[bytes]] = {}
    if vector.get("trustLastCertificate"):  # as an operator configures attestation roots
        attestation = cbor.decode(
            b64decode_any(vector["credential"]["response"]["attestationObject"])
        )
        last = x509.load_der_x509_certificate(attestation["attStmt"]["x5c"][-1])
        roots[vector["format"]] = [last.public_bytes(Encoding.PEM)]
    verified = relying_party.verify_registration(
        policy(vector["rpId"], [vector["origin"]], attestation_roots=roots),
        vector["credential"],
        expected_challenge=b64decode_any(vector["challenge"]),
    )
    assert verified.attestation_format == vector["format"]
    assert verified.credential_id == b64url(b64decode_any(vector["credential"]["rawId"]))
    assert verified.sign_count == vector["signCount"]


@pytest.mark.parametrize("vector", REGISTRATIONS[:2], ids=["none", "packed"])
def test_registration_vectors_refused_elsewhere(vector: dict[str, Any]) -> None:
    challenge = b64decode_any(vector["challenge"])
    with pytest.raises(CeremonyRefused) as wrong_origin:
        relying_party.verify_registration(
            policy(vector["rpId"], ["https://elsewhere.example"]),
            vector["credential"],
            expected_challenge=challenge,
        )
    assert wrong_origin.value.error_code == "origin_mismatch"
    with pytest.raises(CeremonyRefused) as wrong_rp:
        relying_party.verify_registration(
            policy("elsewhere.example", [vector["origin"]]),
            vector["credential"],
            expected_challenge=challenge,
        )
    assert wrong_rp.value.error_code == "rp_id_mismatch"
    with pytest.raises(CeremonyRefused) as wrong_challenge:
        relying_party.verify_registration(
            policy(vector["rpId"], [vector["origin"]]),
            vector["credential"],
            expected_challenge=b"another challenge",
        )
    assert wrong_challenge.value.error_code == "verification_failed"


def test_ios_encoding_of_a_registration() -> None:
    """iOS sends clientDataJSON in standard, padded base64 (docs/wire.md#webauthn-json)."""
    vector = REGISTRATIONS[0]
    credential = json.loads(json.dumps(vector["credential"]))
    raw = b64decode_any(credential["response"]["clientDataJSON"])
    credential["response"]["clientDataJSON"] = base64.b64encode(raw).decode()
    credential["authenticatorAttachment"] = "cross-platform"
    verified = relying_party.verify_registration(
        policy(vector["rpId"], [vector["origin"]]),
        credential,
        expected_challenge=b64decode_any(vector["challenge"]),
    )
    assert verified.authenticator_attachment == "cross-platform"


def _android_fingerprint(origin: str) -> str:
    digest = b64decode_any(origin.removeprefix("android:apk-key-hash:"))
    return ":".join(f"{byte:02X}" for byte in digest)


COUNTING = [v for v in AUTHENTICATIONS if not v.get("publicKeyUnknown")]


@pytest.mark.parametrize("vector", COUNTING, ids=[v["name"] for v in COUNTING])
def test_authentication_vectors(vector: dict[str, Any]) -> None:
    asserted = relying_party.verify_assertion(
        policy(vector["rpId"], [vector["origin"]]),
        vector["credential"],
        expected_challenge=b64decode_any(vector["challenge"]),
        public_key=b64decode_any(vector["publicKey"]),
        stored_sign_count=vector["storedSignCount"],
    )
    assert asserted.sign_count == vector["newSignCount"]


def test_native_android_origin_comes_from_the_app_fingerprint() -> None:
    (vector,) = [v for v in AUTHENTICATIONS if v.get("androidApp")]
    app = AndroidApp(
        package_name=vector["androidApp"],
        sha256_cert_fingerprints=(_android_fingerprint(vector["origin"]),),
    )
    assert app.origins() == [vector["origin"]]
    web_only = policy(vector["rpId"], ["https://" + vector["rpId"]])
    with_app = policy(vector["rpId"], ["https://" + vector["rpId"], *app.origins()])
    unrelated_key = b64decode_any(COUNTING[0]["publicKey"])
    outcomes = {}
    for name, rp in (("web only", web_only), ("with the app", with_app)):
        with pytest.raises(CeremonyRefused) as refused:
            relying_party.verify_assertion(
                rp,
                vector["credential"],
                expected_challenge=b64decode_any(vector["challenge"]),
                public_key=unrelated_key,
                stored_sign_count=0,
            )
        outcomes[name] = refused.value.error_code
    # Configured, the app's origin and the rpId pass; only the (unknown) key is left.
    assert outcomes == {"web only": "origin_mismatch", "with the app": "verification_failed"}


def test_a_counter_that_does_not_move_forward_is_refused() -> None:
    vector = AUTHENTICATIONS[0]
    for stored in (vector["newSignCount"], vector["newSignCount"] + 10):
        with pytest.raises(relying_party.SignCountRegressed):
            relying_party.verify_assertion(
                policy(vector["rpId"], [vector["origin"]]),
                vector["credential"],
                expected_challenge=b64decode_any(vector["challenge"]),
                public_key=b64decode_any(vector["publicKey"]),
                stored_sign_count=stored,
            )


# The packed AAGUID extension (docs/wire.md#relying-party-checks) --------------------------


def _packed_registration(cert_aaguid: bytes, data_aaguid: bytes) -> tuple[dict[str, Any], bytes]:
    attestation_key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Passgate tests"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Authenticator Attestation"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Batch"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    aaguid_extension = x509.UnrecognizedExtension(
        relying_party.AAGUID_EXTENSION, der_encoder.encode(OctetString(cert_aaguid))
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(attestation_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(aaguid_extension, critical=False)
        .sign(attestation_key, hashes.SHA256())
    )
    credential_key = ec.generate_private_key(ec.SECP256R1())
    credential_id = b"\x01" * 32
    auth_data = AuthenticatorData.create(
        hashlib.sha256(b"localhost").digest(),
        AuthenticatorData.FLAG.UP | AuthenticatorData.FLAG.UV | AuthenticatorData.FLAG.AT,
        0,
        AttestedCredentialData.create(
            data_aaguid, credential_id, ES256.from_cryptography_key(credential_key.public_key())
        ),
    )
    challenge = b"c" * 32
    client_data = json.dumps(
        {"type": "webauthn.create", "challenge": b64url(challenge), "origin": "https://localhost"}
    ).encode()
    signature = attestation_key.sign(
        bytes(auth_data) + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
    )
    attestation = {
        "fmt": "packed",
        "attStmt": {"alg": -7, "sig": signature, "x5c": [certificate.public_bytes(Encoding.DER)]},
        "authData": bytes(auth_data),
    }
    credential = {
        "id": b64url(credential_id),
        "rawId": b64url(credential_id),
        "type": "public-key",
        "response": {
            "clientDataJSON": b64url(client_data),
            "attestationObject": b64url(cbor.encode(attestation)),
        },
    }
    return credential, challenge


def test_packed_aaguid_extension_must_match() -> None:
    aaguid = bytes(range(16))
    rp = policy("localhost", ["https://localhost"])
    matching, challenge = _packed_registration(aaguid, aaguid)
    assert relying_party.verify_registration(rp, matching, expected_challenge=challenge)
    forged, challenge = _packed_registration(aaguid, bytes(16))
    with pytest.raises(CeremonyRefused, match="AAGUID") as refused:
        relying_party.verify_registration(rp, forged, expected_challenge=challenge)
    assert refused.value.error_code == "verification_failed"


def test_es384_is_never_advertised() -> None:
    options = relying_party.registration_options(
        policy("localhost", ["https://localhost"]),
        challenge=b"x" * 32,
        user_handle="3f1c2a9e-6b7d-4e21-9c0a-5d8e7f6a1b2c",
        username="alice",
        display_name="Alice",
        exclude_credential_ids=[],
    )
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-7, -8, -257]
    assert options["user"]["id"] == "3f1c2a9e-6b7d-4e21-9c0a-5d8e7f6a1b2c"
    assert options["authenticatorSelection"]["requireResidentKey"] is False
    assert options["excludeCredentials"] == []
    assert options["timeout"] == 300_000


def test_direct_attestation_refuses_none() -> None:
    vector = REGISTRATIONS[0]
    assert vector["format"] == "none"
    with pytest.raises(CeremonyRefused, match="requires attestation"):
        relying_party.verify_registration(
            policy(vector["rpId"], [vector["origin"]], attestation="direct"),
            vector["credential"],
            expected_challenge=b64decode_any(vector["challenge"]),
        )
