"""Replays of real authenticators' responses (tests/passkeys/vectors/*.json, each with where
it came from) through Passgate's relying party, plus the checks py_webauthn leaves to us.
Certificate chains are always checked, each as of a stated moment (`now=`)."""

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

from passgate.server.services import cose_algorithms, relying_party
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


def vector_now(vector: dict[str, Any]) -> datetime.datetime:
    """The moment the vector's chain is checked at: its own, else the present."""
    stated = vector.get("now")
    if stated:
        return datetime.datetime.fromisoformat(stated)
    return datetime.datetime.now(datetime.UTC)


def attestation_of(vector: dict[str, Any]) -> dict[str, Any]:
    return dict(cbor.decode(b64decode_any(vector["credential"]["response"]["attestationObject"])))


def last_certificate_as_root(vector: dict[str, Any]) -> dict[str, list[bytes]]:
    """x5c's last certificate, configured as an operator configures an attestation root."""
    last = x509.load_der_x509_certificate(attestation_of(vector)["attStmt"]["x5c"][-1])
    return {vector["format"]: [last.public_bytes(Encoding.PEM)]}


def with_attestation(vector: dict[str, Any], attestation: dict[str, Any]) -> dict[str, Any]:
    response = {**vector["credential"]["response"]}
    response["attestationObject"] = b64url(cbor.encode(attestation))
    return {**vector["credential"], "response": response}


def register(
    vector: dict[str, Any],
    *,
    now: datetime.datetime | None = None,
    roots: dict[str, list[bytes]] | None = None,
    credential: dict[str, Any] | None = None,
    trusted_only: bool = False,
) -> relying_party.VerifiedPasskey:
    """Through the relying party; `trusted_only` is a tenant that requires trusted attestation."""
    if roots is None:
        roots = last_certificate_as_root(vector) if vector.get("trustLastCertificate") else {}
    strict: dict[str, Any] = (
        {"attestation": "direct", "require_trusted_attestation": True} if trusted_only else {}
    )
    return relying_party.verify_registration(
        policy(vector["rpId"], [vector["origin"]], attestation_roots=roots, **strict),
        credential or vector["credential"],
        expected_challenge=b64decode_any(vector["challenge"]),
        now=now or vector_now(vector),
    )


@pytest.mark.parametrize("vector", REGISTRATIONS, ids=[v["format"] for v in REGISTRATIONS])
def test_registration_vectors(vector: dict[str, Any]) -> None:
    """Every chain is checked, as of the vector's stated time: none is switched off."""
    verified = register(vector)
    assert verified.attestation_format == vector["format"]
    assert verified.credential_id == b64url(b64decode_any(vector["credential"]["rawId"]))
    assert verified.sign_count == vector["signCount"]
    assert verified.attestation_verified is vector["attestationVerified"]
    assert verified.public_key_algorithm == cose_algorithms.algorithm_of(verified.public_key)


BY_FORMAT = {vector["format"]: vector for vector in REGISTRATIONS}


@pytest.mark.parametrize("fmt", ["apple", "tpm", "android-key"])
def test_a_chain_outside_its_validity_is_unverified(fmt: str) -> None:
    """The same chains, checked before their certificates began or after they expired: the
    passkey is accepted and recorded unverified (an Apple passkey registered today with an
    expired anonymous chain still registers), and refused only by a tenant that requires
    trusted attestation."""
    vector = BY_FORMAT[fmt]
    for moment in ("2019-01-01T00:00:00Z", "2099-06-01T00:00:00Z"):
        now = datetime.datetime.fromisoformat(moment)
        assert register(vector, now=now).attestation_verified is False
        with pytest.raises(CeremonyRefused, match="not valid at validation time") as refused:
            register(vector, now=now, trusted_only=True)
        assert refused.value.error_code == "verification_failed"
    assert register(vector, trusted_only=True).attestation_verified is True


@pytest.mark.parametrize("fmt", ["none", "packed", "fido-u2f"])
def test_statements_without_a_trusted_chain_register_unverified(fmt: str) -> None:
    """What browsers send by default (none), packed self attestation, and a security key's
    chain whose root is not configured: registered, not verified, unless the tenant
    requires trusted attestation."""
    vector = BY_FORMAT[fmt]
    assert register(vector).attestation_verified is False
    with pytest.raises(CeremonyRefused) as refused:
        register(vector, trusted_only=True)
    assert refused.value.error_code == "verification_failed"
    if fmt != "none":  # none is refused earlier: direct attestation refuses it
        assert "verified to a trusted root" in str(refused.value)


def test_a_bad_attestation_signature_is_always_refused() -> None:
    vector = BY_FORMAT["packed"]
    attestation = attestation_of(vector)
    signature = bytearray(attestation["attStmt"]["sig"])
    signature[-1] ^= 1
    forged = {**attestation, "attStmt": {**attestation["attStmt"], "sig": bytes(signature)}}
    with pytest.raises(CeremonyRefused, match="signature does not verify") as refused:
        register(vector, credential=with_attestation(vector, forged))
    assert refused.value.error_code == "verification_failed"


# android-safetynet: a real device's response from 2021 ------------------------------------


def _safetynet_jws(vector: dict[str, Any]) -> list[str]:
    return str(attestation_of(vector)["attStmt"]["response"].decode()).split(".")


