"""`passgate keys` and the master key file, run as an operator runs them: real processes, a
data directory of their own, real databases of both kinds."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from passgate.server.services.secrets_box import key_id_of
from tests.raw_database import fresh_database_url, raw_text

__all__ = ["fresh_database_url"]

PASSGATE = [sys.executable, "-m", "passgate.cli"]


class Operator:
    """One host: its working directory, data directory and environment."""

    def __init__(self, database_url: str, data_dir: Path, **env: str) -> None:
        self.database_url = database_url
        self.data_dir = data_dir
        self.env = env

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("PASSGATE_")}
        return subprocess.run(
            [*PASSGATE, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={
                **clean,
                "PASSGATE_DATABASE_URL": self.database_url,
                "PASSGATE_DATA_DIR": str(self.data_dir),
                **self.env,
                **env,
            },
        )

    def ok(self, *args: str, **env: str) -> str:
        done = self.run(*args, **env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def status(self, **env: str) -> dict[str, Any]:
        return dict(json.loads(self.ok("keys", "status", "--json", **env)))

    def create_tenant_with_webhook(self) -> tuple[str, str]:
        created = json.loads(
            self.ok("tenant", "create", "--name", "Shop", "--rp-id", "shop.example", "--json")
        )
        shown = json.loads(
            self.ok(
                "tenant",
                "update",
                created["tenantId"],
                "--webhook-url",
                "https://shop.example/hooks",
                "--json",
            )
        )
        return created["tenantId"], shown["Webhook secret"]

    def webhook_secret(self, tenant_id: str, **env: str) -> str:
        return str(
            json.loads(self.ok("tenant", "update", tenant_id, "--json", **env))["Webhook secret"]
        )


def key_file_id(path: Path) -> str:
    from passgate.server.services.secrets_box import MasterKey

    return MasterKey.parse(path.read_text(), str(path)).key_id


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_first_write_makes_a_private_key_file_and_names_it(
    fresh_database_url: str, tmp_path: Path
) -> None:
    host = Operator(fresh_database_url, tmp_path / "data")
    host.ok("db", "upgrade")
    host.ok("tenant", "list", "--json")
    assert not (tmp_path / "data").exists(), "a command that writes no secret made a key"

    created = host.run("tenant", "create", "--name", "S", "--rp-id", "s.example", "--json")
    assert created.returncode == 0, created.stderr
    key_file = tmp_path / "data" / "master.key"
    assert mode(key_file) == 0o600
    key_id = key_file_id(key_file)
    assert f"created master key {key_id} in {key_file.resolve()}" in created.stderr
    assert "back it up" in created.stderr
    json.loads(created.stdout)  # the log line went to stderr, not into the JSON

    status = host.status()
    assert status["keyId"] == key_id
    assert status["source"] == str(key_file)
    assert status["encryptedSecrets"] == {key_id: 1}
    assert status["plaintextSecrets"] == 0
    assert status["missingKeyIds"] == []


def test_rotate_master_with_a_key_file(fresh_database_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    host = Operator(fresh_database_url, data)
    tenant_id, webhook_secret = host.create_tenant_with_webhook()
    old_id = key_file_id(data / "master.key")
    old_key = (data / "master.key").read_text().strip()
    assert host.status()["encryptedSecrets"] == {old_id: 2}

    rotated = host.run("keys", "rotate-master")
    assert rotated.returncode == 0, rotated.stderr
    new_id = key_file_id(data / "master.key")
    assert new_id != old_id
    assert f"2 secrets encrypted under master key {new_id} (was {old_id})" in rotated.stdout
    backup = data / f"master.key.{old_id}.old"
    assert backup.read_text().strip() == old_key
    assert mode(data / "master.key") == 0o600 and mode(backup) == 0o600
    assert not (data / "master.key.next").exists()

    assert host.status()["encryptedSecrets"] == {new_id: 2}
    assert host.webhook_secret(tenant_id) == webhook_secret
    raw = raw_text(fresh_database_url)
    assert f"enc:v1:{new_id}:" in raw and f"enc:v1:{old_id}:" not in raw
    assert webhook_secret not in raw

    # The old key no longer opens anything: a host still holding it is told which key it lacks.
    stale = host.run("keys", "status", PASSGATE_MASTER_KEY=old_key)
    assert stale.returncode == 1
    assert (
        stale.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"passgate: error: the database's secrets are encrypted under master key {new_id},"
        )
    )
    refused = host.run("tenant", "update", tenant_id, PASSGATE_MASTER_KEY=old_key)
    assert refused.returncode == 1
    assert f"master key {new_id}" in refused.stderr


def test_rotate_master_with_keys_in_the_environment(
    fresh_database_url: str, tmp_path: Path
) -> None:
    old_key = subprocess.run(
        [*PASSGATE, "keys", "generate"], capture_output=True, text=True, check=True
    ).stdout.strip()
    new_key = subprocess.run(
        [*PASSGATE, "keys", "generate"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert old_key != new_key and len(old_key) == 43
    data = tmp_path / "data"
    host = Operator(fresh_database_url, data, PASSGATE_MASTER_KEY=old_key)
    tenant_id, webhook_secret = host.create_tenant_with_webhook()
    assert not data.exists(), "a key from the environment needs no key file"

    without = host.run("keys", "rotate-master")
    assert without.returncode == 1
    assert without.stderr.strip().splitlines() == [
        "passgate: error: the master key comes from PASSGATE_MASTER_KEY: put a new one "
        "(`passgate keys generate`) in another variable and name it with --new-key-env"
    ]
    unset = host.run("keys", "rotate-master", "--new-key-env", "NEW_PASSGATE_KEY")
    assert unset.returncode == 1 and "NEW_PASSGATE_KEY is not set" in unset.stderr

    rotated = host.run(
        "keys", "rotate-master", "--new-key-env", "NEW_PASSGATE_KEY", NEW_PASSGATE_KEY=new_key
    )
    assert rotated.returncode == 0, rotated.stderr
    assert "Set PASSGATE_MASTER_KEY to the value of NEW_PASSGATE_KEY" in rotated.stdout
    assert not data.exists()
    new_id = key_id_of_text(new_key)
    assert host.status(PASSGATE_MASTER_KEY=new_key)["encryptedSecrets"] == {new_id: 2}
    assert host.webhook_secret(tenant_id, PASSGATE_MASTER_KEY=new_key) == webhook_secret
    assert host.run("keys", "status").returncode == 1  # still the old key: refused


def key_id_of_text(text: str) -> str:
    from passgate.server.services.secrets_box import MasterKey

    return key_id_of(MasterKey.parse(text, "test").secret)


def test_a_rotation_stopped_before_its_rename_is_finished_by_the_next_start(
    fresh_database_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    host = Operator(fresh_database_url, data)
    tenant_id, webhook_secret = host.create_tenant_with_webhook()
    old_id = key_file_id(data / "master.key")
    host.ok("keys", "rotate-master")
    new_id = key_file_id(data / "master.key")
    # As if the command had stopped after its commit, before it renamed the key files.
    (data / "master.key").rename(data / "master.key.next")
    (data / f"master.key.{old_id}.old").rename(data / "master.key")

    assert host.webhook_secret(tenant_id) == webhook_secret
    assert key_file_id(data / "master.key") == new_id
    assert key_file_id(data / f"master.key.{old_id}.old") == old_id
    assert not (data / "master.key.next").exists()


@pytest.mark.parametrize(
    ("value", "shown"),
    [("not a key", "PASSGATE_MASTER_KEY"), ("c2hvcnQ", "PASSGATE_MASTER_KEY")],
)
def test_a_malformed_master_key_is_one_line(tmp_path: Path, value: str, shown: str) -> None:
    host = Operator(f"sqlite:///{tmp_path / 'k.db'}", tmp_path / "data", PASSGATE_MASTER_KEY=value)
    done = host.run("tenant", "create", "--name", "S", "--rp-id", "s.example")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"passgate: error: {shown}: a master key is the base64url of 32 random bytes "
        "(`passgate keys generate` prints one)"
    ]
    # A key file with garbage in it is named the same way.
    bad = Operator(f"sqlite:///{tmp_path / 'f.db'}", tmp_path / "bad")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "master.key").write_text(value)
    done = bad.run("tenant", "create", "--name", "S", "--rp-id", "s.example")
    assert done.returncode == 1
    assert f"passgate: error: {tmp_path / 'bad' / 'master.key'}: a master key" in done.stderr


@contextmanager
def running_server(cwd: Path, *args: str, **env: str) -> Iterator[tuple[str, str]]:
    """`passgate serve ARGS` until the block ends: yields its base URL and what it printed
    up to the end of its start-up."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PASSGATE_")}
    process = subprocess.Popen(
        [*PASSGATE, "serve", "--port", str(port), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**clean, "COLUMNS": "200", **env},
    )
    printed = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            printed.append(line)
            if not line or "Application startup complete" in line:
                break
        output = "".join(printed)
        assert "Application startup complete" in output, output
        yield f"http://127.0.0.1:{port}", output
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def test_serve_dev_on_a_fresh_clone_makes_the_key_file(tmp_path: Path) -> None:
    """What `make run` does on a new checkout: no data directory, no key, no setting."""
    with running_server(tmp_path, "--dev") as (_, output):
        key_file = tmp_path / ".passgate" / "master.key"
        assert mode(key_file) == 0o600
        key_id = key_file_id(key_file)
        assert f"created master key {key_id} in {key_file.resolve()}" in output
        assert f"master key {key_id} loaded from .passgate/master.key" in output


def test_a_running_server_reads_secrets_sealed_after_a_rotation(
    fresh_database_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    host = Operator(fresh_database_url, data)
    host.ok("tenant", "create", "--name", "Before", "--rp-id", "before.example")
    env = {"PASSGATE_DATABASE_URL": fresh_database_url, "PASSGATE_DATA_DIR": str(data)}
    with running_server(tmp_path, **env) as (url, _):
        host.ok("keys", "rotate-master")
        after = json.loads(
            host.ok("tenant", "create", "--name", "After", "--rp-id", "after.example", "--json")
        )
        jwks = httpx.get(f"{url}/v1/client/public/{after['tenantId']}/.well-known/jwks")
        assert jwks.status_code == 200, jwks.text
        assert jwks.json()["keys"][0]["alg"] == "ES256"
