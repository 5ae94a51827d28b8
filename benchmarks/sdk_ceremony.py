"""What one passkey ceremony costs the client: `SoftwareAuthenticator.create()` (sign-up) and
`.get()` (sign-in) driven directly with the JSON options a Passgate server sends, measured as
this process's CPU time (`time.process_time()`: user + system, so the credential file's write
and fsync count) over N ceremonies.

No server is needed: the authenticator takes the server's options as JSON (a dict) and gives
back the JSON the SDK posts, which is everything the SDK does around it besides HTTP.

Per round: a new credential file, one unmeasured sign-up and sign-in, then N sign-ups (the
vault grows to N + 1 credentials, as a file used for a while does), N discoverable sign-ins
(empty allowCredentials) and N sign-ins naming one credential (allowCredentials). The floor is
measured in the same round: one ES256 signature with `cryptography` plus one SHA-256 of a
typical clientDataJSON, the least any software authenticator must do per ceremony.

    .venv/bin/python benchmarks/sdk_ceremony.py                  # 100 ceremonies, 5 rounds
    .venv/bin/python benchmarks/sdk_ceremony.py --ceremonies 300 --rounds 3 --passphrase pw
    .venv/bin/python benchmarks/sdk_ceremony.py --profile        # cProfile, one round

The first results are checked with py_webauthn (the server's verifier) before anything is
measured. Figures are printed, never asserted: the machine is shared and noisy; compare the
ratio to the floor of the same run.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import hashlib
import json
import os
import platform
import pstats
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn import verify_authentication_response, verify_registration_response

from passgate.authenticators import SoftwareAuthenticator

RP_ID = "localhost"
ORIGIN = "https://localhost"
ALGORITHMS = [-7, -8, -35, -36, -37, -257, -48, -49, -50]  # what the server offers by default


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def creation_options() -> dict[str, Any]:
    """The registration options a Passgate server sends (docs/wire.md#passkey-routes)."""
    return {
        "rp": {"name": "Bench", "id": RP_ID},
        "user": {"id": b64url(uuid.uuid4().bytes), "name": "alice", "displayName": "Alice"},
        "challenge": b64url(secrets.token_bytes(32)),
        "pubKeyCredParams": [{"type": "public-key", "alg": alg} for alg in ALGORITHMS],
        "timeout": 300000,
        "excludeCredentials": [],
        "authenticatorSelection": {
            "residentKey": "preferred",
            "requireResidentKey": False,
            "userVerification": "required",
        },
        "attestation": "none",
    }


def request_options(allow: list[str] | None = None) -> dict[str, Any]:
    return {
        "challenge": b64url(secrets.token_bytes(32)),
        "timeout": 300000,
        "rpId": RP_ID,
        "allowCredentials": [{"type": "public-key", "id": cid} for cid in allow or []],
        "userVerification": "required",
    }


def check(device: SoftwareAuthenticator) -> None:
    """The results are what a server accepts: verified as the server verifies them."""
    options = creation_options()
    created = device.create(options)
    registered = verify_registration_response(
        credential=created,
        expected_challenge=b64url_decode(options["challenge"]),
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        require_user_verification=True,
    )
    for allow in (None, [created["id"]]):
        options = request_options(allow)
        asserted = device.get(options)
        assert asserted["id"] == created["id"]
        verify_authentication_response(
            credential=asserted,
            expected_challenge=b64url_decode(options["challenge"]),
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
            credential_public_key=registered.credential_public_key,
            credential_current_sign_count=0,
            require_user_verification=True,
        )


def cpu_per_call(calls: list[Callable[[], object]]) -> float:
    """Microseconds of this process's CPU per call."""
    started = time.process_time()
    for call in calls:
        call()
    return (time.process_time() - started) / len(calls) * 1e6


def floor_us(rounds: int = 2000) -> float:
    """One ES256 signature plus one SHA-256 of a typical clientDataJSON."""
    key = ec.generate_private_key(ec.SECP256R1())
    algorithm = ec.ECDSA(hashes.SHA256())
    client_data = json.dumps(
        {
            "type": "webauthn.get",
            "challenge": b64url(secrets.token_bytes(32)),
            "origin": ORIGIN,
            "crossOrigin": False,
        },
        separators=(",", ":"),
    ).encode()
    auth_data = hashlib.sha256(RP_ID.encode()).digest() + b"\x05\x00\x00\x00\x01"

    def one() -> None:
        key.sign(auth_data + hashlib.sha256(client_data).digest(), algorithm)

    for _ in range(100):
        one()
    return cpu_per_call([one] * rounds)


def one_round(workdir: Path, ceremonies: int, passphrase: str | None) -> dict[str, float]:
    device = SoftwareAuthenticator(workdir / f"{uuid.uuid4().hex}.bin", passphrase)
    check(device)  # also the unmeasured warm-up
    sign_ups = [creation_options() for _ in range(ceremonies)]
    sign_ins = [request_options() for _ in range(ceremonies)]
    figures = {"floor": floor_us()}
    figures["sign-up"] = cpu_per_call([partial(device.create, o) for o in sign_ups])
    figures["sign-in"] = cpu_per_call([partial(device.get, o) for o in sign_ins])
    named = [request_options([device.credential_ids()[-1]]) for _ in range(ceremonies)]
    figures["sign-in, allowCredentials"] = cpu_per_call([partial(device.get, o) for o in named])
    return figures


def profile(workdir: Path, ceremonies: int, passphrase: str | None) -> None:
    device = SoftwareAuthenticator(workdir / "profile.bin", passphrase)
    check(device)
    sign_ups = [creation_options() for _ in range(ceremonies)]
    sign_ins = [request_options() for _ in range(ceremonies)]
    profiler = cProfile.Profile()
    profiler.enable()
    for options in sign_ups:
        device.create(options)
    for options in sign_ins:
        device.get(options)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ceremonies", type=int, default=100, help="per kind and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--passphrase", help="encrypt the file under a passphrase (scrypt)")
    parser.add_argument("--profile", action="store_true", help="cProfile one round instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        if args.profile:
            profile(workdir, args.ceremonies, args.passphrase)
            return
        print(
            f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, {args.ceremonies} ceremonies of each kind per round, "
            f"{'passphrase' if args.passphrase else 'key file'}"
        )
        rounds = [one_round(workdir, args.ceremonies, args.passphrase) for _ in range(args.rounds)]
    print(
        f"{'µs of CPU per ceremony':<28}"
        + "".join(f"{'round ' + str(i + 1):>10}" for i in range(len(rounds)))
        + f"{'median':>10}{'x floor':>9}"
    )
    floor = statistics.median(r["floor"] for r in rounds)
    for name in rounds[0]:
        values = [r[name] for r in rounds]
        median = statistics.median(values)
        ratio = statistics.median(r[name] / r["floor"] for r in rounds)
        print(
            f"{name:<28}"
            + "".join(f"{value:>10.0f}" for value in values)
            + f"{median:>10.0f}{ratio:>8.1f}x"
        )
    print(f"floor = one ES256 signature + one SHA-256 of clientDataJSON, {floor:.0f} µs here")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
