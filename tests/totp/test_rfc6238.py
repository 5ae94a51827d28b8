"""The server's one-time password arithmetic against the RFCs' published test vectors, and the
test's own authenticator app (tests/totp/helpers.py) against the same vectors, so the HTTP
tests' codes are right by the RFC, not just by agreement with the server."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from passgate.server.services import totp
from tests.totp.helpers import app_code

# RFC 6238 appendix B: the SHA-1 seed is the ASCII "12345678901234567890", codes 8 digits.
SEED = b"12345678901234567890"
RFC6238_SHA1 = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]
# RFC 4226 appendix D: the same secret, counters 0-9, six digits.
RFC4226 = [
    "755224",
    "287082",
    "359152",
    "969429",
    "338314",
    "254676",
    "287922",
    "162583",
    "399871",
    "520489",
]


@pytest.mark.parametrize(("at", "code"), RFC6238_SHA1)
def test_rfc6238_sha1_vectors(at: int, code: str) -> None:
    assert totp.totp(SEED, at, digits=8) == code
    secret = base64.b32encode(SEED).decode().rstrip("=")
    assert app_code(secret, at // 30, digits=8) == code


@pytest.mark.parametrize(("counter", "code"), list(enumerate(RFC4226)))
def test_rfc4226_vectors(counter: int, code: str) -> None:
    assert totp.hotp(SEED, counter) == code


def test_a_code_is_taken_one_step_either_side_and_only_after_the_last_accepted() -> None:
    at = 1111111111.0
    step = totp.time_step(at)
    for offset in (-1, 0, 1):
        assert totp.matching_step(SEED, totp.hotp(SEED, step + offset), at, None) == step + offset
    for offset in (-2, 2):
        assert totp.matching_step(SEED, totp.hotp(SEED, step + offset), at, None) is None
    # Accepted once: a step at or before the last accepted one no longer matches.
    assert totp.matching_step(SEED, totp.hotp(SEED, step), at, step) is None
    assert totp.matching_step(SEED, totp.hotp(SEED, step - 1), at, step) is None
    assert totp.matching_step(SEED, totp.hotp(SEED, step + 1), at, step) == step + 1


def test_the_provisioning_uri() -> None:
    secret = totp.encode_secret(SEED)
    assert secret == "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32, no padding
    assert totp.decode_secret(secret) == SEED
    uri = totp.provisioning_uri(secret, issuer="Acme & Co", account="ann@example.com")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert parts.path == "/Acme%20%26%20Co:ann%40example.com"
    assert parse_qs(parts.query) == {
        "secret": [secret],
        "issuer": ["Acme & Co"],
        "algorithm": ["SHA1"],
        "digits": ["6"],
        "period": ["30"],
    }
