"""Device-key encodings the mobile SDKs send (docs/wire.md#push-device-keys), read leniently."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from passgate.sdk._push_protocol import public_key_base64, public_key_param, removal_message
from passgate.server.services.errors import InvalidRequest
from passgate.server.services.push.keys import canonical_public_key, removal_messages, verify

KEY = ec.generate_private_key(ec.SECP256R1())
SPKI = public_key_base64(KEY)


def test_spki_is_the_fixed_p256_header_plus_the_point() -> None:
    der = base64.b64decode(SPKI)
    assert der.hex().startswith("3059301306072a8648ce3d020106082a8648ce3d030107034200")
    assert len(der) == 91 and len(SPKI) == 124 and SPKI.endswith("=")


@pytest.mark.parametrize(
    "sent",
    [
        SPKI,  # plain, as in request bodies
        base64.b64encode(SPKI.encode()).decode(),  # Android query: standard, padded
        base64.urlsafe_b64encode(SPKI.encode()).decode().rstrip("="),  # iOS query
        base64.b64encode(SPKI.encode()).decode().replace("+", " "),  # '+' decoded as a space
        public_key_param(KEY),  # what Passgate's SDK sends
    ],
)
def test_every_encoding_gives_the_same_key(sent: str) -> None:
    assert canonical_public_key(sent) == SPKI


@pytest.mark.parametrize(
    "sent",
    [
        "",
        "!!!",
        base64.b64encode(b"hello").decode(),
        base64.b64encode(  # an RSA key is not a device key
            rsa.generate_private_key(public_exponent=65537, key_size=1024)
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).decode(),
        "A" * 2000,
    ],
)
def test_anything_else_is_a_clear_400(sent: str) -> None:
    with pytest.raises(InvalidRequest):
        canonical_public_key(sent)


def test_signatures_are_der_ecdsa_sha256_in_base64() -> None:
    signature = base64.b64encode(KEY.sign(b"challenge-1", ec.ECDSA(hashes.SHA256()))).decode()
    assert verify(SPKI, signature, "challenge-1")
    assert not verify(SPKI, signature, "challenge-2")
    assert not verify(SPKI, None, "challenge-1")
    assert not verify(SPKI, "%%%", "challenge-1")


def test_removal_window_is_formatted_as_a_double() -> None:
    assert removal_message(1_795_884_600) == "2993141.0"
    assert removal_messages(1_795_884_600) == ("2993141.0", "2993140.0")
