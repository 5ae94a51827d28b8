"""The WebAuthn relying party (docs/wire.md#relying-party-checks, docs/passkeys.md).

Pure functions, no storage: options in, verified facts out. py_webauthn makes the options
and parses the binary structures; the checks are ours, in this order, each failure with its
own error code: clientDataJSON shape, origin, `crossOrigin`/`topOrigin`, type and challenge,
rpId hash and flags, the key's algorithm against the tenant's list, then the attestation
statement (registration, `attestation`) or the signature and sign counter (assertion).

py_webauthn's own verifiers are not used: they cannot verify ES384, cannot be given the
time certificates must be valid at, and refuse TPMs of unlisted manufacturers, fido-u2f
with a non-zero AAGUID and android-key chains without their root."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

from cryptography.exceptions import InvalidSignature
from webauthn import generate_authentication_options, generate_registration_options
from webauthn.helpers import options_to_json_dict, parse_authenticator_data, parse_cbor
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorAttachment,
    AuthenticatorData,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from passgate.server.services import attestation, cose_algorithms
from passgate.server.services.attestation_trust import AAGUID_EXTENSION, AttestationRefused
from passgate.server.services.errors import InvalidRequest
from passgate.server.services.passkey_policy import PasskeyPolicy

__all__ = [
    "AAGUID_EXTENSION",
    "CeremonyRefused",
    "SignCountRegressed",
    "VerifiedAssertion",
    "VerifiedPasskey",
    "authentication_options",
    "credential_id_of",
    "registration_options",
    "user_handle_of",
    "verify_assertion",
    "verify_registration",
]

CEREMONY_TIMEOUT_MS = 300_000
# WebAuthn's longest credential id; base64url, it fits limits.CREDENTIAL_ID (1,400 characters).
MAX_CREDENTIAL_ID_BYTES = 1023
# Transports Passgate keeps (WebAuthn's AuthenticatorTransport, and "cable", the name Chrome
# used for "hybrid"); others are dropped. At most 8 names, each at most 32 characters.
KNOWN_TRANSPORTS = frozenset({"usb", "nfc", "ble", "smart-card", "hybrid", "internal", "cable"})
MAX_TRANSPORTS = 8
MAX_TRANSPORT_LENGTH = 32


class CeremonyRefused(InvalidRequest):
    """A WebAuthn response the relying party will not accept; `error_code` says why."""


class SignCountRegressed(CeremonyRefused):
    """A correctly signed assertion whose counter went backwards: the key may be cloned."""

    def __init__(self, stored: int, received: int) -> None:
        super().__init__(
            f"The authenticator's sign counter went backwards ({received} after {stored}); "
            "the credential may have been cloned and is flagged.",
            error_code="sign_count_regressed",
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class VerifiedPasskey:
    credential_id: str
    public_key: bytes
    # The COSE algorithm of `public_key`, for PasskeyCredential.public_key_algorithm.
    public_key_algorithm: int
    sign_count: int
    aaguid: str
    attestation_format: str
    # The attestation chain was verified to a configured (or shipped) root.
    attestation_verified: bool
    device_type: str
    backed_up: bool
    transports: list[str]
    authenticator_attachment: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class VerifiedAssertion:
    sign_count: int
    backed_up: bool
    device_type: str


# Encoding ---------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64decode_any(text: str) -> bytes:
    """Standard (iOS clientDataJSON) or URL-safe base64, padded or not."""
    text = text.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def user_id_bytes(handle: str) -> bytes:
    """Options carry the user handle string itself as `user.id`: a UUID is valid base64url, so
    Android and browsers (which decode it) and iOS (which uses the raw string) return the same
    `userHandle` string (docs/wire.md#webauthn-json)."""
    return b64decode_any(handle)


# Options ----------------------------------------------------------------------------------


def registration_options(
    policy: PasskeyPolicy,
    *,
    challenge: bytes,
    user_handle: str,
    username: str,
    display_name: str,
    exclude_credential_ids: list[str],
) -> dict[str, Any]:
    selection = AuthenticatorSelectionCriteria(
        authenticator_attachment=(
            AuthenticatorAttachment(policy.authenticator_attachment)
            if policy.authenticator_attachment
            else None
        ),
        resident_key=(
            ResidentKeyRequirement.REQUIRED
            if policy.resident_key_required
            else ResidentKeyRequirement.PREFERRED
        ),
        require_resident_key=policy.resident_key_required,
        user_verification=_user_verification(policy),
    )
    options = generate_registration_options(
        rp_id=policy.rp_id,
        rp_name=policy.rp_name,
        user_id=user_id_bytes(user_handle),
        user_name=username,
        user_display_name=display_name,
        challenge=challenge,
        timeout=CEREMONY_TIMEOUT_MS,
        attestation=AttestationConveyancePreference(policy.attestation),
        authenticator_selection=selection,
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=b64decode_any(cid)) for cid in exclude_credential_ids
        ],
    )
    body = options_to_json_dict(options)
    # The tenant's algorithms, ES256 first (py_webauthn's enum has no ES384, so not through it).
    body["pubKeyCredParams"] = [{"type": "public-key", "alg": alg} for alg in policy.algorithms]
    return body


