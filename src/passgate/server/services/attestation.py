"""Attestation statements, verified as the WebAuthn spec defines each format, with the chain
checked against a stated time (docs/passkeys.md#attestation).

Our own code rather than py_webauthn's format verifiers, which demand an all-zero AAGUID for
fido-u2f, accept only listed TPM manufacturers, assume android-key's x5c ends with its root,
and check certificate dates against the wall clock only. The result says whether the chain
was verified to a trust anchor: the tenant's configured roots for the format, or the ones
Passgate ships (Apple's, Google's hardware attestation roots, GlobalSign's for SafetyNet).

A statement whose signature or structure is wrong is always refused. A chain that reaches
no anchor leaves the passkey unverified; only a tenant that requires trusted attestation
refuses it, and then also refuses statements with no chain at all (`none`, self)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from webauthn.helpers.known_root_certs import (
    apple_webauthn_root_ca,
    globalsign_root_ca,
    google_hardware_attestation_root_2,
    google_hardware_attestation_root_3,
    google_hardware_attestation_root_4,
    google_hardware_attestation_root_5,
)
from webauthn.helpers.structs import AuthenticatorData

from passgate.server.services import (
    attestation_android,
    attestation_safetynet,
    attestation_tpm,
    cose_algorithms,
)
from passgate.server.services.attestation_trust import (
    AttestationRefused,
    Statement,
    check_aaguid_extension,
    load_anchors,
    same_key,
    trust_path,
)
from passgate.server.services.cose_algorithms import CredentialKey

__all__ = ["FORMATS", "AttestationRefused", "Verified", "verify"]

BUILT_IN_ROOTS: dict[str, tuple[bytes, ...]] = {
    "apple": (apple_webauthn_root_ca,),
    "android-key": (
        google_hardware_attestation_root_2,
        google_hardware_attestation_root_3,
        google_hardware_attestation_root_4,
        google_hardware_attestation_root_5,
    ),
    # SafetyNet's attest.android.com certificates: GTS, cross-signed by GlobalSign Root CA.
    "android-safetynet": (globalsign_root_ca,),
}
APPLE_NONCE_EXTENSION = x509.ObjectIdentifier("1.2.840.113635.100.8.2")
APPLE_NONCE_PREFIX = bytes.fromhex("3024a1220420")  # SEQUENCE { [1] { OCTET STRING (32) } }


@dataclass(frozen=True, slots=True)
class Verified:
    fmt: str
    # True when the certificate chain was verified to a trust anchor at the stated time.
    trust_path_verified: bool


def verify(
    *,
    fmt: str,
    statement: Mapping[str, Any],
    auth_data: bytes,
    parsed: AuthenticatorData,
    client_data_hash: bytes,
    credential: CredentialKey,
    roots: Mapping[str, Sequence[bytes]],
    now: datetime,
    require_trust: bool = False,
) -> Verified:
    """Verify one attestation statement; `AttestationRefused` says why it does not. With
    `require_trust`, a statement whose chain is not verified to an anchor is refused too."""
    verifier = FORMATS.get(fmt)
    if verifier is None:
        raise AttestationRefused(f"Unsupported attestation format {fmt!r}.")
    pems = [*BUILT_IN_ROOTS.get(fmt, ()), *roots.get(fmt, ())]
    try:
        anchors = load_anchors(pems)
    except ValueError as exc:
        raise AttestationRefused(f"A configured {fmt} attestation root is not PEM.") from exc
    checked = Statement(
        fmt=fmt,
        statement=statement,
        auth_data=auth_data,
        parsed=parsed,
        client_data_hash=client_data_hash,
        credential=credential,
        anchors=anchors,
        now=now,
        require_trust=require_trust,
    )
    try:
        verified = verifier(checked)
    except AttestationRefused:
        raise
    except (ValueError, TypeError) as exc:  # a certificate or structure that does not parse
        raise AttestationRefused(f"The {fmt} attestation statement is malformed.") from exc
    if require_trust and not verified:
        raise AttestationRefused(
            f"This relying party accepts only attestations verified to a trusted root, and "
            f"this {fmt} attestation is not (it has no certificate chain, or no root is "
            f"configured for {fmt})."
        )
    return Verified(fmt, verified)


def _none(statement: Statement) -> bool:
    if statement.statement:
        raise AttestationRefused("A none attestation must have an empty attStmt.")
    return False


def _signature(statement: Statement, key: Any, algorithm: int, signed: bytes) -> None:
    try:
        cose_algorithms.verify(key, algorithm, statement.field("sig", bytes), signed)
    except InvalidSignature as exc:
        raise AttestationRefused(
            f"The attestation signature does not verify ({statement.fmt})."
        ) from exc


def _packed(statement: Statement) -> bool:
    algorithm = statement.field("alg", int)
    if "x5c" not in statement.statement:  # self attestation: signed by the credential itself
        if algorithm != statement.credential.algorithm:
            raise AttestationRefused("A packed self attestation's alg must be the key's.")
        _signature(statement, statement.credential.public_key, algorithm, statement.signed_data)
        return False
    chain = statement.certificates()
    leaf = chain[0]
    _signature(statement, leaf.public_key(), algorithm, statement.signed_data)
    _check_packed_certificate(leaf)
    check_aaguid_extension(statement, leaf)
    return trust_path(statement, chain)


def _check_packed_certificate(leaf: x509.Certificate) -> None:
    """The attestation certificate requirements of the packed format (version 3, an
    `Authenticator Attestation` OU, not a CA)."""
    units = leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if leaf.version != x509.Version.v3 or [u.value for u in units] != ["Authenticator Attestation"]:
        raise AttestationRefused(
            "A packed attestation certificate must be version 3 with the OU "
            "'Authenticator Attestation'."
        )
    try:
        constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound as exc:
        raise AttestationRefused(
            "A packed attestation certificate needs basicConstraints."
        ) from exc
    if constraints.ca:
        raise AttestationRefused("A packed attestation certificate must not be a CA.")


def _fido_u2f(statement: Statement) -> bool:
    """The spec's fido-u2f: one P-256 certificate, a signature over the U2F registration
    data. U2F devices have no AAGUID (it reads as zero), but nothing here demands it."""
    chain = statement.certificates()
    if len(chain) != 1:
        raise AttestationRefused("A fido-u2f attestation carries exactly one certificate.")
    key = chain[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise AttestationRefused("A fido-u2f attestation certificate must have a P-256 key.")
    credential = statement.credential.public_key
    if not isinstance(credential, ec.EllipticCurvePublicKey) or not isinstance(
        credential.curve, ec.SECP256R1
    ):
        raise AttestationRefused("A fido-u2f credential must be a P-256 key.")
    attested = statement.parsed.attested_credential_data
    assert attested is not None
    numbers = credential.public_numbers()
    point = b"\x04" + numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
    signed = b"\x00" + statement.parsed.rp_id_hash + statement.client_data_hash
    _signature(statement, key, -7, signed + attested.credential_id + point)
    return trust_path(statement, chain)


def _apple(statement: Statement) -> bool:
    chain = statement.certificates()
    leaf = chain[0]
    try:
        extension = leaf.extensions.get_extension_for_oid(APPLE_NONCE_EXTENSION).value
    except x509.ExtensionNotFound as exc:
        raise AttestationRefused("The Apple attestation certificate has no nonce.") from exc
    raw = extension.value if isinstance(extension, x509.UnrecognizedExtension) else b""
    nonce = hashlib.sha256(statement.signed_data).digest()
    if raw != APPLE_NONCE_PREFIX + nonce:
        raise AttestationRefused("The Apple attestation nonce does not match.")
    if not same_key(leaf, statement.credential):
        raise AttestationRefused("The Apple attestation certifies another key.")
    return trust_path(statement, chain)


FORMATS: dict[str, Callable[[Statement], bool]] = {
    "none": _none,
    "packed": _packed,
    "fido-u2f": _fido_u2f,
    "apple": _apple,
    "tpm": attestation_tpm.verify,
    "android-key": attestation_android.verify,
    "android-safetynet": attestation_safetynet.verify,
}