def test_android_safetynet_verifies_at_a_time_inside_its_validity() -> None:
    """The device's response verifies as of its stated time, the chain reaching GlobalSign's
    root (shipped) through x5c in the JWS header; a tenant requiring trust accepts it."""
    vector = BY_FORMAT["android-safetynet"]
    payload = json.loads(b64decode_any(_safetynet_jws(vector)[1]))
    assert payload["ctsProfileMatch"] is True
    made = datetime.datetime.fromtimestamp(payload["timestampMs"] / 1000, datetime.UTC)
    for now in (made, made + datetime.timedelta(minutes=5)):
        verified = register(vector, now=now, trusted_only=True)
        assert (verified.attestation_format, verified.attestation_verified) == (
            "android-safetynet",
            True,
        )


@pytest.mark.parametrize(
    "moment",
    [
        "2021-09-03T21:00:00Z",
        "2021-09-03T21:20:00Z",
        "2021-10-01T00:00:00Z",
        "2026-01-01T00:00:00Z",
    ],
)
def test_android_safetynet_is_refused_away_from_its_time(moment: str) -> None:
    """timestampMs must be within minutes of `now` (a response is made during the ceremony),
    whatever the certificates' dates: before it was made, minutes after, a month later
    (certificates still valid), and today (the leaf long expired)."""
    vector = BY_FORMAT["android-safetynet"]
    with pytest.raises(CeremonyRefused, match="timestampMs") as refused:
        register(vector, now=datetime.datetime.fromisoformat(moment))
    assert refused.value.error_code == "verification_failed"


def test_android_safetynet_bound_to_its_registration() -> None:
    """The JWS signature covers the header and payload, and the payload's nonce covers
    authenticatorData and clientDataJSON: changing either is refused."""
    vector = BY_FORMAT["android-safetynet"]
    attestation = attestation_of(vector)
    header, payload, signature = _safetynet_jws(vector)
    flipped = b64url(bytes([b64decode_any(signature)[0] ^ 1]) + b64decode_any(signature)[1:])
    response = ".".join([header, payload, flipped]).encode()
    forged = {**attestation, "attStmt": {**attestation["attStmt"], "response": response}}
    with pytest.raises(CeremonyRefused, match="signature does not verify"):
        register(vector, credential=with_attestation(vector, forged))
    auth_data = bytearray(attestation["authData"])
    auth_data[32] |= 0x08  # a flag the nonce was not made over
    moved = {**attestation, "authData": bytes(auth_data)}
    with pytest.raises(CeremonyRefused, match="made for another registration"):
        register(vector, credential=with_attestation(vector, moved))
    without = {**attestation, "attStmt": {"ver": attestation["attStmt"]["ver"]}}
    with pytest.raises(CeremonyRefused, match="response is missing"):
        register(vector, credential=with_attestation(vector, without))


def test_android_key_without_its_root_in_x5c_is_anchored_at_the_configured_root() -> None:
    """x5c is not signed, so leaving its last certificate out is what a device that omits
    the root sends: the chain must still end at the tenant's configured root."""
    vector = BY_FORMAT["android-key"]
    attestation = attestation_of(vector)
    roots = last_certificate_as_root(vector)
    shortened = {**attestation["attStmt"], "x5c": attestation["attStmt"]["x5c"][:-1]}
    credential = with_attestation(vector, {**attestation, "attStmt": shortened})
    assert register(vector, roots=roots, credential=credential).attestation_verified
    # Google's roots alone do not issue this chain: unverified, or refused when required.
    for shown in (credential, vector["credential"]):
        assert register(vector, roots={}, credential=shown).attestation_verified is False
        with pytest.raises(CeremonyRefused, match="does not verify to a trusted root"):
            register(vector, roots={}, credential=shown, trusted_only=True)


def test_fido_u2f_with_a_non_zero_aaguid_is_accepted() -> None:
    """U2F signs neither the AAGUID nor the flags: a client may report any AAGUID, and the
    spec does not demand zero. py_webauthn refuses this."""
    vector = BY_FORMAT["fido-u2f"]
    attestation = attestation_of(vector)
    auth_data = bytearray(attestation["authData"])
    auth_data[37:53] = bytes(range(1, 17))
    credential = with_attestation(vector, {**attestation, "authData": bytes(auth_data)})
    verified = register(vector, credential=credential)
    assert verified.aaguid == "01020304-0506-0708-090a-0b0c0d0e0f10"


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


def test_options_offer_the_tenants_algorithms_es256_first() -> None:
    def offered(rp: PasskeyPolicy) -> list[int]:
        options = relying_party.registration_options(
            rp,
            challenge=b"x" * 32,
            user_handle="3f1c2a9e-6b7d-4e21-9c0a-5d8e7f6a1b2c",
            username="alice",
            display_name="Alice",
            exclude_credential_ids=[],
        )
        assert options["user"]["id"] == "3f1c2a9e-6b7d-4e21-9c0a-5d8e7f6a1b2c"
        assert options["authenticatorSelection"]["requireResidentKey"] is False
        assert options["excludeCredentials"] == []
        assert options["timeout"] == 300_000
        return [p["alg"] for p in options["pubKeyCredParams"]]

    every = offered(policy("localhost", ["https://localhost"]))
    assert every == [-7, -8, -35, -36, -37, -257, -48, -49, -50]
    assert offered(policy("localhost", ["https://localhost"], algorithms=(-7, -8))) == [-7, -8]


def test_direct_attestation_refuses_none() -> None:
    vector = REGISTRATIONS[0]
    assert vector["format"] == "none"
    with pytest.raises(CeremonyRefused, match="requires attestation"):
        relying_party.verify_registration(
            policy(vector["rpId"], [vector["origin"]], attestation="direct"),
            vector["credential"],
            expected_challenge=b64decode_any(vector["challenge"]),
        )
