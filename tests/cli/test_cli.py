"""The `passgate` command, run as a user runs it: a real process and a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.live_server import LiveServer

PASSGATE = [sys.executable, "-m", "passgate.cli"]


def passgate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PASSGATE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_tenant_create_list_show(sqlite_url: str) -> None:
    created = passgate(
        "tenant",
        "create",
        "--name",
        "Shop",
        "--rp-id",
        "shop.example",
        "--origin",
        "https://www.shop.example",
        "--database-url",
        sqlite_url,
        "--json",
    )
    assert created.returncode == 0, created.stderr
    tenant = json.loads(created.stdout)
    assert tenant["secretKey"].startswith("pg_sk_")
    assert tenant["origins"] == ["https://shop.example", "https://www.shop.example"]

    listed = passgate("tenant", "list", "--json", env={"PASSGATE_DATABASE_URL": sqlite_url})
    assert [t["tenantId"] for t in json.loads(listed.stdout)] == [tenant["tenantId"]]

    shown = passgate("tenant", "show", tenant["tenantId"], "--database-url", sqlite_url, "--json")
    assert json.loads(shown.stdout)["rpId"] == "shop.example"
    assert tenant["secretKey"] not in shown.stdout


def test_created_key_works_against_a_server(database_url: str, server: LiveServer) -> None:
    created = passgate(
        "tenant",
        "create",
        "--name",
        "cli",
        "--rp-id",
        "localhost",
        "--database-url",
        database_url,
        "--json",
    )
    assert created.returncode == 0, created.stderr
    secret_key = json.loads(created.stdout)["secretKey"]
    response = httpx.post(
        f"{server.api_url}/users/u/actions/signIn", json={}, auth=(secret_key, "")
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "args",
    [
        ["tenant", "create", "--name", "x"],
        ["tenant", "create", "--name", "x", "--rp-id", "https://bad.example"],
        ["tenant", "create", "--name", "x", "--rp-id", "ok.example", "--origin", "ftp://x"],
        ["tenant", "show", "no-such-tenant"],
        ["tenant", "set-action", "no-such-tenant", "signIn", "--outcome", "ALLOW"],
        ["tenant", "set-action", "t", "signIn", "--outcome", "MAYBE"],
        ["tenant", "list", "--database-url", "mysql://nobody@127.0.0.1/x"],
        ["tenant", "list", "--database-url", "postgresql://nobody@127.0.0.1:1/x"],
        ["serve", "--port", "99999"],
        ["serve", "--origin", "http://localhost:5173"],
        ["tenant", "origins", "no-such-tenant", "--add", "https://a.example"],
        ["no-such-command"],
    ],
)
def test_bad_arguments_get_one_line_and_nonzero_exit(sqlite_url: str, args: list[str]) -> None:
    result = passgate(*args, env={"PASSGATE_DATABASE_URL": sqlite_url})
    assert result.returncode != 0
    assert result.stderr.startswith("passgate: error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_bad_environment_setting_is_one_line(sqlite_url: str) -> None:
    result = passgate("serve", "--port", "1", env={"PASSGATE_MAX_BODY_BYTES": "10"})
    assert result.returncode == 2  # configuration: see tests/cli/test_config_errors.py
    assert result.stderr == (
        "passgate: error: PASSGATE_MAX_BODY_BYTES: Input should be greater than or equal to 1024\n"
    )


def test_tenant_origins_change_and_are_checked(sqlite_url: str) -> None:
    created = passgate(
        "tenant", "create", "--name", "Shop", "--rp-id", "shop.example",
        "--database-url", sqlite_url, "--json",
    )  # fmt: skip
    tenant_id = json.loads(created.stdout)["tenantId"]

    def origins(*options: str) -> subprocess.CompletedProcess[str]:
        return passgate(
            "tenant", "origins", tenant_id, *options, "--database-url", sqlite_url, "--json"
        )

    added = origins("--add", "HTTPS://App.Shop.Example:443/", "--add", "https://www.shop.example")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["origins"] == [
        "https://shop.example",
        "https://app.shop.example",
        "https://www.shop.example",
    ]
    removed = origins("--remove", "https://www.shop.example")
    assert json.loads(removed.stdout)["origins"] == [
        "https://shop.example",
        "https://app.shop.example",
    ]
    refusals = {
        "https://shop.example/login": "only scheme, host and port",
        "http://app.shop.example": "uses http",
        "https://other.example": "not a registrable suffix",
        "not an origin": "is not an origin",
    }
    for origin, reason in refusals.items():
        refused = origins("--add", origin)
        assert refused.returncode == 1
        assert reason in refused.stderr, refused.stderr
    # Nothing was half-saved by the refusals.
    shown = passgate("tenant", "show", tenant_id, "--database-url", sqlite_url, "--json")
    assert json.loads(shown.stdout)["origins"] == [
        "https://shop.example",
        "https://app.shop.example",
    ]
    # A public suffix can never be a relying party, nor a domain the origins are not under.
    assert "public suffix" in origins("--rp-id", "example").stderr
    assert "not a registrable suffix" in origins("--rp-id", "other.example").stderr
    moved = origins("--rp-id", "other.example", "--remove", "https://app.shop.example")
    assert json.loads(moved.stdout)["origins"] == ["https://other.example"]
    renamed = origins("--rp-name", "Shop Inc.")
    assert json.loads(renamed.stdout)["rpName"] == "Shop Inc."


def test_a_public_url_that_is_not_one_is_one_line(sqlite_url: str) -> None:
    for value in ("not a url", "https://auth.example.com/prefix"):
        result = passgate("serve", "--port", "1", env={"PASSGATE_PUBLIC_URL": value})
        assert result.returncode == 2
        assert result.stderr.startswith("passgate: error: PASSGATE_PUBLIC_URL: ")
        assert result.stderr.count("\n") == 1, result.stderr


def test_tenant_branding(sqlite_url: str) -> None:
    created = passgate(
        "tenant", "create", "--name", "Shop", "--rp-id", "shop.example",
        "--database-url", sqlite_url, "--json",
    )  # fmt: skip
    tenant_id = json.loads(created.stdout)["tenantId"]

    def branding(*options: str) -> subprocess.CompletedProcess[str]:
        return passgate("tenant", "branding", tenant_id, *options, "--database-url", sqlite_url)

    assert branding().stdout == "accent colour: default\n"
    assert branding("--accent-color", "#7A2E8F").stdout == "accent colour: #7a2e8f\n"
    refused = branding("--accent-color", "red")
    assert refused.returncode == 1 and "must be #rrggbb" in refused.stderr
    assert branding("--accent-color", "").stdout == "accent colour: default\n"


def test_set_action_checks_the_code(sqlite_url: str) -> None:
    created = passgate(
        "tenant",
        "create",
        "--name",
        "x",
        "--rp-id",
        "x.example",
        "--database-url",
        sqlite_url,
        "--json",
    )
    tenant_id = json.loads(created.stdout)["tenantId"]
    bad = passgate(
        "tenant",
        "set-action",
        tenant_id,
        "sign in",
        "--outcome",
        "ALLOW",
        "--database-url",
        sqlite_url,
    )
    assert bad.returncode == 1
    assert "letters, digits" in bad.stderr
    good = passgate(
        "tenant",
        "set-action",
        tenant_id,
        "signIn",
        "--outcome",
        "ALLOW",
        "--database-url",
        sqlite_url,
    )
    assert good.returncode == 0, good.stderr


def test_db_upgrade(sqlite_url: str) -> None:
    first = passgate("db", "upgrade", "--database-url", sqlite_url)
    again = passgate("db", "upgrade", "--database-url", sqlite_url)
    assert first.returncode == again.returncode == 0
    assert "up to date" in again.stdout


def test_unreadable_files_and_bad_settings_are_one_line(sqlite_url: str, tmp_path: Path) -> None:
    created = passgate(
        "tenant",
        "create",
        "--name",
        "x",
        "--rp-id",
        "x.example",
        "--database-url",
        sqlite_url,
        "--json",
    )
    tenant_id = json.loads(created.stdout)["tenantId"]
    (tmp_path / "account.json").write_text("not json")
    (tmp_path / "key.p8").write_text("-----BEGIN PRIVATE KEY-----")
    runs = [
        passgate(
            "tenant",
            "update",
            tenant_id,
            "--fcm-service-account",
            str(tmp_path / "account.json"),
            "--database-url",
            sqlite_url,
        ),
        passgate(
            "tenant",
            "update",
            tenant_id,
            "--apns-key-file",
            str(tmp_path / "key.p8"),
            "--database-url",
            sqlite_url,
        ),
        passgate(
            "tenant",
            "passkeys",
            tenant_id,
            "--attestation-root",
            f"packed={tmp_path / 'missing.pem'}",
            "--database-url",
            sqlite_url,
        ),
        passgate("serve", "--port", "1", env={"PASSGATE_PUSH_WEBHOOK_RETRY_DELAYS": "1,5"}),
    ]
    # Unusable files and settings are configuration errors (2); a refused change is 1.
    assert [result.returncode for result in runs] == [2, 2, 1, 2]
    for result in runs:
        assert result.stderr.startswith("passgate: error: ")
        assert result.stderr.count("\n") == 1, result.stderr
    assert "the APNs key is not a PEM private key" in runs[1].stderr
