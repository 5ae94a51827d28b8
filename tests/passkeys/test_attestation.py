"""Attestation formats the way the spec defines them, with certificate chains made here by a
test CA (real keys, real signatures) and sent through the real server: a TPM from a
manufacturer no list knows, fido-u2f with a non-zero AAGUID, chains checked as of a stated
time, and the cross-origin rule on `topOrigin`."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from authsignal.client import AuthsignalClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from fido2 import cbor
from fido2.cose import ES256
from fido2.webauthn import AttestedCredentialData, AuthenticatorData
from sqlalchemy import select

from passgate.authenticators import SoftwareAuthenticator
from passgate.server.services import passkey_policy, relying_party, tenants
from passgate.server.services.errors import InvalidRequest
from passgate.server.services.passkey_policy import PasskeyPolicy
from passgate.server.services.relying_party import CeremonyRefused, b64decode_any
from passgate.server.store.db import Db
from passgate.server.store.tables import PasskeyCredential
from tests.cli.test_cli import passgate
from tests.live_server import LiveServer, Tenant
from tests.passkeys.helpers import Ceremony, b64url, with_client_data
from tests.server.test_refusals import assert_error

NOW = datetime.datetime(2030, 6, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
# Certificates are valid from EPOCH to END unless a test says otherwise.
EPOCH = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
END = datetime.datetime(2040, 1, 1, tzinfo=datetime.UTC)
UNLISTED_TPM_MANUFACTURER = "id:FFFFF1D0"  # FIDO's conformance TPM: in no vendor registry
AAGUID = bytes.fromhex("0102030405060708090a0b0c0d0e0f10")


# A test PKI --------------------------------------------------------------------------------


@dataclass
class Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(Encoding.DER)

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(Encoding.PEM).decode()


def issue(
    subject: x509.Name,
    issuer: Issued | None,
    *,
    ca: bool,
    extensions: list[tuple[x509.ExtensionType, bool]] = (),  # type: ignore[assignment]
    valid_from: datetime.datetime = EPOCH,
    valid_to: datetime.datetime = END,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    signer = issuer.key if issuer else key
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def named(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pki(valid_to: datetime.datetime = END) -> tuple[Issued, Issued]:
    root = issue(named("Passgate test root"), None, ca=True)
    intermediate = issue(named("Passgate test CA"), root, ca=True, valid_to=valid_to)
    return root, intermediate


# Responses, as an authenticator and a browser make them ------------------------------------


@dataclass
class Made:
    credential: dict[str, Any]
    key: ec.EllipticCurvePrivateKey
    credential_id: bytes


Statement = Callable[[bytes, bytes, bytes, ec.EllipticCurvePrivateKey, bytes], dict[str, Any]]


def client_data(kind: str, challenge: str, origin: str, **extra: Any) -> bytes:
    return json.dumps({"type": kind, "challenge": challenge, "origin": origin, **extra}).encode()


def make_registration(
    options: dict[str, Any],
    origin: str,
    fmt: str,
    statement: Statement,
    aaguid: bytes = AAGUID,
    credential_id: bytes | None = None,
) -> Made:
    """`statement(auth_data, client_data_hash, credential_id, credential_key, cose_key)`
    gives attStmt."""
    key = ec.generate_private_key(ec.SECP256R1())
    credential_id = credential_id or secrets.token_bytes(32)
    cose = ES256.from_cryptography_key(key.public_key())
    flags = AuthenticatorData.FLAG
    auth_data = bytes(
        AuthenticatorData.create(
            hashlib.sha256(options["rp"]["id"].encode()).digest(),
            flags.UP | flags.UV | flags.AT,
            0,
            AttestedCredentialData.create(aaguid, credential_id, cose),
        )
    )
    data = client_data("webauthn.create", options["challenge"], origin)
    hashed = hashlib.sha256(data).digest()
    attestation = {
        "fmt": fmt,
        "attStmt": statement(auth_data, hashed, credential_id, key, cbor.encode(cose)),
        "authData": auth_data,
    }
    credential = {
        "id": b64url(credential_id),
        "rawId": b64url(credential_id),
        "type": "public-key",
        "response": {
            "clientDataJSON": b64url(data),
            "attestationObject": b64url(cbor.encode(attestation)),
        },
    }
    return Made(credential, key, credential_id)


def make_assertion(made: Made, options: dict[str, Any], origin: str) -> dict[str, Any]:
    flags = AuthenticatorData.FLAG
    rp_hash = hashlib.sha256(options["rpId"].encode()).digest()
    auth_data = bytes(AuthenticatorData.create(rp_hash, flags.UP | flags.UV, 0))
    data = client_data("webauthn.get", options["challenge"], origin)
    signature = made.key.sign(auth_data + hashlib.sha256(data).digest(), ec.ECDSA(hashes.SHA256()))
    return {
        "id": b64url(made.credential_id),
        "rawId": b64url(made.credential_id),
        "type": "public-key",
        "response": {
            "clientDataJSON": b64url(data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        },
    }


def tpm_statement(ca: Issued, manufacturer: str = UNLISTED_TPM_MANUFACTURER) -> Statement:
    """A TPM 2.0 attestation: pubArea describes the credential key, certInfo certifies its
    name and carries the hash of what is attested, an AIK certificate from `ca` signs it."""
    tcg = x509.ObjectIdentifier

    def statement(
        auth_data: bytes, hashed: bytes, _id: bytes, key: ec.EllipticCurvePrivateKey, _c: bytes
    ) -> dict[str, Any]:
        numbers = key.public_key().public_numbers()
        x, y = numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")
        pub_area = (
            b"\x00\x23"  # TPM_ALG_ECC
            + b"\x00\x0b"  # nameAlg SHA-256
            + (0x00060472).to_bytes(4, "big")  # objectAttributes
            + b"\x00\x00"  # no authPolicy
            + b"\x00\x10\x00\x18\x00\x03\x00\x10"  # symmetric NULL, ECDSA, NIST P-256, kdf NULL
            + len(x).to_bytes(2, "big") + x + len(y).to_bytes(2, "big") + y
        )  # fmt: skip
        name = b"\x00\x0b" + hashlib.sha256(pub_area).digest()
        extra = hashlib.sha256(auth_data + hashed).digest()
        cert_info = (
            (0xFF544347).to_bytes(4, "big")  # TPM_GENERATED_VALUE
            + b"\x80\x17"  # TPM_ST_ATTEST_CERTIFY
            + b"\x00\x00"  # qualifiedSigner
            + len(extra).to_bytes(2, "big") + extra
            + bytes(17)  # clockInfo
            + bytes(8)  # firmwareVersion
            + len(name).to_bytes(2, "big") + name
            + b"\x00\x00"  # qualifiedName
        )  # fmt: skip
        tpm = x509.Name(
            [
                x509.NameAttribute(tcg("2.23.133.2.1"), manufacturer),
                x509.NameAttribute(tcg("2.23.133.2.2"), "Passgate vTPM"),
                x509.NameAttribute(tcg("2.23.133.2.3"), "id:00010000"),
            ]
        )
        aik = issue(
            x509.Name([]),
            ca,
            ca=False,
            extensions=[
                (x509.SubjectAlternativeName([x509.DirectoryName(tpm)]), True),
                (x509.ExtendedKeyUsage([tcg("2.23.133.8.3")]), False),
            ],
        )
        signature = aik.key.sign(cert_info, ec.ECDSA(hashes.SHA256()))
        return {
            "ver": "2.0",
            "alg": -7,
            "x5c": [aik.der, ca.der],
            "sig": signature,
            "certInfo": cert_info,
            "pubArea": pub_area,
        }

    return statement


def u2f_statement(ca: Issued) -> Statement:
    def statement(
        _auth: bytes,
        hashed: bytes,
        credential_id: bytes,
        key: ec.EllipticCurvePrivateKey,
        _c: bytes,
    ) -> dict[str, Any]:
        numbers = key.public_key().public_numbers()
        point = b"\x04" + numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
        batch = issue(named("U2F batch"), ca, ca=False)
        rp_hash = hashlib.sha256(b"localhost").digest()
        signed = b"\x00" + rp_hash + hashed + credential_id + point
        return {"sig": batch.key.sign(signed, ec.ECDSA(hashes.SHA256())), "x5c": [batch.der]}

    return statement


def packed_statement(ca: Issued) -> Statement:
    """A security key's packed attestation: a batch certificate from `ca` signs the
    registration."""

    def statement(
        auth_data: bytes, hashed: bytes, _id: bytes, _k: ec.EllipticCurvePrivateKey, _c: bytes
    ) -> dict[str, Any]:
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Passgate tests"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Authenticator Attestation"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Key batch"),
            ]
        )
        batch = issue(subject, ca, ca=False)
        signature = batch.key.sign(auth_data + hashed, ec.ECDSA(hashes.SHA256()))
        return {"alg": -7, "sig": signature, "x5c": [batch.der, ca.der]}

    return statement


def safetynet_statement(
    ca: Issued,
    *,
    hostname: str = "attest.android.com",
    cts_profile_match: bool = True,
    made_at: datetime.datetime | None = None,
) -> Statement:
    """What Google's SafetyNet service answered: a JWS (RS256) whose x5c leaf was issued to
    attest.android.com, its nonce the base64 SHA-256 of authData || clientDataHash."""

    def statement(
        auth_data: bytes, hashed: bytes, _id: bytes, _k: ec.EllipticCurvePrivateKey, _c: bytes
    ) -> dict[str, Any]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(named(hostname))
            .issuer_name(ca.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(EPOCH)
            .not_valid_after(END)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .sign(ca.key, hashes.SHA256())
        )
        moment = made_at or datetime.datetime.now(datetime.UTC)
        chain = [leaf.public_bytes(Encoding.DER), ca.der]
        header = {"alg": "RS256", "x5c": [base64.b64encode(der) for der in chain]}
        payload = {
            "nonce": base64.b64encode(hashlib.sha256(auth_data + hashed).digest()).decode(),
            "timestampMs": int(moment.timestamp() * 1000),
            "apkPackageName": "com.google.android.gms",
            "ctsProfileMatch": cts_profile_match,
            "basicIntegrity": True,
        }
        signing_input = ".".join(
            b64url(json.dumps(part, default=bytes.decode).encode()) for part in (header, payload)
        )
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        jws = f"{signing_input}.{b64url(signature)}"
        return {"ver": "214815028", "response": jws.encode()}

    return statement


# Through the real server -------------------------------------------------------------------


def configure(server: LiveServer, tenant: Tenant, **changes: Any) -> None:
    async def work(db: Db) -> None:
        row = await tenants.get_tenant(db, tenant.id)
        await passkey_policy.update_settings(db, row, changes)

    server.run(work)


def stored(server: LiveServer, credential_id: bytes) -> Any:
    async def work(db: Db) -> Any:
        query = select(PasskeyCredential).where(
            PasskeyCredential.credential_id == b64url(credential_id)
        )
        return (await db.execute(query)).one()

    return server.run(work)


def register_and_sign_in(ceremony: Ceremony, user_id: str, fmt: str, statement: Statement) -> Made:
    token, challenge_id, options = ceremony.registration_options(user_id)
    made = make_registration(options, "https://localhost", fmt, statement)
    added = ceremony.add(token, challenge_id, made.credential)
    assert added.status_code == 200, added.text
    challenge_id, options = ceremony.authentication_options()
    verified = ceremony.verify(challenge_id, make_assertion(made, options, "https://localhost"))
    assert verified.status_code == 200, verified.text
    assert verified.json()["userId"] == user_id
    return made


def test_tpm_from_a_manufacturer_no_list_knows(
    server: LiveServer, tenant: Tenant, ceremony: Ceremony
) -> None:
    root, intermediate = make_pki(valid_to=datetime.datetime.now(datetime.UTC) + 30 * DAY)
    unanchored = register_and_sign_in(ceremony, "tpm-1", "tpm", tpm_statement(intermediate))
    row = stored(server, unanchored.credential_id)
    assert (row.attestation_format, row.attestation_verified) == ("tpm", False)
    assert row.public_key_algorithm == -7

    configure(server, tenant, attestationRoots={"tpm": [root.pem]})
    anchored = register_and_sign_in(ceremony, "tpm-2", "tpm", tpm_statement(intermediate))
    assert stored(server, anchored.credential_id).attestation_verified is True

    # A TPM whose root is not configured: registered, unverified, unless the tenant requires
    # trusted attestation.
    _stranger_root, stranger = make_pki()
    untrusted = register_and_sign_in(ceremony, "tpm-3", "tpm", tpm_statement(stranger))
    assert stored(server, untrusted.credential_id).attestation_verified is False
    configure(server, tenant, attestation="direct", requireTrustedAttestation=True)
    token, challenge_id, options = ceremony.registration_options("tpm-4")
    made = make_registration(options, "https://localhost", "tpm", tpm_statement(stranger))
    refused = ceremony.add(token, challenge_id, made.credential)
    assert_error(refused, 400, "verification_failed")
    assert "trusted root" in refused.json()["errorDescription"]
    anchored = register_and_sign_in(ceremony, "tpm-5", "tpm", tpm_statement(intermediate))
    assert stored(server, anchored.credential_id).attestation_verified is True


def test_fido_u2f_needs_no_zero_aaguid(
    server: LiveServer, tenant: Tenant, ceremony: Ceremony
) -> None:
    _root, intermediate = make_pki(valid_to=datetime.datetime.now(datetime.UTC) + 30 * DAY)
    configure(server, tenant, attestationRoots={"fido-u2f": [intermediate.pem]})
    made = register_and_sign_in(ceremony, "u2f", "fido-u2f", u2f_statement(intermediate))
    row = stored(server, made.credential_id)
    assert (row.attestation_format, row.attestation_verified) == ("fido-u2f", True)
    assert row.aaguid == "01020304-0506-0708-090a-0b0c0d0e0f10"


def test_browsers_and_security_keys_register_unless_trust_is_required(
    server: LiveServer, tenant: Tenant, ceremony: Ceremony, tmp_path: Path
) -> None:
    """What a browser sends when attestation 'none' is asked for, packed self attestation,
    and a security key whose root is not configured all register, recorded unverified, even
    with roots configured for the format. Only a tenant that configured roots and requires
    trusted attestation refuses them."""
    device = SoftwareAuthenticator(tmp_path / "device.bin")  # packed self attestation
    key_root, key_ca = make_pki()
    _stranger_root, stranger_ca = make_pki()

    def add(user_id: str, kind: str) -> Any:
        token, challenge_id, options = ceremony.registration_options(user_id)
        if kind == "browser":
            credential = without_attestation(device.create(options))
        elif kind == "self":
            credential = device.create(options)
        else:
            ca = key_ca if kind == "configured key" else stranger_ca
            made = make_registration(options, "https://localhost", "packed", packed_statement(ca))
            credential = made.credential
        return ceremony.add(token, challenge_id, credential)

    kinds = ["browser", "self", "stranger key", "configured key"]
    for configured in (False, True):
        if configured:
            configure(server, tenant, attestationRoots={"packed": [key_root.pem]})
        for kind in kinds:
            added = add(f"u-{kind}-{configured}", kind)
            assert added.status_code == 200, added.text
            row = stored(server, b64decode_any(added.json()["credentialId"]))
            expected = "none" if kind == "browser" else "packed"
            assert row.attestation_format == expected
            assert row.attestation_verified is (configured and kind == "configured key")

    configure(server, tenant, attestation="direct", requireTrustedAttestation=True)
    for kind in kinds[:3]:
        assert_error(add(f"u-{kind}-required", kind), 400, "verification_failed")
    added = add("u-key-required", "configured key")
    assert added.status_code == 200, added.text
    assert stored(server, b64decode_any(added.json()["credentialId"])).attestation_verified


def test_requiring_trusted_attestation_needs_direct_attestation(
    server: LiveServer, tenant: Tenant
) -> None:
    with pytest.raises(InvalidRequest, match="requireTrustedAttestation needs attestation"):
        configure(server, tenant, requireTrustedAttestation=True)
    configure(server, tenant, attestation="direct", requireTrustedAttestation=True)
    with pytest.raises(InvalidRequest, match="requireTrustedAttestation needs attestation"):
        configure(server, tenant, attestation="none")


def test_the_command_requires_trusted_attestation(
    server: LiveServer, tenant: Tenant, ceremony: Ceremony, tmp_path: Path
) -> None:
    device = SoftwareAuthenticator(tmp_path / "device.bin")
    for number, (flag, status) in enumerate(
        [("--require-trusted-attestation", 400), ("--accept-untrusted-attestation", 200)]
    ):
        result = passgate(
            "tenant", "webauthn", tenant.id, flag,
            "--database-url", server.database_url, "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["requireTrustedAttestation"] is (status == 400)
        tenants.forget(tenant.id)  # the server (this process) would see it within seconds
        token, challenge_id, options = ceremony.registration_options(f"u-command-{number}")
        assert options["attestation"] == "direct"
        added = ceremony.add(token, challenge_id, device.create(options))
        assert added.status_code == status, added.text


def test_android_safetynet_through_the_server(
    server: LiveServer, tenant: Tenant, ceremony: Ceremony
) -> None:
    """A SafetyNet statement from a test CA configured as the tenant's android-safetynet
    root registers verified and signs in; a device that fails its profile, a certificate
    issued to another host, or a response made long ago is refused."""
    root, intermediate = make_pki()
    configure(
        server,
        tenant,
        attestation="direct",
        requireTrustedAttestation=True,
        attestationRoots={"android-safetynet": [root.pem]},
    )
    made = register_and_sign_in(
        ceremony, "u-safetynet", "android-safetynet", safetynet_statement(intermediate)
    )
    row = stored(server, made.credential_id)
    assert (row.attestation_format, row.attestation_verified) == ("android-safetynet", True)

    an_hour_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    refusals = {
        "compatibility profile": safetynet_statement(intermediate, cts_profile_match=False),
        "not issued to attest.android.com": safetynet_statement(
            intermediate, hostname="attest.example.com"
        ),
        "timestampMs": safetynet_statement(intermediate, made_at=an_hour_ago),
    }
    for number, (reason, statement) in enumerate(refusals.items()):
        token, challenge_id, options = ceremony.registration_options(f"u-safetynet-{number}")
        bad = make_registration(options, "https://localhost", "android-safetynet", statement)
        refused = ceremony.add(token, challenge_id, bad.credential)
        assert_error(refused, 400, "verification_failed")
        assert reason in refused.json()["errorDescription"]


# The stated clock --------------------------------------------------------------------------


def localhost_policy(roots: dict[str, list[bytes]], trusted_only: bool = False) -> PasskeyPolicy:
    return PasskeyPolicy(
        rp_id="localhost",
        rp_name="Attestation",
        expected_origins=("https://localhost",),
        user_verification_required=False,
        attestation="direct" if trusted_only else "none",
        require_trusted_attestation=trusted_only,
        attestation_roots=roots,
        authenticator_attachment=None,
        resident_key_required=False,
        max_passkeys_per_user=10,
        ios_apps=(),
        android_apps=(),
    )


def test_a_chain_is_valid_only_inside_its_dates() -> None:
    """The intermediate expires a day after NOW: verified as of NOW, refused a week later
    and before its start. Nothing about the chain check is switched off."""
    root, intermediate = make_pki(valid_to=NOW + DAY)
    challenge = b"c" * 32
    options = {"rp": {"id": "localhost"}, "challenge": b64url(challenge)}
    made = make_registration(options, "https://localhost", "tpm", tpm_statement(intermediate))
    roots = {"tpm": [root.certificate.public_bytes(Encoding.PEM)]}

    def verify(now: datetime.datetime, trusted_only: bool = False) -> relying_party.VerifiedPasskey:
        return relying_party.verify_registration(
            localhost_policy(roots, trusted_only=trusted_only),
            made.credential,
            expected_challenge=challenge,
            now=now,
        )

    assert verify(NOW).attestation_verified is True
    for outside in (NOW + 7 * DAY, EPOCH - DAY):
        assert verify(outside).attestation_verified is False
        with pytest.raises(CeremonyRefused, match="not valid at validation time") as refused:
            verify(outside, trusted_only=True)
        assert refused.value.error_code == "verification_failed"


def test_a_tpm_aik_certificate_must_name_its_tpm() -> None:
    _root, intermediate = make_pki()
    challenge = b"d" * 32
    options = {"rp": {"id": "localhost"}, "challenge": b64url(challenge)}
    nameless = tpm_statement(intermediate, manufacturer=" ")
    made = make_registration(options, "https://localhost", "tpm", nameless)
    with pytest.raises(CeremonyRefused, match="manufacturer, model and version"):
        relying_party.verify_registration(
            localhost_policy({}), made.credential, expected_challenge=challenge, now=NOW
        )


# topOrigin ---------------------------------------------------------------------------------


def without_attestation(credential: dict[str, Any]) -> dict[str, Any]:
    """A "none" attestation, as browsers send by default: nothing signs clientDataJSON at
    registration, so its fields can be set as a browser would set them."""
    raw = base64.urlsafe_b64decode(credential["response"]["attestationObject"] + "==")
    auth_data = cast(dict[str, Any], cbor.decode(raw))["authData"]
    none = cbor.encode({"fmt": "none", "attStmt": {}, "authData": auth_data})
    return {**credential, "response": {**credential["response"], "attestationObject": b64url(none)}}


def test_top_origin_is_checked_not_only_cross_origin(server: LiveServer, tmp_path: Path) -> None:
    """Only Passgate's own page, framed (crossOrigin true) by one of the tenant's origins
    (topOrigin), may run a ceremony in an iframe; a topOrigin without crossOrigin, or a
    crossOrigin that is not a boolean, is refused."""
    app = "https://shop.localhost"
    tenant = server.create_tenant(origins=[app])
    client = AuthsignalClient(api_secret_key=tenant.secret_key, api_url=server.api_url)
    flow = Ceremony(server.api_url, tenant.id, client)
    hosted = SoftwareAuthenticator(tmp_path / "hosted.bin", origin=server.public_url)
    shop = SoftwareAuthenticator(tmp_path / "shop.bin", origin=app)
    cases: list[tuple[SoftwareAuthenticator, dict[str, Any], int]] = [
        (hosted, {"crossOrigin": True, "topOrigin": app}, 200),
        (hosted, {"crossOrigin": False, "topOrigin": app}, 400),
        (hosted, {"topOrigin": app}, 400),
        (hosted, {"crossOrigin": "true", "topOrigin": app}, 400),
        (hosted, {"crossOrigin": True, "topOrigin": [app]}, 400),
        (shop, {"crossOrigin": "true"}, 400),
        (shop, {"crossOrigin": True, "topOrigin": "https://evil.example"}, 400),
    ]
    for number, (device, changes, status) in enumerate(cases):
        token, challenge_id, options = flow.registration_options(f"u-top-{number}")
        credential = with_client_data(without_attestation(device.create(options)), **changes)
        response = flow.add(token, challenge_id, credential)
        if status == 200:
            assert response.status_code == 200, (changes, response.text)
        else:
            assert_error(response, 400, "cross_origin_refused")
    flow.close()
    client.session.close()
