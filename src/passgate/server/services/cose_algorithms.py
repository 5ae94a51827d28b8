"""COSE public keys and signatures, for every algorithm a tenant may accept (docs/passkeys.md).

py_webauthn's own decoder cannot verify ES384 and does not check that a key's curve matches
its algorithm, so credential keys are decoded and checked here: one table of algorithms,
used for registration, assertion and attestation statement signatures alike.

ML-DSA (FIPS 204) needs a `cryptography` whose OpenSSL provides it; `available()` probes that
once, so a build without it simply does not offer ML-DSA."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import cbor2
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

# COSE key types and parameters (RFC 9052/9053, draft-ietf-cose-dilithium for AKP).
KTY, ALG, CRV, X, Y, N, E, PUB = 1, 3, -1, -2, -3, -1, -2, -1
OKP, EC2, RSA_KTY, AKP = 1, 2, 3, 7
ED25519_CRV = 6
CURVES: dict[int, ec.EllipticCurve] = {
    1: ec.SECP256R1(),
    2: ec.SECP384R1(),
    3: ec.SECP521R1(),
}


class CoseKeyError(ValueError):
    """A COSE key that is malformed, or of an algorithm Passgate cannot verify."""


@dataclass(frozen=True, slots=True)
class Algorithm:
    name: str
    cose_id: int
    key_type: int
    # For EC2 keys, the one curve the algorithm is defined on.
    curve: int | None = None


# Every algorithm a tenant may accept, in the order `pubKeyCredParams` offers them.
CREDENTIAL_ALGORITHMS: tuple[Algorithm, ...] = (
    Algorithm("ES256", -7, EC2, 1),
    Algorithm("EdDSA", -8, OKP),
    Algorithm("ES384", -35, EC2, 2),
    Algorithm("ES512", -36, EC2, 3),
    Algorithm("PS256", -37, RSA_KTY),
    Algorithm("RS256", -257, RSA_KTY),
    Algorithm("ML-DSA-44", -48, AKP),
    Algorithm("ML-DSA-65", -49, AKP),
    Algorithm("ML-DSA-87", -50, AKP),
)
BY_ID: dict[int, Algorithm] = {a.cose_id: a for a in CREDENTIAL_ALGORITHMS}
BY_NAME: dict[str, Algorithm] = {a.name.lower(): a for a in CREDENTIAL_ALGORITHMS}
ML_DSA_KEYS: dict[int, Callable[[bytes], PublicKeyTypes]] = {
    -48: mldsa.MLDSA44PublicKey.from_public_bytes,
    -49: mldsa.MLDSA65PublicKey.from_public_bytes,
    -50: mldsa.MLDSA87PublicKey.from_public_bytes,
}
# Hashes of the ECDSA and RSA algorithms, including those seen only in attestation
# statements (RS1 is what many TPMs sign certInfo with).
HASHES: dict[int, Callable[[], hashes.HashAlgorithm]] = {
    -7: hashes.SHA256,
    -35: hashes.SHA384,
    -36: hashes.SHA512,
    -37: hashes.SHA256,
    -38: hashes.SHA384,
    -39: hashes.SHA512,
    -257: hashes.SHA256,
    -258: hashes.SHA384,
    -259: hashes.SHA512,
    -65535: hashes.SHA1,
}
PSS = (-37, -38, -39)


@functools.cache
def ml_dsa_available() -> bool:
    """Whether this process's OpenSSL can verify ML-DSA (OpenSSL 3.5 or later)."""
    try:
        mldsa.MLDSA44PrivateKey.generate()
    except UnsupportedAlgorithm:
        return False
    return True


def available() -> tuple[Algorithm, ...]:
    """The algorithms this installation can verify, ES256 first."""
    return tuple(a for a in CREDENTIAL_ALGORITHMS if a.key_type != AKP or ml_dsa_available())


def names(ids: Iterable[int]) -> list[str]:
    return [BY_ID[i].name if i in BY_ID else str(i) for i in ids]


def parse_names(values: Iterable[str]) -> tuple[Algorithm, ...]:
    """Names (any case) to algorithms, in the canonical order; unknown or unavailable names
    are a `CoseKeyError` naming them."""
    wanted = [value.strip() for value in values if value.strip()]
    unknown = [value for value in wanted if value.lower() not in BY_NAME]
    if unknown:
        choices = ", ".join(a.name for a in CREDENTIAL_ALGORITHMS)
        raise CoseKeyError(f"unknown algorithm {', '.join(unknown)} (choose from {choices})")
    chosen = {BY_NAME[value.lower()] for value in wanted}
    missing = [a.name for a in chosen if a not in available()]
    if missing:
        raise CoseKeyError(
            f"{', '.join(missing)} cannot be verified here: this cryptography's OpenSSL has no "
            "ML-DSA (it needs OpenSSL 3.5 or later)"
        )
    return tuple(a for a in CREDENTIAL_ALGORITHMS if a in chosen)


