"""A lean install: the SDK runs on its base dependencies alone, and the `passgate` command of an
install without the extra a command needs says which extra to add, in one line, exit 1.

Each test runs a fresh interpreter in which every installed module that the chosen extras would
not bring in fails to import (tests/packaging/lean.py), as it would in a lean venv."""

from __future__ import annotations

import json
from pathlib import Path

from tests.packaging.lean import blocked_modules, run_lean

BASE: frozenset[str] = frozenset()
DEVICE = frozenset({"device"})
SERVER = frozenset({"server"})


def test_the_blocker_blocks_what_the_extras_bring() -> None:
    """The premise: without extras, the command line's and the server's modules are missing."""
    lean = blocked_modules(BASE)
    assert {"typer", "rich", "keyring", "fastapi", "sqlalchemy", "alembic", "uvicorn"} <= lean
    assert {"fastapi", "sqlalchemy", "uvicorn", "pytest"} <= blocked_modules(DEVICE)
    assert "typer" not in blocked_modules(DEVICE)
    assert "fastapi" not in blocked_modules(SERVER)
    probe = run_lean("import typer", BASE)
    assert probe.returncode == 1
    assert "ModuleNotFoundError: No module named 'typer'" in probe.stderr


def test_the_sdk_and_its_authenticators_run_on_the_base_dependencies(tmp_path: Path) -> None:
    code = f"""
import base64, json, secrets, sys
from pathlib import Path

import passgate
from passgate import Authsignal, AuthsignalSync, DeviceKeys
from passgate.authenticators import (
    DeviceKeyStore, SecurityKeyAuthenticator, SoftwareAuthenticator, default_device_keys,
)

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

tmp = Path({str(tmp_path)!r})
device = SoftwareAuthenticator(tmp / "passkeys.bin", "correct horse")
created = device.create({{
    "rp": {{"id": "localhost", "name": "Lean"}},
    "user": {{"id": b64url(b"user-1"), "name": "ada", "displayName": "Ada"}},
    "challenge": b64url(secrets.token_bytes(32)),
    "pubKeyCredParams": [{{"type": "public-key", "alg": -7}}],
}})
signed = device.get({{"rpId": "localhost", "challenge": b64url(secrets.token_bytes(32))}})
# Without keyring the device key lives in a file.
keys = default_device_keys("tenant", "http://127.0.0.1:1/v1")
client = AuthsignalSync("tenant", base_url="http://127.0.0.1:1/v1", passkey_authenticator=device)
client.close()
blocked = sorted(name for name in sys.modules if name.partition(".")[0] in BLOCKED)
print(json.dumps({{
    "created": created["id"], "signed": signed["id"],
    "keys": type(keys).__name__, "blocked_loaded": blocked,
}}))
"""
    result = run_lean(code, BASE)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["signed"] == out["created"]
    assert out["keys"] == "DeviceKeyStore"
    assert out["blocked_loaded"] == []


def passgate_command(extras: frozenset[str], *args: str) -> tuple[int, str, str]:
    code = f"import sys\nfrom passgate.cli import main\nsys.exit(main({list(args)!r}))"
    result = run_lean(code, extras)
    return result.returncode, result.stdout, result.stderr


def test_a_bare_install_names_the_extra_to_add() -> None:
    for args, extra in [
        (["serve"], "'passgate[server]'"),
        (["tenant", "list"], "'passgate[server]'"),
        (["device", "watch"], "'passgate[device]'"),
        ([], "'passgate[device]'"),
        (["--help"], "'passgate[server]'"),
    ]:
        code, stdout, stderr = passgate_command(BASE, *args)
        assert code == 1, (args, stderr)
        assert stdout == ""
        assert len(stderr.splitlines()) == 1, stderr
        assert stderr.startswith("passgate: "), stderr
        assert f"pip install {extra}" in stderr and "typer is missing" in stderr, stderr
    assert "'passgate[server]'" in passgate_command(BASE)[2]
    assert "'passgate[device]'" not in passgate_command(BASE, "serve")[2]


def test_the_device_extra_runs_the_device_commands_and_names_the_server_extra() -> None:
    code, stdout, stderr = passgate_command(DEVICE, "device", "--help")
    assert code == 0, stderr
    assert "enroll" in stdout and "watch" in stdout

    for args in (["serve", "--dev"], ["db", "upgrade"], ["tenant", "list"], []):
        code, stdout, stderr = passgate_command(DEVICE, *args)
        assert code == 1, (args, stderr)
        assert stdout == ""
        assert len(stderr.splitlines()) == 1, stderr
        assert "pip install 'passgate[server]'" in stderr, stderr
        assert "Traceback" not in stderr


def test_the_server_extra_runs_the_server_commands() -> None:
    code, stdout, stderr = passgate_command(SERVER, "--help")
    assert code == 0, stderr
    for command in ("serve", "db", "tenant", "keys", "admin", "bench", "device"):
        assert command in stdout
    code, stdout, stderr = passgate_command(SERVER, "keys", "generate")
    assert code == 0, stderr
    assert len(stdout.strip()) > 20
