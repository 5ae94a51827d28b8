"""`passgate tenant update` (push settings) and `passgate device ...`, run as real processes
against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from authsignal.client import AuthsignalClient

from passgate.server.services.push.settings import configure
from passgate.server.store.db import Db
from tests.cli.test_cli import passgate
from tests.live_server import LiveServer, Tenant

PASSGATE = [sys.executable, "-m", "passgate.cli"]


def test_tenant_update_push_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    created = passgate(
        "tenant",
        "create",
        "--name",
        "S",
        "--rp-id",
        "s.example",
        "--json",
        env={"PASSGATE_DATABASE_URL": url},
    )
    tenant_id = json.loads(created.stdout)["tenantId"]
    account = tmp_path / "fcm.json"
    account.write_text(json.dumps({"project_id": "demo", "private_key": "x", "client_email": "e"}))

    def update(*args: str) -> dict[str, Any]:
        done = passgate(
            "tenant", "update", tenant_id, *args, "--json", env={"PASSGATE_DATABASE_URL": url}
        )
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    shown = update(
        "--webhook-url",
        "https://hooks.example/push",
        "--push-expiry",
        "60",
        "--no-number-matching",
        "--push-rate-limit",
        "3",
        "--fcm-service-account",
        str(account),
    )
    assert shown["Webhook URL"] == "https://hooks.example/push"
    assert shown["Webhook secret"].startswith("pg_whsec_")
    assert shown["Challenge expiry"] == "60 s"
    assert shown["Number matching"] == "off"
    assert shown["Rate limit"] == "3 per 600 s per user"
    assert shown["FCM"] == "project demo"
    assert "private_key" not in json.dumps(shown)
    assert update()["Webhook secret"] == shown["Webhook secret"]
    assert update("--rotate-webhook-secret")["Webhook secret"] != shown["Webhook secret"]
    assert update("--clear-webhook")["Webhook URL"] == "none"

    refused = passgate(
        "tenant", "update", tenant_id, "--push-expiry", "1", env={"PASSGATE_DATABASE_URL": url}
    )
    assert refused.returncode != 0
    assert "expiry" in refused.stderr


def test_device_enroll_watch_status_remove(
    server: LiveServer, tenant: Tenant, authsignal: AuthsignalClient, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PASSGATE_BASE_URL": server.api_url,
        "PASSGATE_TENANT_ID": tenant.id,
        "PASSGATE_DEVICE_KEY_FILE": str(tmp_path / "device.pem"),
        "PASSGATE_DEVICE_PASSPHRASE": "hunter2",
    }

    def device(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*PASSGATE, "device", *args], capture_output=True, text=True, timeout=60, env=env
        )

    token = authsignal.track("cli-user", "enroll", {"scope": "add:authenticators"})["token"]
    enrolled = device("enroll", "--token", token, "--name", "laptop")
    assert enrolled.returncode == 0, enrolled.stderr
    assert "cli-user" in enrolled.stdout
    assert "ENCRYPTED" in (tmp_path / "device.pem").read_text()
    status = device("status")
    assert status.returncode == 0 and "Last approval" in status.stdout

    # Interactive: the person reads the number off the other screen and types it.
    watcher = subprocess.Popen(
        [*PASSGATE, "device", "watch", "--once", "--wait", "20"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(1.5)
    tracked = authsignal.track(
        "cli-user", "payment", {"ipAddress": "198.51.100.2", "custom": {"amount": "9.99"}}
    )
    out, err = watcher.communicate(f"y\n{tracked['verification_code']}\n", timeout=30)
    assert watcher.returncode == 0, err
    assert "payment" in out and "198.51.100.2" in out and "9.99" in out
    assert "approved" in out
    assert authsignal.get_action("cli-user", "payment", tracked["idempotency_key"])["state"] == (
        "CHALLENGE_SUCCEEDED"
    )

    # Scripted: --approve-all (number matching off for this tenant).
    async def numbers_off(db: Db) -> None:
        await configure(db, tenant.id, number_matching=False)

    server.run(numbers_off)
    watcher = subprocess.Popen(
        [*PASSGATE, "device", "watch", "--once", "--approve-all"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(1.5)
    tracked = authsignal.track("cli-user", "signIn")
    out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err
    assert authsignal.get_action("cli-user", "signIn", tracked["idempotency_key"])["state"] == (
        "CHALLENGE_SUCCEEDED"
    )

    removed = device("remove")
    assert removed.returncode == 0, removed.stderr
    assert not (tmp_path / "device.pem").exists()
    assert authsignal.get_authenticators("cli-user") == []
    assert device("status").returncode == 1


def test_device_commands_work_without_the_server_extra() -> None:
    """`pip install passgate` (no server extra): the server's libraries are missing."""
    script = (
        "import sys\n"
        "for name in ('sqlalchemy', 'fastapi', 'alembic', 'uvicorn'):\n"
        "    sys.modules[name] = None  # importing it now raises ImportError\n"
        "from passgate.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script, "device", "--help"], capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert "watch" in shown.stdout
    assert shown.stderr == ""  # the device commands need nothing they lack: no warning
    refused = subprocess.run(
        [sys.executable, "-c", script, "serve"], capture_output=True, text=True
    )
    assert refused.returncode == 1
    # One line that says what to install, not a traceback.
    assert refused.stderr.count("\n") <= 1 and "Traceback" not in refused.stderr
    assert "pip install 'passgate[server]'" in refused.stderr