@dataclass(frozen=True, slots=True)
class CredentialKey:
    algorithm: int
    public_key: PublicKeyTypes


def decode_key(cose: bytes) -> CredentialKey:
    """A credential public key from its COSE encoding, checked for consistency: the key
    type, curve and length must be the ones its `alg` is defined for."""
    try:
        decoded = cbor2.loads(cose)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise CoseKeyError("the credential public key is not CBOR") from exc
    if not isinstance(decoded, Mapping):
        raise CoseKeyError("the credential public key is not a COSE key")
    alg = decoded.get(ALG)
    algorithm = BY_ID.get(alg) if isinstance(alg, int) else None
    if algorithm is None:
        raise CoseKeyError(f"unsupported credential public key algorithm {decoded.get(ALG)!r}")
    if decoded.get(KTY) != algorithm.key_type:
        raise CoseKeyError(f"a {algorithm.name} key must have COSE key type {algorithm.key_type}")
    try:
        return CredentialKey(algorithm.cose_id, _public_key(algorithm, decoded))
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CoseKeyError(f"the {algorithm.name} public key is invalid: {exc}") from exc


def _public_key(algorithm: Algorithm, key: Mapping[int, Any]) -> PublicKeyTypes:
    if algorithm.key_type == EC2:
        assert algorithm.curve is not None
        x, y = _bytes(key, X), _bytes(key, Y)
        if key.get(CRV) != algorithm.curve:
            raise ValueError(f"its curve must be COSE curve {algorithm.curve}")
        size = (CURVES[algorithm.curve].key_size + 7) // 8
        if len(x) != size or len(y) != size:
            raise ValueError(f"x and y must be {size} bytes")
        return ec.EllipticCurvePublicKey.from_encoded_point(
            CURVES[algorithm.curve], b"\x04" + x + y
        )
    if algorithm.key_type == OKP:
        if key.get(CRV) != ED25519_CRV:
            raise ValueError("only Ed25519 is supported")
        return ed25519.Ed25519PublicKey.from_public_bytes(_bytes(key, X))
    if algorithm.key_type == RSA_KTY:
        n, e = int.from_bytes(_bytes(key, N), "big"), int.from_bytes(_bytes(key, E), "big")
        if n.bit_length() < 2048:
            raise ValueError("RSA keys must have at least 2048 bits")
        return rsa.RSAPublicNumbers(e, n).public_key()
    if not ml_dsa_available():
        raise UnsupportedAlgorithm("this cryptography's OpenSSL has no ML-DSA")
    return ML_DSA_KEYS[algorithm.cose_id](_bytes(key, PUB))


def _bytes(key: Mapping[int, Any], label: int) -> bytes:
    value = key.get(label)
    if not isinstance(value, bytes) or not value:
        raise ValueError(f"parameter {label} is missing")
    return value


def algorithm_of(cose: bytes) -> int:
    """The COSE algorithm of a stored credential key (for rows that predate the column)."""
    return decode_key(cose).algorithm


RAW_SIGNERS: dict[int, type] = {
    -8: ed25519.Ed25519PublicKey,
    -48: mldsa.MLDSA44PublicKey,
    -49: mldsa.MLDSA65PublicKey,
    -50: mldsa.MLDSA87PublicKey,
}


def _signs_raw(public_key: PublicKeyTypes, algorithm: int) -> bool:
    """EdDSA and ML-DSA keys sign the message itself, with no hash or padding to choose."""
    kind = RAW_SIGNERS.get(algorithm)
    return kind is not None and isinstance(public_key, kind)


def verify(public_key: PublicKeyTypes, algorithm: int, signature: bytes, data: bytes) -> None:
    """Check `signature` over `data` made with `algorithm` by `public_key`'s private key;
    `InvalidSignature` when it is not, including when key and algorithm do not belong
    together (an RSA key with an ECDSA `alg`, say)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey) and algorithm in (-7, -35, -36):
        public_key.verify(signature, data, ec.ECDSA(HASHES[algorithm]()))
    elif isinstance(public_key, rsa.RSAPublicKey) and algorithm in HASHES:
        digest = HASHES[algorithm]()
        if algorithm in PSS:
            pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.AUTO)
            public_key.verify(signature, data, pss, digest)
        else:
            public_key.verify(signature, data, padding.PKCS1v15(), digest)
    elif _signs_raw(public_key, algorithm):
        cast(Any, public_key).verify(signature, data)
    else:
        raise InvalidSignature(f"a {type(public_key).__name__} cannot sign with alg {algorithm}")
