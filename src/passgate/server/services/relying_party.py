"""The WebAuthn relying party: py_webauthn, wrapped for the gaps listed in
docs/wire.md#relying-party-checks, and for what native apps send (#webauthn-json).

Pure functions, no storage: options in, verified facts out. Checks that py_webauthn does not
make (or makes without saying which one failed) run here first, in spec order:
clientDataJSON shape and `crossOrigin`, origin, rpId hash, then py_webauthn, then the packed
AAGUID extension (registration) or the sign counter (authentication)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any, cast

from cryptography import x509
from pyasn1.codec.der import decoder as der_decoder  # type: ignore[import-untyped]
from pyasn1.error import PyAsn1Error  # type: ignore[import-untyped]
from pyasn1.type.univ import OctetString  # type: ignore[import-untyped]
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    options_to_json_dict,
    parse_attestation_object,
    parse_authenticator_data,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier as Alg
from webauthn.helpers.exceptions import (
    InvalidAttestationObjectStructure,
    InvalidAuthenticatorDataStructure,
    InvalidCBORData,
    InvalidJSONStructure,
    WebAuthnException,
)
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AttestationFormat,
    AuthenticatorAttachment,
    AuthenticatorSelectionCriteria,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from passgate.server.services.errors import InvalidRequest
from passgate.server.services.passkey_policy import PasskeyPolicy

# ES384 is never advertised: py_webauthn cannot verify it (docs/passkeys.md).
ALGORITHMS = [Alg.ECDSA_SHA_256, Alg.EDDSA, Alg.RSASSA_PKCS1_v1_5_SHA_256]
CEREMONY_TIMEOUT_MS = 300_000
AAGUID_EXTENSION = x509.ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4")
_MALFORMED = (
    InvalidJSONStructure,
    InvalidCBORData,
    InvalidAttestationObjectStructure,
    InvalidAuthenticatorDataStructure,
)


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
    sign_count: int
    aaguid: str
    attestation_format: str
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
        supported_pub_key_algs=ALGORITHMS,
    )
    return options_to_json_dict(options)


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
        return b64url(b64decode_any(raw))
    except (binascii.Error, ValueError) as exc:
        raise CeremonyRefused(
            "The credential id is not base64.", error_code="malformed_credential"
        ) from exc


def user_handle_of(credential: dict[str, Any]) -> str | None:
    """`userHandle` as a string: iOS sends the raw handle, others its base64url; for the UUID
    handles Passgate issues both read the same (docs/wire.md#user-handle)."""
    response = credential.get("response")
    handle = response.get("userHandle") if isinstance(response, dict) else None
    return handle if isinstance(handle, str) and handle else None


def verify_registration(
    policy: PasskeyPolicy, credential: dict[str, Any], *, expected_challenge: bytes
) -> VerifiedPasskey:
    normalized, client_data = _normalize(credential, "attestationObject")
    _check_client_data(policy, client_data)
    attestation = _decode_field(normalized, "attestationObject")
    try:
        parsed = parse_attestation_object(attestation)
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise _malformed(exc) from exc
    _check_rp_id(policy, parsed.auth_data.rp_id_hash)
    try:
        verified = verify_registration_response(
            credential=normalized,
            expected_challenge=expected_challenge,
            expected_rp_id=policy.rp_id,
            expected_origin=_accepted_origins(policy),
            require_user_verification=policy.user_verification_required,
            supported_pub_key_algs=ALGORITHMS,
            pem_root_certs_bytes_by_fmt={
                AttestationFormat(fmt): list(pems) for fmt, pems in policy.attestation_roots.items()
            },
        )
    except _MALFORMED as exc:
        raise _malformed(exc) from exc
    except WebAuthnException as exc:
        raise CeremonyRefused(str(exc), error_code="verification_failed") from exc
    if AttestationFormat(verified.fmt) == AttestationFormat.PACKED:
        _check_packed_aaguid(parsed.att_stmt.x5c, parsed.auth_data)
    if policy.attestation == "direct" and AttestationFormat(verified.fmt) == AttestationFormat.NONE:
        raise CeremonyRefused(
            "This relying party requires attestation.", error_code="verification_failed"
        )
    transports = normalized["response"].get("transports")
    return VerifiedPasskey(
        credential_id=b64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        aaguid=verified.aaguid,
        attestation_format=AttestationFormat(verified.fmt).value,
        device_type=CredentialDeviceType(verified.credential_device_type).value,
        backed_up=verified.credential_backed_up,
        transports=[t for t in transports if isinstance(t, str)][:8]
        if isinstance(transports, list)
        else [],
        authenticator_attachment=_attachment(normalized),
    )


def verify_assertion(
    policy: PasskeyPolicy,
    credential: dict[str, Any],
    *,
    expected_challenge: bytes,
    public_key: bytes,
    stored_sign_count: int,
) -> VerifiedAssertion:
    normalized, client_data = _normalize(credential, "authenticatorData")
    _check_client_data(policy, client_data)
    try:
        auth_data = parse_authenticator_data(_decode_field(normalized, "authenticatorData"))
    except WebAuthnException as exc:
        raise _malformed(exc) from exc
    _check_rp_id(policy, auth_data.rp_id_hash)
    normalized["response"].pop("userHandle", None)  # compared as a string by the caller
    try:
        verified = verify_authentication_response(
            credential=normalized,
            expected_challenge=expected_challenge,
            expected_rp_id=policy.rp_id,
            expected_origin=_accepted_origins(policy),
            credential_public_key=public_key,
            credential_current_sign_count=0,  # the counter rule is ours, below
            require_user_verification=policy.user_verification_required,
        )
    except _MALFORMED as exc:
        raise _malformed(exc) from exc
    except WebAuthnException as exc:
        raise CeremonyRefused(str(exc), error_code="verification_failed") from exc
    # Synced passkeys send 0 forever; a counter that was counting must keep going up.
    if stored_sign_count > 0 and verified.new_sign_count <= stored_sign_count:
        raise SignCountRegressed(stored_sign_count, verified.new_sign_count)
    return VerifiedAssertion(
        sign_count=verified.new_sign_count,
        backed_up=verified.credential_backed_up,
        device_type=CredentialDeviceType(verified.credential_device_type).value,
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


def _check_client_data(policy: PasskeyPolicy, client_data: dict[str, Any]) -> None:
    """The origin must be the tenant's (or Passgate's own hosted page). A ceremony inside a
    cross-origin iframe is refused, except Passgate's hosted page framed by one of the
    tenant's own pages (the browser SDK's popup mode): then `topOrigin` must be one of them."""
    origin = client_data.get("origin")
    if origin not in _accepted_origins(policy):
        raise CeremonyRefused(
            f"The origin {origin!r} is not one of this tenant's expected origins.",
            error_code="origin_mismatch",
        )
    top_origin = client_data.get("topOrigin")
    if client_data.get("crossOrigin") is True or top_origin is not None:
        framed_hosted_page = (
            policy.hosted_origin is not None
            and origin == policy.hosted_origin
            and top_origin in policy.web_origins
        )
        if not framed_hosted_page:
            raise CeremonyRefused(
                "Credentials made inside a cross-origin iframe are refused.",
                error_code="cross_origin_refused",
            )


def _check_rp_id(policy: PasskeyPolicy, rp_id_hash: bytes) -> None:
    if rp_id_hash != hashlib.sha256(policy.rp_id.encode()).digest():
        raise CeremonyRefused(
            f"The credential is scoped to another relying party than {policy.rp_id!r}.",
            error_code="rp_id_mismatch",
        )


def _check_packed_aaguid(x5c: list[bytes] | None, auth_data: Any) -> None:
    """A packed attestation certificate that names an AAGUID must name this one (§8.2.1)."""
    if not x5c or auth_data.attested_credential_data is None:
        return
    try:
        certificate = x509.load_der_x509_certificate(x5c[0])
        extension = certificate.extensions.get_extension_for_oid(AAGUID_EXTENSION)
    except x509.ExtensionNotFound:
        return
    except ValueError as exc:
        raise _malformed(exc) from exc
    value = cast(x509.UnrecognizedExtension, extension.value).value
    try:
        named, _rest = der_decoder.decode(value, asn1Spec=OctetString())
    except PyAsn1Error as exc:
        raise _malformed(exc) from exc
    if bytes(named) != auth_data.attested_credential_data.aaguid:
        raise CeremonyRefused(
            "The attestation certificate names another AAGUID than the authenticator data.",
            error_code="verification_failed",
        )


def _attachment(credential: dict[str, Any]) -> str | None:
    value = credential.get("authenticatorAttachment")
    return value if value in ("platform", "cross-platform") else None


def _malformed(exc: Exception) -> CeremonyRefused:
    return CeremonyRefused(f"The credential is malformed: {exc}", error_code="malformed_credential")