def authentication_options(
    policy: PasskeyPolicy, *, challenge: bytes, allow_credential_ids: list[str]
) -> dict[str, Any]:
    options = generate_authentication_options(
        rp_id=policy.rp_id,
        challenge=challenge,
        timeout=CEREMONY_TIMEOUT_MS,
        allow_credentials=[
            PublicKeyCredentialDescriptor(id=b64decode_any(cid)) for cid in allow_credential_ids
        ],
        user_verification=_user_verification(policy),
    )
    body = options_to_json_dict(options)
    body.setdefault("allowCredentials", [])  # required by both mobile platforms
    return body


def _user_verification(policy: PasskeyPolicy) -> UserVerificationRequirement:
    if policy.user_verification_required:
        return UserVerificationRequirement.REQUIRED
    return UserVerificationRequirement.PREFERRED


# Verification -----------------------------------------------------------------------------


def credential_id_of(credential: dict[str, Any]) -> str:
    """The credential id as stored (base64url, unpadded), whichever alphabet it came in."""
    raw = credential.get("rawId") or credential.get("id")
    if not isinstance(raw, str) or not raw:
        raise CeremonyRefused("The credential has no id.", error_code="malformed_credential")
    try:
        decoded = b64decode_any(raw)
    except (binascii.Error, ValueError) as exc:
        raise CeremonyRefused(
            "The credential id is not base64.", error_code="malformed_credential"
        ) from exc
    if len(decoded) > MAX_CREDENTIAL_ID_BYTES:
        raise CeremonyRefused(
            f"The credential id is {len(decoded)} bytes; WebAuthn allows at most "
            f"{MAX_CREDENTIAL_ID_BYTES}.",
            error_code="malformed_credential",
        )
    return b64url(decoded)


def user_handle_of(credential: dict[str, Any]) -> str | None:
    """`userHandle` as a string: iOS sends the raw handle, others its base64url; for the UUID
    handles Passgate issues both read the same (docs/wire.md#user-handle)."""
    response = credential.get("response")
    handle = response.get("userHandle") if isinstance(response, dict) else None
    return handle if isinstance(handle, str) and handle else None


