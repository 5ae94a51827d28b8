"""The `android-key` attestation format.

Devices with remotely provisioned keys end x5c at an intermediate and leave out Google's
root, so the chain is built from x5c towards the trust anchors (Google's hardware
attestation roots and the tenant's configured android-key roots) wherever it ends, instead
of trusting x5c's last certificate as the root. The key description is read with
py_webauthn's ASN.1 definition."""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from pyasn1.codec.ber.decoder import decode as ber_decode  # type: ignore[import-untyped]
from pyasn1.error import PyAsn1Error  # type: ignore[import-untyped]
from webauthn.helpers.asn1.android_key import KeyDescription, KeyOrigin, KeyPurpose

from passgate.server.services import cose_algorithms
from passgate.server.services.attestation_trust import (
    AttestationRefused,
    Statement,
    same_key,
    trust_path,
)

KEY_DESCRIPTION = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.1.17")


def verify(statement: Statement) -> bool:
    algorithm = statement.field("alg", int)
    chain = statement.certificates()
    leaf = chain[0]
    try:
        cose_algorithms.verify(
            leaf.public_key(), algorithm, statement.field("sig", bytes), statement.signed_data
        )
    except InvalidSignature as exc:
        raise AttestationRefused("The android-key attestation signature does not verify.") from exc
    if not same_key(leaf, statement.credential):
        raise AttestationRefused("The android-key attestation certifies another key.")
    description = _key_description(leaf)
    if bytes(description["attestationChallenge"]) != statement.client_data_hash:
        raise AttestationRefused("The android-key attestation was made for another challenge.")
    tee, software = description["teeEnforced"], description["softwareEnforced"]
    if tee["allApplications"].hasValue() or software["allApplications"].hasValue():
        raise AttestationRefused("An android-key credential must be bound to its app.")
    # Only keys the trusted execution environment generated for signing, and nothing else.
    if not tee["origin"].hasValue() or int(tee["origin"]) != KeyOrigin.GENERATED.value:
        raise AttestationRefused("The android-key credential was not generated in the TEE.")
    purposes = [int(value) for value in tee["purpose"]] if tee["purpose"].hasValue() else []
    if purposes != [KeyPurpose.SIGN.value]:
        raise AttestationRefused("The android-key credential may do more than sign.")
    return trust_path(statement, chain)


def _key_description(leaf: x509.Certificate) -> Any:
    try:
        extension = leaf.extensions.get_extension_for_oid(KEY_DESCRIPTION).value
    except x509.ExtensionNotFound as exc:
        raise AttestationRefused("The android-key certificate has no key description.") from exc
    raw = extension.value if isinstance(extension, x509.UnrecognizedExtension) else b""
    try:
        description, rest = ber_decode(raw, asn1Spec=KeyDescription())
    except PyAsn1Error as exc:
        raise AttestationRefused("The android-key key description is malformed.") from exc
    if rest:
        raise AttestationRefused("The android-key key description has trailing bytes.")
    return description
