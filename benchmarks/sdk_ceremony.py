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
    .venv/bin/python benchmarks/sdk_ceremony.py --sdk            # also the SDK, over HTTP

`--sdk` also measures the whole SDK call, `client.passkey.sign_up()` and `sign_in()`
(discoverable) with the sync and the async client: two HTTP requests, their JSON and the
authenticator. It starts `passgate serve` (SQLite, a loopback port) in a child process, so
only the client's CPU is counted; the backend's track calls for the sign-ups' tokens are made
before the clock starts.

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


def sdk_rounds(workdir: Path, ceremonies: int, rounds: int) -> list[dict[str, float]]:
    """The SDK's sign-up and sign-in against a real server in a child process."""
    import asyncio

    import httpx

    from passgate import Authsignal, AuthsignalSync
    from passgate.bench.harness import passgate, running_server

    database_url = f"sqlite+aiosqlite:///{workdir / 'sdk.db'}"
    environment = {
        **os.environ,
        "PASSGATE_DATA_DIR": str(workdir / "data"),
        # Every call comes from 127.0.0.1: keep the per-IP and per-tenant limits out of reach.
        "PASSGATE_CLIENT_RATE_LIMIT_PER_IP": "1000000000",
        "PASSGATE_CLIENT_RATE_LIMIT_PER_TENANT": "1000000000",
    }
    passgate(environment, "db", "upgrade", "--database-url", database_url)
    created = passgate(
        environment,
        *("tenant", "create", "--name", "sdk", "--rp-id", RP_ID),
        *("--database-url", database_url, "--json"),
    )
    tenant = json.loads(created)
    results = []
    with running_server(database_url, environment, workdir) as server:
        api = f"http://127.0.0.1:{server.port}/v1"
        backend = httpx.Client(base_url=api, auth=(tenant["secretKey"], ""), timeout=30)

        def tokens(prefix: str) -> list[str]:
            return [
                backend.post(f"/users/{prefix}-{i}/actions/signUp", json={}).json()["token"]
                for i in range(ceremonies)
            ]

        for number in range(rounds):
            figures = {"floor": floor_us()}
            # What the two HTTP requests of a ceremony cost on their own: httpx, and the
            # kernel's loopback TCP, much of which runs in the sending process.
            with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as http:
                http.get("/health")
                figures["2 httpx GET /health"] = 2 * cpu_per_call(
                    [partial(http.get, "/health")] * ceremonies
                )
            device = SoftwareAuthenticator(workdir / f"sdk-{number}.bin")
            client = AuthsignalSync(tenant["tenantId"], api, passkey_authenticator=device)
            warm = backend.post(f"/users/warm-{number}/actions/signUp", json={}).json()["token"]
            assert client.passkey.sign_up(warm).ok and client.passkey.sign_in().ok
            signed = tokens(f"sync{number}")
            figures["SDK sign-up, sync"] = cpu_per_call(
                [partial(client.passkey.sign_up, token) for token in signed]
            )
            figures["SDK sign-in, sync"] = cpu_per_call([client.passkey.sign_in] * ceremonies)
            client.close()
            signed = tokens(f"async{number}")

            async def run_async(
                device: SoftwareAuthenticator, signed: list[str], figures: dict[str, float]
            ) -> None:
                async with Authsignal(
                    tenant["tenantId"], api, passkey_authenticator=device
                ) as client:
                    assert (await client.passkey.sign_in()).ok  # warm
                    started = time.process_time()
                    for token in signed:
                        assert (await client.passkey.sign_up(token)).ok
                    middle = time.process_time()
                    for _ in range(ceremonies):
                        assert (await client.passkey.sign_in()).ok
                    ended = time.process_time()
                figures["SDK sign-up, async"] = (middle - started) / ceremonies * 1e6
                figures["SDK sign-in, async"] = (ended - middle) / ceremonies * 1e6

            asyncio.run(run_async(device, signed, figures))
            results.append(figures)
        backend.close()
    return results


def report(rounds: list[dict[str, float]]) -> None:
    width = 28
    header = "".join(f"{'round ' + str(i + 1):>10}" for i in range(len(rounds)))
    print(f"{'µs of CPU per ceremony':<{width}}{header}{'median':>10}{'x floor':>9}")
    for name in rounds[0]:
        values = [r[name] for r in rounds]
        median = statistics.median(values)
        ratio = statistics.median(r[name] / r["floor"] for r in rounds)
        print(
            f"{name:<{width}}"
            + "".join(f"{value:>10.0f}" for value in values)
            + f"{median:>10.0f}{ratio:>8.1f}x"
        )
    floor = statistics.median(r["floor"] for r in rounds)
    print(f"floor = one ES256 signature + one SHA-256 of clientDataJSON, {floor:.0f} µs here")
    sys.stdout.flush()


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
    parser.add_argument("--sdk", action="store_true", help="also the SDK against a server")
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
        report([one_round(workdir, args.ceremonies, args.passphrase) for _ in range(args.rounds)])
        if args.sdk:
            print("\nThe SDK (HTTP to a loopback server in a child process, key file):")
            report(sdk_rounds(workdir, args.ceremonies, args.rounds))


if __name__ == "__main__":
    main()