def verify_registration(
    policy: PasskeyPolicy,
    credential: dict[str, Any],
    *,
    expected_challenge: bytes,
    now: datetime | None = None,
) -> VerifiedPasskey:
    """Verify a registration as of `now` (default: the current time), the moment against
    which attestation certificates must be valid."""
    normalized, client_data = _normalize(credential, "attestationObject")
    _check_client_data(policy, client_data, "webauthn.create", expected_challenge)
    raw_client_data = b64decode_any(normalized["response"]["clientDataJSON"])
    fmt, statement, auth_data = _attestation_object(_decode_field(normalized, "attestationObject"))
    parsed = _authenticator_data(policy, auth_data)
    attested = parsed.attested_credential_data
    if attested is None or not attested.credential_id:
        raise CeremonyRefused(
            "The authenticator data has no attested credential.", error_code="verification_failed"
        )
    if b64url(attested.credential_id) != normalized["id"]:
        raise CeremonyRefused(
            "The credential id is not the one the authenticator attested.",
            error_code="verification_failed",
        )
    key = _credential_key(attested.credential_public_key)
    _check_algorithm(policy, key.algorithm)
    try:
        verified = attestation.verify(
            fmt=fmt,
            statement=statement,
            auth_data=auth_data,
            parsed=parsed,
            client_data_hash=hashlib.sha256(raw_client_data).digest(),
            credential=key,
            roots=policy.attestation_roots,
            now=now or datetime.now(UTC),
            require_trust=policy.require_trusted_attestation,
        )
    except AttestationRefused as exc:
        raise CeremonyRefused(str(exc), error_code="verification_failed") from exc
    if policy.attestation == "direct" and fmt == "none":
        raise CeremonyRefused(
            "This relying party requires attestation.", error_code="verification_failed"
        )
    transports = _transports(normalized["response"].get("transports"))
    return VerifiedPasskey(
        credential_id=b64url(attested.credential_id),
        public_key=attested.credential_public_key,
        public_key_algorithm=key.algorithm,
        sign_count=parsed.sign_count,
        aaguid=str(uuid.UUID(bytes=attested.aaguid)),
        attestation_format=fmt,
        attestation_verified=verified.trust_path_verified,
        device_type=_device_type(parsed),
        backed_up=parsed.flags.bs,
        transports=transports,
        authenticator_attachment=_attachment(normalized),
    )


def _transports(value: Any) -> list[str]:
    """`response.transports` as stored: known names, in order, once each. Absent or null is
    none; anything but a list of at most 8 short strings is refused."""
    if value is None:
        return []
    if (
        not isinstance(value, list)
        or len(value) > MAX_TRANSPORTS
        or not all(isinstance(t, str) and len(t) <= MAX_TRANSPORT_LENGTH for t in value)
    ):
        raise CeremonyRefused(
            f"response.transports must be a list of at most {MAX_TRANSPORTS} strings of at "
            f"most {MAX_TRANSPORT_LENGTH} characters.",
            error_code="malformed_credential",
        )
    return list(dict.fromkeys(t for t in value if t in KNOWN_TRANSPORTS))


def verify_assertion(
    policy: PasskeyPolicy,
    credential: dict[str, Any],
    *,
    expected_challenge: bytes,
    public_key: bytes,
    stored_sign_count: int,
    public_key_algorithm: int | None = None,
) -> VerifiedAssertion:
    """Verify an assertion made with the stored `public_key`. `public_key_algorithm` is the
    algorithm recorded at registration; for older rows (None) it is read from the key. An
    algorithm the tenant no longer accepts is refused before the signature is checked."""
    normalized, client_data = _normalize(credential, "authenticatorData")
    _check_client_data(policy, client_data, "webauthn.get", expected_challenge)
    raw_client_data = b64decode_any(normalized["response"]["clientDataJSON"])
    auth_data = _decode_field(normalized, "authenticatorData")
    parsed = _authenticator_data(policy, auth_data)
    key = _credential_key(public_key)
    if public_key_algorithm is not None and public_key_algorithm != key.algorithm:
        raise CeremonyRefused(
            "The stored passkey's algorithm does not match its key.",
            error_code="verification_failed",
        )
    _check_algorithm(policy, key.algorithm)
    signature = (
        _decode_field(normalized, "signature") if "signature" in normalized["response"] else b""
    )
    try:
        cose_algorithms.verify(
            key.public_key,
            key.algorithm,
            signature,
            auth_data + hashlib.sha256(raw_client_data).digest(),
        )
    except InvalidSignature as exc:
        raise CeremonyRefused(
            "The assertion's signature does not verify.", error_code="verification_failed"
        ) from exc
    # Synced passkeys send 0 forever; a counter that was counting must keep going up.
    if stored_sign_count > 0 and parsed.sign_count <= stored_sign_count:
        raise SignCountRegressed(stored_sign_count, parsed.sign_count)
    return VerifiedAssertion(
        sign_count=parsed.sign_count,
        backed_up=parsed.flags.bs,
        device_type=_device_type(parsed),
    )


