"""`SoftwareAuthenticator`'s direct path: the WebAuthn client's work for the plain ceremony,
done on the JSON options and bytes themselves instead of through fido2's `Fido2Client`.

fido2's client builds and parses a dataclass for every WebAuthn and CTAP object, encodes each
command to CBOR for the device and decodes the answer, asks for getInfo, and starts a timer
thread per ceremony: most of a software ceremony's CPU, for a device that sits in the same
process. Here the device's own `make` / `assert_with` are called directly and the results are
encoded once. What comes out is what fido2's client gives for the same request, byte for byte
(clientDataJSON, attestationObject, authenticatorData, the JSON keys and their order);
tests/authenticators/test_direct_path.py holds the two paths to that.

Anything else goes through fido2 as before: the direct functions return None, without having
changed anything, for requests with extensions, options that are not plain JSON of the
expected shape, an origin the rpId does not allow, an excluded credential that is present,
no acceptable algorithm, or no credential to assert with; fido2's client then gives the result
or error it always gave."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fido2.utils import websafe_decode, websafe_encode

from passgate.authenticators._device import SoftwareCtapDevice

# What fido2's client decides for this device, whatever the request says: the device has
# built-in user verification and fido2's default `UserInteraction` allows it, so every command
# asks for uv (and user presence, by default). The device ignores rk (every credential is
# discoverable).
_OPTIONS = {"uv": True}
_USER_VERIFICATION = {None, "required", "preferred", "discouraged"}


def _cbor_head(major: int, value: int) -> bytes:
    """A CBOR initial byte and argument (RFC 8949 section 3), shortest form."""
    if value < 24:
        return bytes([major << 5 | value])
    if value < 0x100:
        return bytes([major << 5 | 24, value])
    if value < 0x10000:
        return bytes([major << 5 | 25]) + value.to_bytes(2, "big")
    return bytes([major << 5 | 26]) + value.to_bytes(4, "big")


def _cbor_int(value: int) -> bytes:
    return _cbor_head(0, value) if value >= 0 else _cbor_head(1, -1 - value)


# {"fmt": "packed", "attStmt": {"alg": <int>, "sig": <bytes>}, "authData": <bytes>}: keys in
# CTAP2 canonical order (shorter first), as fido2's AttestationObject.create encodes them.
_PACKED_HEAD = b"\xa3\x63fmt\x66packed\x67attStmt\xa2\x63alg"
_SIG = b"\x63sig"
_AUTH_DATA = b"\x68authData"


def attestation_object(auth_data: bytes, algorithm: int, signature: bytes) -> bytes:
    """A `packed` self-attestation object (WebAuthn section 8.2, no x5c)."""
    return b"".join(
        (
            _PACKED_HEAD,
            _cbor_int(algorithm),
            _SIG,
            _cbor_head(2, len(signature)),
            signature,
            _AUTH_DATA,
            _cbor_head(2, len(auth_data)),
            auth_data,
        )
    )


def client_data_json(kind: str, challenge: bytes, origin: str) -> bytes:
    """CollectedClientData as fido2 serializes it (and browsers order it)."""
    document = {
        "type": kind,
        "challenge": websafe_encode(challenge),
        "origin": origin,
        "crossOrigin": False,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def _plain_descriptors(descriptors: Any) -> list[bytes]:
    """Credential ids of a list of public-key descriptors; ValueError for anything else."""
    if descriptors is None:
        return []
    if not isinstance(descriptors, list):
        raise ValueError("not a list")
    ids = []
    for descriptor in descriptors:
        if descriptor.get("type") != "public-key" or not isinstance(descriptor.get("id"), str):
            raise ValueError("not a public-key descriptor")
        ids.append(websafe_decode(descriptor["id"]))
    return ids


def create(
    device: SoftwareCtapDevice,
    options: Mapping[str, Any],
    origin_for: Callable[[str], str],
    origin_may_use: Callable[[str, str], bool],
) -> dict[str, Any] | None:
    """navigator.credentials.create() for the plain request, or None (see the module)."""
    try:
        if options.get("extensions"):
            return None
        rp, user = options["rp"], options["user"]
        rp_id, user_name, display_name = rp["id"], user["name"], user.get("displayName")
        selection = options.get("authenticatorSelection") or {}
        params: Sequence[Mapping[str, Any]] = options["pubKeyCredParams"]
        if not (
            isinstance(rp_id, str)
            and rp_id
            and isinstance(rp.get("name"), str)
            and isinstance(user_name, str)
            and isinstance(display_name, str | None)
            and isinstance(options["challenge"], str)
            and isinstance(user["id"], str)
            and selection.get("userVerification") in _USER_VERIFICATION
            and all(p["type"] == "public-key" and type(p["alg"]) is int for p in params)
        ):
            return None
        challenge, user_id = websafe_decode(options["challenge"]), websafe_decode(user["id"])
        excluded = _plain_descriptors(options.get("excludeCredentials"))
        origin = origin_for(rp_id)
        if not origin_may_use(rp_id, origin):
            return None
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    algorithm = device.choose_algorithm([p["alg"] for p in params])
    if algorithm is None:
        return None
    client_data = client_data_json("webauthn.create", challenge, origin)
    with device.lock:
        if excluded and device.held(rp_id, excluded) is not None:
            return None
        made = device.make(
            hashlib.sha256(client_data).digest(),
            rp_id,
            user_id,
            user_name,
            display_name,
            algorithm,
            _OPTIONS,
        )
    credential_id = websafe_encode(made.credential_id)
    return {
        "id": credential_id,
        "rawId": credential_id,
        "response": {
            "clientDataJSON": websafe_encode(client_data),
            "attestationObject": websafe_encode(
                attestation_object(made.auth_data, algorithm, made.signature)
            ),
        },
        "authenticatorAttachment": "cross-platform",
        "clientExtensionResults": {},
        "type": "public-key",
    }


def get(
    device: SoftwareCtapDevice,
    options: Mapping[str, Any],
    origin_for: Callable[[str], str],
    origin_may_use: Callable[[str, str], bool],
) -> dict[str, Any] | None:
    """navigator.credentials.get() for the plain request, or None (see the module)."""
    try:
        rp_id = options["rpId"]
        if (
            options.get("extensions")
            or not isinstance(rp_id, str)
            or not rp_id
            or not isinstance(options["challenge"], str)
            or options.get("userVerification") not in _USER_VERIFICATION
        ):
            return None
        challenge = websafe_decode(options["challenge"])
        allowed = _plain_descriptors(options.get("allowCredentials"))
        origin = origin_for(rp_id)
        if not origin_may_use(rp_id, origin):
            return None
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    client_data = client_data_json("webauthn.get", challenge, origin)
    with device.lock:
        credential = device.held(rp_id, allowed) if allowed else device.newest(rp_id)
        if credential is None:
            return None
        auth_data, signature = device.assert_with(
            credential, hashlib.sha256(client_data).digest(), _OPTIONS
        )
    response = {
        "clientDataJSON": websafe_encode(client_data),
        "authenticatorData": websafe_encode(auth_data),
        "signature": websafe_encode(signature),
    }
    if not allowed:  # discoverable: the authenticator says whose credential it is
        response["userHandle"] = credential.user_id
    return {
        "id": credential.credential_id,
        "rawId": credential.credential_id,
        "response": response,
        "authenticatorAttachment": "cross-platform",
        "clientExtensionResults": {},
        "type": "public-key",
    }
