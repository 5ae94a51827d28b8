"""An authenticator app's secret under `passgate keys rotate-master`, run as an operator runs
it: a real `passgate serve` process and the `passgate` command on a database and data
directory of their own. The secret is counted and sealed again with the tenant's secrets, the
old key opens nothing afterwards, and the app's codes keep working on the running server and
after a restart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.cli.test_keys_cli import Operator, key_file_id, running_server
from tests.live_server import Tenant
from tests.raw_database import fresh_database_url, raw_text
from tests.totp.helpers import CodesClient

__all__ = ["fresh_database_url"]


def listening(url: str) -> str:
    """`url` once the server answers there: it logs its start-up before it binds its port."""
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/health", timeout=5)
            return url
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_rotate_master_keeps_authenticator_apps_working(
    fresh_database_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    host = Operator(fresh_database_url, data)
    created = json.loads(
        host.ok("tenant", "create", "--name", "Shop", "--rp-id", "localhost", "--json")
    )
    tenant = Tenant(created["tenantId"], created["secretKey"], "localhost")
    env = {"PASSGATE_DATABASE_URL": fresh_database_url, "PASSGATE_DATA_DIR": str(data)}
    old_id = key_file_id(data / "master.key")
    with (
        running_server(tmp_path, **env) as (url, _),
        CodesClient(f"{listening(url)}/v1", tenant) as codes,
    ):
        app, _ = codes.add_app("kim")
        # The tenant's signing key and the app's secret.
        assert host.status()["encryptedSecrets"] == {old_id: 2}

        rotated = host.ok("keys", "rotate-master")
        new_id = key_file_id(data / "master.key")
        assert f"2 secrets encrypted under master key {new_id} (was {old_id})" in rotated
        # Every stored secret, the app's included, is sealed under the new key (old copies
        # of rows may linger in an SQLite file's free pages until it is compacted).
        assert host.status()["encryptedSecrets"] == {new_id: 2}
        assert app.secret not in raw_text(fresh_database_url)

        # The running server opens the secret sealed under the new key.
        assert codes.sign_in_with(app, "kim")["isVerified"] is True

    # A host holding only the old key refuses, naming the key the database needs (the app's
    # secret included: the database holds nothing sealed under the old key any more).
    stale = host.run(
        "keys",
        "status",
        PASSGATE_MASTER_KEY=(data / f"master.key.{old_id}.old").read_text().strip(),
    )
    assert stale.returncode == 1 and new_id in stale.stderr

    with (
        running_server(tmp_path, **env) as (url, _),
        CodesClient(f"{listening(url)}/v1", tenant) as codes,
    ):
        assert codes.sign_in_with(app, "kim")["isVerified"] is True
