"""What every attestation format shares: the statement being checked, the refusal, and the
certificate chain walk, made against a stated time (`now`) with `cryptography.x509.verification`.

py_webauthn walks chains with pyOpenSSL against the wall clock and offers no way to state the
time, so a chain cannot be checked as of a given moment there (docs/passkeys.md#attestation).

Trust in the chain is the relying party's policy, not part of the statement's validity: a
chain that does not reach a root (unknown root, expired or not yet valid certificates) makes
the passkey unverified, and refuses the registration only when the tenant requires trusted
attestation (`Statement.require_trust`). A wrong signature or structure is always refused."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from webauthn.helpers.structs import AuthenticatorData

from passgate.server.services.cose_algorithms import CredentialKey

log = logging.getLogger(__name__)

AAGUID_EXTENSION = x509.ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4")
MAX_CHAIN_DEPTH = 8


class AttestationRefused(ValueError):
    """An attestation statement that does not verify; the message says which check failed."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Statement:
    """One registration's attestation, as every format verifier reads it."""

    fmt: str
    statement: Mapping[str, Any]
    auth_data: bytes
    parsed: AuthenticatorData
    client_data_hash: bytes
    credential: CredentialKey
    # Trust anchors for this format: the tenant's, plus any Passgate ships for it.
    anchors: Sequence[x509.Certificate]
    now: datetime
    # The tenant accepts only attestations whose chain verifies to one of `anchors`.
    require_trust: bool = False

    @property
    def signed_data(self) -> bytes:
        return self.auth_data + self.client_data_hash

    @property
    def aaguid(self) -> bytes:
        attested = self.parsed.attested_credential_data
        assert attested is not None  # checked before any format runs
        return attested.aaguid

    def field(self, name: str, kind: type) -> Any:
        value = self.statement.get(name)
        if not isinstance(value, kind) or (kind is not int and not value):
            raise AttestationRefused(f"attStmt.{name} is missing or malformed ({self.fmt})")
        return value

    def certificates(self) -> list[x509.Certificate]:
        """`x5c`, parsed: leaf first."""
        x5c = self.field("x5c", list)
        try:
            return [x509.load_der_x509_certificate(bytes(der)) for der in x5c]
        except (ValueError, TypeError) as exc:
            raise AttestationRefused(f"attStmt.x5c holds a bad certificate ({self.fmt})") from exc


def load_anchors(pems: Sequence[bytes]) -> list[x509.Certificate]:
    return [certificate for pem in pems for certificate in _load_pem(bytes(pem))]


@functools.lru_cache(maxsize=256)
def _load_pem(pem: bytes) -> tuple[x509.Certificate, ...]:
    return tuple(x509.load_pem_x509_certificates(pem))


def trust_path(statement: Statement, chain: Sequence[x509.Certificate]) -> bool:
    """True when `chain` (leaf first; it may or may not end with the root) leads to one of
    the statement's anchors, every certificate valid at `statement.now`. Otherwise False
    (unverified), or refused when the tenant requires trusted attestation."""
    if not statement.anchors:
        return False
    verifier = (
        PolicyBuilder()
        .store(Store(list(statement.anchors)))
        .time(_aware(statement.now))
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_LEAF_POLICY)
        .build_client_verifier()
    )
    try:
        verifier.verify(chain[0], list(chain[1:]))
    except VerificationError as exc:
        problem = (
            f"the attestation certificate chain does not verify to a trusted root at "
            f"{_aware(statement.now).isoformat()}: {exc} ({statement.fmt})"
        )
        if statement.require_trust:
            raise AttestationRefused(problem) from exc
        log.info("attestation recorded as unverified: %s", problem)
        return False
    return True


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def _must_be_ca(_policy: Policy, _certificate: x509.Certificate, value: Any) -> None:
    if not value.ca:
        raise ValueError("an issuing certificate must be a CA")


def _may_sign_certificates(_policy: Policy, _certificate: x509.Certificate, value: Any) -> None:
    if value is not None and not value.key_cert_sign:
        raise ValueError("an issuing certificate's key usage must allow keyCertSign")


# Attestation chains are not Web PKI chains (TPM AIK certificates have an empty subject and
# critical policies; vendors' CAs lack Web PKI extensions), so only what issuing needs is
# demanded of CAs, and the leaf's format-specific checks are the verifiers' job.
_CA_POLICY = (
    ExtensionPolicy.permit_all()
    .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, _must_be_ca)
    .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _may_sign_certificates)
    .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
    .may_be_present(x509.CertificatePolicies, Criticality.AGNOSTIC, None)
)
_LEAF_POLICY = (
    ExtensionPolicy.permit_all()
    .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    .may_be_present(x509.CertificatePolicies, Criticality.AGNOSTIC, None)
    .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
    .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, None)
    .may_be_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
)


def same_key(certificate: x509.Certificate, credential: CredentialKey) -> bool:
    """Whether the certificate certifies the credential's own public key."""
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return certificate.public_key().public_bytes(*spki) == credential.public_key.public_bytes(*spki)


def check_aaguid_extension(statement: Statement, certificate: x509.Certificate) -> None:
    """A certificate that names an AAGUID (id-fido-gen-ce-aaguid) must name this one."""
    try:
        extension = certificate.extensions.get_extension_for_oid(AAGUID_EXTENSION)
    except x509.ExtensionNotFound:
        return
    value = extension.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    # DER OCTET STRING of 16 bytes: 04 10 <aaguid>.
    if extension.critical or raw[:2] != b"\x04\x10" or len(raw) != 18:
        raise AttestationRefused(
            f"the certificate's AAGUID extension is malformed ({statement.fmt})"
        )
    if raw[2:] != statement.aaguid:
        raise AttestationRefused(
            "The attestation certificate names another AAGUID than the authenticator data."
        )
