"""The `android-safetynet` attestation format (WebAuthn L2, section 8.5).

Google has switched the SafetyNet Attestation API off, so devices no longer make new ones,
but it is still a valid format: passkeys registered with it exist and their responses are
replayed by outside checks. The statement is verified as the spec and SafetyNet's own rules
say: `response` is a JWS signed (RS256) by the leaf of its `x5c` header, issued to the host
attest.android.com; its `nonce` is the base64 SHA-256 of authenticatorData || clientDataHash;
`ctsProfileMatch` is true; `timestampMs` is close to the stated `now`. The chain goes to
the shared verifier, anchored at GlobalSign's root (shipped) and the tenant's configured
android-safetynet roots."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import NameOID

from passgate.server.services import cose_algorithms
from passgate.server.services.attestation_trust import AttestationRefused, Statement, trust_path

HOSTNAME = "attest.android.com"
RS256 = -257
# A SafetyNet response is made during the ceremony: it may be as old as a challenge lives
# (5 minutes) plus clock skew between Google and us, and at most the skew in the future.
CLOCK_SKEW = timedelta(minutes=1)
MAX_AGE = timedelta(minutes=5) + CLOCK_SKEW
MAX_CHAIN = 8


def verify(statement: Statement) -> bool:
    statement.field("ver", str)  # reserved by the spec: present, any version
    header, payload, signing_input, signature = _jws(statement.field("response", bytes))
    if header.get("alg") != "RS256":
        raise AttestationRefused("A SafetyNet response must be signed with RS256.")
    chain = _certificates(header.get("x5c"))
    leaf = chain[0]
    try:
        cose_algorithms.verify(leaf.public_key(), RS256, signature, signing_input)
    except (InvalidSignature, UnsupportedAlgorithm, ValueError) as exc:
        raise AttestationRefused("The SafetyNet response's signature does not verify.") from exc
    expected = base64.b64encode(hashlib.sha256(statement.signed_data).digest()).decode()
    nonce = payload.get("nonce")
    if not isinstance(nonce, str) or not hmac.compare_digest(nonce, expected):
        raise AttestationRefused("The SafetyNet response was made for another registration.")
    if payload.get("ctsProfileMatch") is not True:
        raise AttestationRefused("SafetyNet says the device fails its compatibility profile.")
    _check_timestamp(payload.get("timestampMs"), statement.now)
    if not _issued_to(leaf, HOSTNAME):
        raise AttestationRefused(f"The SafetyNet certificate is not issued to {HOSTNAME}.")
    return trust_path(statement, chain)


def _jws(response: bytes) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, payload, the signed input and the signature of a compact JWS."""
    try:
        parts = response.decode("ascii").split(".")
        if len(parts) != 3:
            raise ValueError("not three parts")
        header, payload = (json.loads(_b64url(part)) for part in parts[:2])
        signature = _b64url(parts[2])
    except (ValueError, RecursionError) as exc:  # bad ASCII, base64 or JSON, or too deep
        raise AttestationRefused("The SafetyNet response is not a compact JWS.") from exc
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise AttestationRefused("The SafetyNet response's header and payload must be objects.")
    return header, payload, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _certificates(x5c: Any) -> list[x509.Certificate]:
    """The JWS header's x5c: standard base64 DER certificates, leaf first (RFC 7515)."""
    if not isinstance(x5c, list) or not x5c or len(x5c) > MAX_CHAIN:
        raise AttestationRefused("The SafetyNet response's header needs x5c certificates.")
    try:
        return [x509.load_der_x509_certificate(base64.b64decode(der, validate=True)) for der in x5c]
    except (TypeError, ValueError, binascii.Error) as exc:
        raise AttestationRefused("The SafetyNet response's x5c holds a bad certificate.") from exc


def _check_timestamp(timestamp_ms: Any, now: datetime) -> None:
    if not isinstance(timestamp_ms, int) or isinstance(timestamp_ms, bool):
        raise AttestationRefused("The SafetyNet response has no timestampMs.")
    try:
        made = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise AttestationRefused("The SafetyNet response's timestampMs is out of range.") from exc
    moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    if not moment - MAX_AGE <= made <= moment + CLOCK_SKEW:
        raise AttestationRefused(
            f"The SafetyNet response was made at {made.isoformat()}, too far from "
            f"{moment.isoformat()} (timestampMs)."
        )


def _issued_to(certificate: x509.Certificate, hostname: str) -> bool:
    """SSL hostname matching, as SafetyNet's documentation asks: the subject alternative
    name's DNS names, or the common name when the certificate has none."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        dns = names.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns = [
            str(attribute.value)
            for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ]
    return any(name.lower() == hostname for name in dns)
