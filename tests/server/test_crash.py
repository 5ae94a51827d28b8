"""Crash safety: a Passgate server process, killed with SIGKILL at random moments under a load
of enrolments, sign-ins and push approvals, and restarted on the same database, loses nothing
it acknowledged.

A real `passgate serve` subprocess on a loopback port, over its own SQLite file and over a
fresh PostgreSQL database. A few client threads (one tenant, each its own passkey file and
device keys) run complete flows, and every 2xx is written down as an acknowledged write:
- a passkey enrolment (C3): the credential exists, listed and found by its id;
- a push enrolment (P2): the device exists, listed and found by its key;
- a push approval (P6, verified): its action succeeded and the challenge stays decided;
- a passkey sign-in (C5): its action succeeded;
- a validation (`/validate`, isValid): the token stays redeemed (a second one is not valid).
A request the kill interrupted acknowledged nothing and is not retried: its flow is dropped.
No flow may see a 5xx or a refusal (every request is valid; a refusal after an acknowledged step
would be a lost write). After the last restart every acknowledged write is checked.

The seed of the kill schedule is printed; `PASSGATE_CRASH_SEED` repeats it, and
`PASSGATE_CRASH_ROUNDS` (default 3: about 20 s per database) sets the number of kills for a
longer local run."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from passgate.authenticators import SoftwareAuthenticator
from passgate.sdk._push_protocol import public_key_param
from tests.conftest import _postgres
from tests.live_server import LiveServer, Tenant
from tests.tenant_client import (
    ENROL_SCOPE,
    PASSKEY_PATH,
    PUSH_PATH,
    Enrolled,
    TenantClient,
    new_device_key,
)

SEED = int(os.environ.get("PASSGATE_CRASH_SEED") or random.SystemRandom().randrange(10**9))
ROUNDS = int(os.environ.get("PASSGATE_CRASH_ROUNDS", "3"))
WORKERS = 3
# Load between two kills, seconds (drawn from the seeded schedule).
LOAD_SECONDS = (0.8, 3.0)
# The push-bombing limit is 5 challenges per user per 10 minutes: a device is asked at most
# this many times (tracks whose answer a kill lost count too).
APPROVALS_PER_DEVICE = 4
LAUNCHER = Path(__file__).parents[1] / "server_launcher.py"


class ServerProcess:
    """`passgate serve` on a loopback port, killed and restarted on the same database; forked by
    `tests/server_launcher.py`, so that a restart costs milliseconds, not a cold start."""

    def __init__(self, database_url: str, workdir: Path) -> None:
        self.database_url = database_url
        self.log = workdir / "server.log"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.launcher = subprocess.Popen(
            [sys.executable, "-P", str(LAUNCHER), str(self.log)],
            cwd=workdir,
            env={k: v for k, v in os.environ.items() if k != "PASSGATE_DATABASE_URL"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _ask(self, command: str) -> str:
        assert self.launcher.stdin is not None and self.launcher.stdout is not None
        self.launcher.stdin.write(command + "\n")
        self.launcher.stdin.flush()
        answer = self.launcher.stdout.readline().strip()
        assert answer and not answer.startswith("error"), f"launcher: {answer!r}\n{self.tail()}"
        return answer

    def start(self) -> None:
        self._ask(f"start --port {self.port} --database-url {self.database_url}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).is_success:
                    return
            except httpx.TransportError:
                time.sleep(0.02)
        raise AssertionError(f"the server did not start within 30 s:\n{self.tail()}")

    def kill(self) -> None:
        self._ask("kill")

    def close(self) -> None:
        """Stop the server (if running) and the launcher."""
        assert self.launcher.stdin is not None
        self.launcher.stdin.close()
        try:
            self.launcher.wait(timeout=30)
        finally:
            assert self.launcher.stdout is not None
            self.launcher.stdout.close()

    def tail(self) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])


@dataclass
class Ledger:
    """What the server acknowledged, and what went wrong, as one worker saw it."""

    passkeys: list[Enrolled] = field(default_factory=list)
    devices: list[tuple[Enrolled, ec.EllipticCurvePrivateKey]] = field(default_factory=list)
    # (user, action code, idempotency key); approvals also the challenge id and device key.
    approvals: list[tuple[str, str, str, str, ec.EllipticCurvePrivateKey]] = field(
        default_factory=list
    )
    sign_ins: list[tuple[str, str, str]] = field(default_factory=list)
    redeemed: list[str] = field(default_factory=list)
    lost: int = 0  # requests a kill interrupted
    down: int = 0  # connections refused while the server was down

    def add(self, other: Ledger) -> None:
        self.passkeys += other.passkeys
        self.devices += other.devices
        self.approvals += other.approvals
        self.sign_ins += other.sign_ins
        self.redeemed += other.redeemed
        self.problems += other.problems
        self.lost += other.lost
        self.down += other.down

    problems: list[str] = field(default_factory=list)


class Flow(Exception):
    """A step was refused: the flow stops (and the refusal is written down)."""


class Worker(threading.Thread):
    """One app and its backend, running complete flows until told to stop."""

    def __init__(
        self, index: int, api_url: str, tenant: Tenant, workdir: Path, stop: threading.Event
    ) -> None:
        super().__init__(name=f"crash-worker-{index}", daemon=True)
        self.index = index
        self.api_url = api_url
        self.tenant = tenant
        self.stop = stop
        self.rng = random.Random(f"{SEED}-{index}")
        self.passkey = SoftwareAuthenticator(workdir / f"worker-{index}.bin")
        self.ledger = Ledger()
        self.approvals_asked: dict[str, int] = {}
        self.made = 0

    def run(self) -> None:
        with TenantClient(self.api_url, self.tenant, timeout=15) as client:
            self.client = client
            while not self.stop.is_set():
                flows: list[Callable[[], None]] = [self.enrol_passkey, self.enrol_device]
                if self.ledger.passkeys:
                    flows += [self.sign_in, self.sign_in]
                if self._askable():
                    flows += [self.approve, self.approve]
                try:
                    self.rng.choice(flows)()
                except httpx.ConnectError:
                    self.ledger.down += 1
                    time.sleep(0.02)
                except httpx.TransportError:
                    self.ledger.lost += 1
                except Flow as refused:
                    self.ledger.problems.append(str(refused))

    def ok(self, response: httpx.Response) -> dict[str, Any]:
        if not response.is_success:
            request = response.request
            raise Flow(
                f"{request.method} {request.url.path}: {response.status_code} {response.text}"
            )
        return dict(response.json()) if response.content else {}

    def new_user(self, kind: str) -> str:
        self.made += 1
        return f"w{self.index}-{kind}{self.made}"

    def enrol_passkey(self) -> None:
        user = self.new_user("p")
        token = self.ok(self.client.track(user, "signUp", scope=ENROL_SCOPE))["token"]
        options = self.ok(self.client.registration_options(token, username=user))
        credential = self.passkey.create(options["options"])
        added = self.ok(self.client.add_passkey(token, options["challengeId"], credential))
        self.ledger.passkeys.append(
            Enrolled(user, added["userAuthenticatorId"], added["credentialId"])
        )

    def enrol_device(self) -> None:
        user, key = self.new_user("d"), new_device_key()
        token = self.ok(self.client.track(user, "enrollPush", scope=ENROL_SCOPE))["token"]
        added = self.ok(self.client.enrol_device(key, token))
        self.ledger.devices.append((Enrolled(user, added["userAuthenticatorId"]), key))

    def sign_in(self) -> None:
        user = self.rng.choice(self.ledger.passkeys).user_id
        tracked = self.ok(self.client.track(user, "signIn"))
        token = tracked["token"]
        options = self.ok(self.client.authentication_options(token))
        assertion = self.passkey.get(options["options"])
        verified = self.ok(self.client.verify_passkey(options["challengeId"], assertion, token))
        self.ledger.sign_ins.append((user, "signIn", tracked["idempotencyKey"]))
        self.validate(verified["accessToken"])

    def _askable(self) -> list[tuple[Enrolled, ec.EllipticCurvePrivateKey]]:
        return [
            (device, key)
            for device, key in self.ledger.devices
            if self.approvals_asked.get(device.user_id, 0) < APPROVALS_PER_DEVICE
        ]

    def approve(self) -> None:
        device, key = self.rng.choice(self._askable())
        self.approvals_asked[device.user_id] = self.approvals_asked.get(device.user_id, 0) + 1
        tracked = self.ok(self.client.track(device.user_id, "payment"))
        if not tracked.get("challengeId"):
            raise Flow(f"track for {device.user_id} started no push challenge: {tracked}")
        challenge_id = tracked["challengeId"]
        answer = self.ok(self.client.answer(key, challenge_id, code=tracked["verificationCode"]))
        if not answer.get("isVerified"):
            raise Flow(f"approval of {challenge_id} not verified: {answer}")
        self.ledger.approvals.append(
            (device.user_id, "payment", tracked["idempotencyKey"], challenge_id, key)
        )
        self.validate(tracked["token"])

    def validate(self, token: str) -> None:
        validated = self.ok(self.client.validate(token))
        if not validated.get("isValid"):
            raise Flow(f"a fresh token did not validate: {validated}")
        self.ledger.redeemed.append(token)


def missing_writes(client: TenantClient, ledger: Ledger) -> list[str]:
    """Every acknowledged write that is not there (or not as acknowledged)."""
    missing: list[str] = []

    def listed(user: str) -> set[str]:
        response = client.server("GET", f"/users/{user}/authenticators")
        assert response.status_code == 200, response.text
        return {a["userAuthenticatorId"] for a in response.json()}

    def state(user: str, action: str, key: str) -> str:
        response = client.server("GET", f"/users/{user}/actions/{action}/{key}")
        return str(response.json().get("state")) if response.status_code == 200 else "missing"

    for passkey in ledger.passkeys:
        found = client.client("GET", PASSKEY_PATH, params={"credentialId": passkey.credential_id})
        if passkey.authenticator_id not in listed(passkey.user_id) or found.status_code != 200:
            missing.append(f"passkey {passkey}")
    for device, device_key in ledger.devices:
        found = client.client("GET", PUSH_PATH, params={"publicKey": public_key_param(device_key)})
        if device.authenticator_id not in listed(device.user_id) or found.status_code != 200:
            missing.append(f"device {device}")
    for user, action, key, challenge_id, device_key in ledger.approvals:
        if (now := state(user, action, key)) != "CHALLENGE_SUCCEEDED":
            missing.append(f"approval of {user}/{action}/{key}: {now}")
        again = client.answer(device_key, challenge_id, approved=False)
        if again.status_code != 409:
            missing.append(f"challenge {challenge_id} not decided: {again.text}")
    for user, action, key in ledger.sign_ins:
        if (now := state(user, action, key)) != "CHALLENGE_SUCCEEDED":
            missing.append(f"sign-in {user}/{action}/{key}: {now}")
    for token in ledger.redeemed:
        # Not valid again (in a long run it may have expired meanwhile: a 400 then).
        validated = client.validate(token).json()
        if validated.get("isValid") is not False and validated.get("errorCode") != "expired_token":
            missing.append(f"redeemed token not redeemed: {validated}")
    return missing


@pytest.fixture
def crash_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database of the crash test's own, of the session's kind: a new SQLite file, or a new
    database on the session's PostgreSQL server."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'crash.db'}"
        return
    name = f"passgate_crash_{random.SystemRandom().randrange(16**8):08x}"
    asyncio.run(_postgres(f'CREATE DATABASE "{name}"'))
    yield f"{database_url.rsplit('/', 1)[0]}/{name}"
    asyncio.run(_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_sigkill_loses_no_acknowledged_write(
    crash_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kind = crash_database.split(":", 1)[0]
    with capsys.disabled():
        print(f"\ncrash test ({kind}): seed {SEED} (PASSGATE_CRASH_SEED={SEED}), {ROUNDS} kills")
    schedule = random.Random(SEED)
    # The tenant, made as the other tests make theirs (this also migrates the new database).
    setup = LiveServer(crash_database).start()
    tenant = setup.create_tenant(name="crash")
    setup.stop()
    server = ServerProcess(crash_database, tmp_path)
    server.start()
    stop = threading.Event()
    workers = [Worker(i, server.api_url, tenant, tmp_path, stop) for i in range(WORKERS)]
    try:
        for worker in workers:
            worker.start()
        for _ in range(ROUNDS):
            time.sleep(schedule.uniform(*LOAD_SECONDS))
            server.kill()
            time.sleep(schedule.uniform(0, 0.3))
            server.start()
        time.sleep(schedule.uniform(*LOAD_SECONDS))
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
        ledger = Ledger()
        for worker in workers:
            ledger.add(worker.ledger)
        with TenantClient(server.api_url, tenant) as client:
            missing = missing_writes(client, ledger)
    finally:
        stop.set()
        server.close()
    with capsys.disabled():
        print(
            f"crash test ({kind}): {ROUNDS} kills; acknowledged: "
            f"{len(ledger.passkeys)} passkey enrolments, {len(ledger.devices)} push enrolments, "
            f"{len(ledger.approvals)} approvals, {len(ledger.sign_ins)} sign-ins, "
            f"{len(ledger.redeemed)} redeemed tokens; {ledger.lost} requests cut off, "
            f"{ledger.down} connections refused while down; {len(missing)} missing, "
            f"{len(ledger.problems)} flows refused"
        )
    assert not ledger.problems, "\n".join(ledger.problems[:20]) + "\n" + server.tail()
    assert not missing, "\n".join(missing[:20])
    assert all((ledger.passkeys, ledger.devices, ledger.approvals, ledger.sign_ins)), (
        "too little load to judge: raise LOAD_SECONDS"
    )
