"""deploy/systemd: the units are valid for systemd, their hardening rates well, and a real
`passgate serve` works under the run-time restrictions the service unit puts on it
(NoNewPrivileges, MemoryDenyWriteExecute, SystemCallFilter: tests/deploy/systemd_sandbox.py):
passkey sign-up and sign-in, a push round trip with Redis, tokens signed and
validated, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from passgate.authenticators import SoftwareAuthenticator
from tests.conftest import IN_CI
from tests.deploy.systemd_sandbox import unit_options
from tests.live_server import Tenant
from tests.tenant_client import TenantClient, new_device_key

UNITS = Path(__file__).parents[2] / "deploy" / "systemd"
SERVICE = UNITS / "passgate.service"
SANDBOX = Path(__file__).with_name("systemd_sandbox.py")
REDIS_URL = os.environ.get("PASSGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# systemd-analyze security's exposure, 0-100 (it prints it divided by 10): 1.2 now.
MOST_EXPOSURE = 20


@pytest.fixture(scope="module", autouse=True)
def systemd_tools() -> None:
    missing = [
        what
        for what, found in (
            ("systemd-analyze", shutil.which("systemd-analyze")),
            ("libseccomp", _libseccomp()),
        )
        if not found
    ]
    if missing:
        if IN_CI:
            pytest.fail(f"{', '.join(missing)} required under CI")
        pytest.skip(f"{', '.join(missing)} not installed")


def _libseccomp() -> bool:
    import ctypes.util

    return ctypes.util.find_library("seccomp") is not None


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root for systemd-analyze: the units where systemd looks for them, the system's own
    units (targets they are ordered after), the environment file and the executable the
    units name."""
    path = tmp_path_factory.mktemp("root")
    (path / "etc/systemd/system").mkdir(parents=True)
    for unit in UNITS.glob("*.service"):
        shutil.copy(unit, path / "etc/systemd/system" / unit.name)
        for exec_start in unit_options(unit)["ExecStart"]:
            executable = path / exec_start.split()[0].lstrip("/")
            executable.parent.mkdir(parents=True, exist_ok=True)
            executable.write_text("#!/bin/sh\n")
            executable.chmod(0o755)
        for env_file in unit_options(unit)["EnvironmentFile"]:
            target = path / env_file.lstrip("-/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(UNITS.parent / "passgate.env.example", target)
    (path / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", path / "usr/lib/systemd/system", symlinks=True)
    return path


def test_units_verify(root: Path) -> None:
    units = sorted(unit.name for unit in UNITS.glob("*.service"))
    assert units == ["passgate-migrate.service", "passgate.service"]
    checked = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *units],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=60,
    )
    # Unknown options and bad values are warnings (exit 0): any output is a failure.
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")


@pytest.mark.parametrize("unit", ["passgate.service", "passgate-migrate.service"])
def test_units_hardening_rates_ok(root: Path, unit: str) -> None:
    rated = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            f"--root={root}",
            f"--threshold={MOST_EXPOSURE}",
            "--no-pager",
            unit,
        ],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=60,
    )
    assert rated.returncode == 0, rated.stdout[-2000:] + rated.stderr


def test_the_units_share_their_sandbox() -> None:
    """The migration unit runs the same code against the same database: same user,
    environment and restrictions."""
    service = unit_options(SERVICE)
    migrate = unit_options(UNITS / "passgate-migrate.service")
    ignored = {"Type", "ExecStart", "Restart", "RestartSec", "TimeoutStopSec"}
    assert {k: v for k, v in service.items() if k not in ignored} == {
        k: v for k, v in migrate.items() if k not in ignored
    }
    assert migrate["ExecStart"][0].split()[1:] == ["db", "upgrade"]
    assert service["ExecStart"][0].split()[1] == "serve"


def sandboxed(*command: str) -> list[str]:
    return [sys.executable, "-P", str(SANDBOX), str(SERVICE), "--", *command]


def test_the_sandbox_is_in_force() -> None:
    """What the unit forbids is refused in the sandbox: memory both writable and executable,
    a privileged system call, privileges gained through exec."""
    probe = """
import ctypes, mmap, os
libc = ctypes.CDLL(None, use_errno=True)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    print("wx allowed")
except PermissionError:
    print("wx refused")
readable = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE)
print("hostname", "refused" if libc.sethostname(b"x", 1) != 0 else "changed")
with open("/proc/self/status") as status:
    print([line.split()[1] for line in status if line.startswith("NoNewPrivs")][0])
"""
    result = subprocess.run(
        sandboxed(sys.executable, "-c", probe), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["wx refused", "hostname refused", "1"]


@pytest.fixture
def sandboxed_server(database_url: str, tmp_path: Path) -> Iterator[tuple[str, Tenant]]:
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "passgate.cli",
            "tenant",
            "create",
            "--name",
            "sandboxed",
            "--rp-id",
            "localhost",
            "--database-url",
            database_url,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    fields = json.loads(created.stdout[created.stdout.index("{") :])
    tenant = Tenant(fields["tenantId"], fields["secretKey"], "localhost")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "serve.log").open("w")
    env = {**os.environ, "PASSGATE_REDIS_URL": REDIS_URL}
    serve = [sys.executable, "-m", "passgate.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(
        sandboxed(*serve, "--database-url", database_url),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the sandboxed server did not start"
            try:
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield url, tenant
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        finally:
            log.close()
    assert process.returncode == 0, (tmp_path / "serve.log").read_text()[-3000:]


def test_passgate_serve_works_in_the_units_sandbox(
    sandboxed_server: tuple[str, Tenant], tmp_path: Path
) -> None:
    url, tenant = sandboxed_server
    with TenantClient(f"{url}/v1", tenant) as client:
        # Passkeys: WebAuthn checks, the token signed with the key the master key decrypts.
        device = SoftwareAuthenticator(tmp_path / "passkey.bin")
        client.register_passkey(device, "pat")
        signed_in = client.sign_in(device)
        assert signed_in.status_code == 200, signed_in.text
        validated = client.validate(signed_in.json()["accessToken"])
        assert validated.status_code == 200, validated.text
        assert validated.json()["isValid"] is True

        # Push: a track starts a challenge (its wake-up published through Redis); the device
        # reads and answers it.
        key = new_device_key()
        client.add_device(key, "sam")
        tracked = client.track("sam", "approvePayment")
        assert tracked.status_code == 200, tracked.text
        started = tracked.json()
        pending = client.pending(key)
        assert pending.status_code == 200, pending.text
        assert pending.json()["challengeId"] == started["challengeId"]
        answered = client.answer(key, started["challengeId"], code=started["verificationCode"])
        assert answered.status_code == 200, answered.text
        result = client.validate(started["token"])
        assert result.json()["state"] == "CHALLENGE_SUCCEEDED", result.text