def _attestation_object(data: bytes) -> tuple[str, dict[str, Any], bytes]:
    """`fmt`, `attStmt` and the raw `authData` (signatures cover its exact bytes)."""
    try:
        decoded = parse_cbor(data)
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise _malformed(exc) from exc
    if not isinstance(decoded, dict):
        raise CeremonyRefused(
            "The attestation object is not a map.", error_code="malformed_credential"
        )
    fmt, statement, auth_data = decoded.get("fmt"), decoded.get("attStmt"), decoded.get("authData")
    if (
        not isinstance(fmt, str)
        or not isinstance(statement, dict)
        or not isinstance(auth_data, bytes)
    ):
        raise CeremonyRefused(
            "The attestation object needs fmt, attStmt and authData.",
            error_code="malformed_credential",
        )
    return fmt, statement, auth_data


def _authenticator_data(policy: PasskeyPolicy, data: bytes) -> AuthenticatorData:
    """Parsed, scoped to the tenant's rp id, with the flags the policy requires."""
    if len(data) < 37:
        raise CeremonyRefused(
            "The authenticator data is too short.", error_code="malformed_credential"
        )
    try:
        parsed = parse_authenticator_data(data)
    except (WebAuthnException, ValueError, TypeError, KeyError, IndexError) as exc:
        raise _malformed(exc) from exc
    _check_rp_id(policy, parsed.rp_id_hash)
    if not parsed.flags.up:
        raise CeremonyRefused(
            "The authenticator did not test for user presence.", error_code="verification_failed"
        )
    if policy.user_verification_required and not parsed.flags.uv:
        raise CeremonyRefused(
            "This relying party requires user verification.", error_code="verification_failed"
        )
    if parsed.flags.bs and not parsed.flags.be:
        raise CeremonyRefused(
            "A credential that cannot be backed up says it is.", error_code="verification_failed"
        )
    return parsed


def _device_type(parsed: AuthenticatorData) -> str:
    return "multi_device" if parsed.flags.be else "single_device"


def _credential_key(cose: bytes) -> cose_algorithms.CredentialKey:
    try:
        return _decoded_key(cose)
    except cose_algorithms.CoseKeyError as exc:
        raise CeremonyRefused(str(exc), error_code="verification_failed") from exc


# A stored key is parsed once per process, not at every sign-in (the key object is
# immutable; a key that does not parse is not cached and fails each time).
@lru_cache(maxsize=4096)
def _decoded_key(cose: bytes) -> cose_algorithms.CredentialKey:
    return cose_algorithms.decode_key(cose)


def _check_algorithm(policy: PasskeyPolicy, algorithm: int) -> None:
    if algorithm not in policy.algorithms:
        (name,) = cose_algorithms.names([algorithm])
        raise CeremonyRefused(
            f"This relying party does not accept {name} passkeys "
            f"(it accepts {', '.join(cose_algorithms.names(policy.algorithms))}).",
            error_code="algorithm_not_accepted",
        )


