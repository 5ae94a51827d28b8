"""`passgate db backup`: a copy of a live WAL-mode SQLite database taken while a server writes
to it, restored by copying it into place, and opened again by a server."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.live_server import LiveServer

PASSGATE = [sys.executable, "-m", "passgate.cli"]


def passgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PASSGATE, *args], capture_output=True, text=True, timeout=120)


def sqlite_rows(path: Path, query: str) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


class Writer(threading.Thread):
    """Tracks one new user's action after another through the Server API, and keeps the
    users the server acknowledged, in order."""

    def __init__(self, server: LiveServer, secret_key: str) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=server.api_url, auth=(secret_key, ""), timeout=30)
        self.acknowledged: list[tuple[str, str]] = []  # (user id, idempotency key)
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with self.http:
            while not self.stopping.is_set():
                user = f"user-{len(self.acknowledged)}"
                response = self.http.post(f"/users/{user}/actions/signIn", json={})
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text}")
                    return
                self.acknowledged.append((user, response.json()["idempotencyKey"]))

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 60
        while len(self.acknowledged) < count:
            assert not self.failures, self.failures
            assert self.is_alive() and time.monotonic() < deadline, "the writer stalled"
            time.sleep(0.01)


def test_backup_while_a_server_writes_then_restore(tmp_path: Path) -> None:
    live = tmp_path / "live" / "passgate.db"
    url = f"sqlite:///{live}"
    copy = tmp_path / "backups" / "passgate-backup.db"
    copy.parent.mkdir()

    server = LiveServer(url).start()
    try:
        tenant = server.create_tenant()
        writer = Writer(server, tenant.secret_key)
        writer.start()
        writer.wait_for(50)
        before = len(writer.acknowledged)
        result = passgate("db", "backup", str(copy), "--database-url", url)
        after = len(writer.acknowledged)
        # The server is still writing after the backup: it was never held up.
        writer.wait_for(after + 20)
        writer.stopping.set()
        writer.join(timeout=30)
        assert not writer.failures, writer.failures
        assert sqlite_rows(live, "PRAGMA journal_mode") == [("wal",)]
    finally:
        server.stop()

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"backed up {live} to {copy} (")
    assert "integrity ok" in result.stdout
    # One file, readable by its owner only, not in WAL mode: it can be copied as it is.
    assert sorted(path.name for path in copy.parent.iterdir()) == [copy.name]
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert sqlite_rows(copy, "PRAGMA journal_mode") == [("delete",)]
    assert sqlite_rows(copy, "PRAGMA integrity_check") == [("ok",)]

    # The copy is the database as of one commit: the writer's first N actions, every one
    # acknowledged before the backup started among them.
    copied_users = {row[0] for row in sqlite_rows(copy, "SELECT user_id FROM actions")}
    count = len(copied_users)
    assert before <= count <= after + 1
    assert copied_users == {user for user, _ in writer.acknowledged[:count]}
    assert len(writer.acknowledged) > count

    # Restore: the server is stopped; the live database and its -wal and -shm files are
    # replaced by the backup.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{live}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(copy, live)
    assert sqlite_rows(live, "PRAGMA integrity_check") == [("ok",)]

    restored = LiveServer(url).start()
    try:
        with httpx.Client(
            base_url=restored.api_url, auth=(tenant.secret_key, ""), timeout=30
        ) as http:
            user, key = writer.acknowledged[count - 1]
            found = http.get(f"/users/{user}/actions/signIn/{key}")
            assert found.status_code == 200, found.text
            assert found.json()["state"] == "CHALLENGE_REQUIRED"
            user, key = writer.acknowledged[count]
            assert http.get(f"/users/{user}/actions/signIn/{key}").status_code == 404
            # A track signs a token with the tenant's key, decrypted with the master key:
            # the restored secrets work.
            tracked = http.post("/users/after-restore/actions/signIn", json={})
            assert tracked.status_code == 200, tracked.text
            valid = http.post("/validate", json={"token": tracked.json()["token"]})
            assert valid.status_code == 200, valid.text
            assert valid.json()["userId"] == "after-restore"
    finally:
        restored.stop()
    assert sqlite_rows(live, "PRAGMA integrity_check") == [("ok",)]
    users = {row[0] for row in sqlite_rows(live, "SELECT user_id FROM actions")}
    assert users == copied_users | {"after-restore"}


def test_postgresql_is_refused_with_a_pointer_to_pg_dump(tmp_path: Path) -> None:
    result = passgate(
        "db", "backup", str(tmp_path / "b.db"), "--database-url", "postgresql://u@127.0.0.1/db"
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("passgate: error: ")
    assert "pg_dump" in result.stderr
    assert not (tmp_path / "b.db").exists()


def test_refuses_to_overwrite_or_to_create_a_database(tmp_path: Path) -> None:
    source = tmp_path / "passgate.db"
    url = f"sqlite:///{source}"
    assert passgate("db", "upgrade", "--database-url", url).returncode == 0
    target = tmp_path / "existing.db"
    target.write_bytes(b"keep me")

    refused = passgate("db", "backup", str(target), "--database-url", url)
    assert refused.returncode == 1
    assert "exists" in refused.stderr
    assert target.read_bytes() == b"keep me"

    missing = tmp_path / "typo.db"
    result = passgate(
        "db", "backup", str(tmp_path / "b.db"), "--database-url", f"sqlite:///{missing}"
    )
    assert result.returncode == 2
    assert "no database at" in result.stderr
    assert not missing.exists()
    assert sorted(os.listdir(tmp_path)) == ["existing.db", "passgate.db"]