def _normalize(credential: dict[str, Any], required: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A copy in the W3C JSON form py_webauthn reads, and the parsed clientDataJSON.
    iOS sends clientDataJSON in standard base64; everything becomes base64url here."""
    response = credential.get("response")
    if not isinstance(response, dict) or not isinstance(response.get("clientDataJSON"), str):
        raise CeremonyRefused(
            "The credential has no response.clientDataJSON.", error_code="malformed_credential"
        )
    if not isinstance(response.get(required), str):
        raise CeremonyRefused(
            f"The credential has no response.{required}.", error_code="malformed_credential"
        )
    raw_client_data = _decode_field(credential, "clientDataJSON")
    try:
        client_data = json.loads(raw_client_data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CeremonyRefused(
            "clientDataJSON is not JSON.", error_code="malformed_credential"
        ) from exc
    if not isinstance(client_data, dict):
        raise CeremonyRefused("clientDataJSON is not an object.", error_code="malformed_credential")
    credential_id = credential_id_of(credential)
    binary = {
        name: b64url(_decode_field(credential, name))
        for name in (required, "signature")
        if isinstance(response.get(name), str)
    }
    normalized = {
        **credential,
        "id": credential_id,
        "rawId": credential_id,
        "type": credential.get("type") or "public-key",
        "response": {**response, **binary, "clientDataJSON": b64url(raw_client_data)},
    }
    if normalized["type"] != "public-key":
        raise CeremonyRefused(
            "The credential's type must be 'public-key'.", error_code="malformed_credential"
        )
    return normalized, client_data


def _decode_field(credential: dict[str, Any], name: str) -> bytes:
    try:
        return b64decode_any(cast(str, credential["response"][name]))
    except (binascii.Error, ValueError) as exc:
        raise CeremonyRefused(
            f"response.{name} is not base64.", error_code="malformed_credential"
        ) from exc


def _accepted_origins(policy: PasskeyPolicy) -> list[str]:
    hosted = [policy.hosted_origin] if policy.hosted_origin else []
    return [*policy.expected_origins, *hosted]


def _check_client_data(
    policy: PasskeyPolicy, client_data: dict[str, Any], ceremony: str, challenge: bytes
) -> None:
    """The origin must be the tenant's (or Passgate's own hosted page). A ceremony inside a
    cross-origin iframe is refused, except Passgate's hosted page framed by one of the
    tenant's own pages (the browser SDK's popup mode): then `crossOrigin` is true and
    `topOrigin` must be one of them (docs/wire.md#cross-origin-iframes). Then the type and
    the challenge, compared in constant time."""
    origin = client_data.get("origin")
    if origin not in _accepted_origins(policy):
        raise CeremonyRefused(
            f"The origin {origin!r} is not one of this tenant's expected origins.",
            error_code="origin_mismatch",
        )
    cross_origin, top_origin = client_data.get("crossOrigin"), client_data.get("topOrigin")
    if cross_origin is not None and not isinstance(cross_origin, bool):
        raise CeremonyRefused(
            "clientDataJSON.crossOrigin must be a boolean.", error_code="cross_origin_refused"
        )
    if cross_origin or top_origin is not None:
        framed_hosted_page = (
            cross_origin is True
            and policy.hosted_origin is not None
            and origin == policy.hosted_origin
            and isinstance(top_origin, str)
            and top_origin in policy.web_origins
        )
        if not framed_hosted_page:
            raise CeremonyRefused(
                "Credentials made inside a cross-origin iframe are refused.",
                error_code="cross_origin_refused",
            )
    if client_data.get("type") != ceremony:
        raise CeremonyRefused(
            f"clientDataJSON.type must be {ceremony!r}.", error_code="verification_failed"
        )
    received = client_data.get("challenge")
    try:
        decoded = b64decode_any(received) if isinstance(received, str) else b""
    except (binascii.Error, ValueError):
        decoded = b""
    if not hmac.compare_digest(decoded, challenge):
        raise CeremonyRefused(
            "The response was made for another challenge.", error_code="verification_failed"
        )


def _check_rp_id(policy: PasskeyPolicy, rp_id_hash: bytes) -> None:
    if rp_id_hash != hashlib.sha256(policy.rp_id.encode()).digest():
        raise CeremonyRefused(
            f"The credential is scoped to another relying party than {policy.rp_id!r}.",
            error_code="rp_id_mismatch",
        )


def _attachment(credential: dict[str, Any]) -> str | None:
    value = credential.get("authenticatorAttachment")
    return value if value in ("platform", "cross-platform") else None


def _malformed(exc: Exception) -> CeremonyRefused:
    return CeremonyRefused(f"The credential is malformed: {exc}", error_code="malformed_credential")
