"""Configuration Passgate cannot run with is refused at once, on one line that says what to
fix, with exit code 2, instead of being accepted and failing later (or with a traceback)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from passgate.server.store.database import async_url
from tests.cli.test_cli import passgate


def assert_config_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.startswith("passgate: error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def p8(curve: ec.EllipticCurve) -> str:
    return (
        ec.generate_private_key(curve)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'config.db'}"


def test_an_invalid_apns_key_is_refused_when_it_is_set(sqlite_url: str, tmp_path: Path) -> None:
    created = passgate(
        "tenant", "create", "--name", "Shop", "--rp-id", "shop.example",
        "--database-url", sqlite_url, "--json",
    )  # fmt: skip
    tenant_id = json.loads(created.stdout)["tenantId"]
    keys = {
        "garbage.p8": "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
        "empty.p8": "",
        "p384.p8": p8(ec.SECP384R1()),
        "good.p8": p8(ec.SECP256R1()),
    }
    for name, text in keys.items():
        (tmp_path / name).write_text(text)

    def set_key(name: str) -> subprocess.CompletedProcess[str]:
        return passgate(
            "tenant", "update", tenant_id, "--apns-key-file", str(tmp_path / name),
            "--apns-key-id", "KEY1234567", "--apns-team-id", "TEAM123456",
            "--apns-bundle-id", "com.shop.app", "--database-url", sqlite_url, "--json",
        )  # fmt: skip

    assert_config_error(set_key("garbage.p8"), "garbage.p8", "not a PEM private key", ".p8")
    assert_config_error(set_key("empty.p8"), "not a PEM private key")
    assert_config_error(set_key("p384.p8"), "not a P-256 (ES256) key")
    shown = passgate("tenant", "update", tenant_id, "--database-url", sqlite_url, "--json")
    assert json.loads(shown.stdout)["APNs"] == "not configured"
    accepted = set_key("good.p8")
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout)["APNs"] == "team TEAM123456, com.shop.app"


def test_a_public_url_that_is_not_one_is_one_line_at_serve(sqlite_url: str) -> None:
    result = passgate(
        "serve", "--port", "1", "--database-url", sqlite_url,
        env={"PASSGATE_PUBLIC_URL": "not a url"},
    )  # fmt: skip
    assert_config_error(
        result, "PASSGATE_PUBLIC_URL: 'not a url' is not an http(s) URL such as https://"
    )
    assert "Value error" not in result.stderr


def test_a_read_only_command_refuses_a_missing_sqlite_database(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    url = f"sqlite:///{missing}"
    for command in (["tenant", "list"], ["tenant", "show", "t-1"], ["admin", "list"]):
        result = passgate(*command, "--database-url", url)
        assert_config_error(result, f"no database at {missing}", "--database-url")
    relative = passgate("tenant", "list", env={"PASSGATE_DATABASE_URL": "sqlite:///typo/x.db"})
    assert_config_error(relative, "no database at typo/x.db", "PASSGATE_DATABASE_URL")
    # Nothing was made: no directories, no empty database.
    assert not (tmp_path / "no").exists()
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_redis_is_one_line_at_serve(sqlite_url: str) -> None:
    result = passgate(
        "serve", "--port", "1", "--database-url", sqlite_url,
        env={"PASSGATE_REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"},
    )  # fmt: skip
    assert_config_error(result, "cannot reach Redis at 127.0.0.1:1", "PASSGATE_REDIS_URL")
    assert "hunter2" not in result.stderr


def test_a_bad_database_url_is_a_configuration_error() -> None:
    result = passgate("tenant", "list", "--database-url", "mysql://db/passgate")
    assert_config_error(result, "unsupported database 'mysql'", "--database-url")


def test_a_database_a_newer_version_migrated_is_refused_in_one_line(
    sqlite_url: str, tmp_path: Path
) -> None:
    """An older Passgate (a rollback of the code without restoring the database) meets a
    database with a migration it does not have: one line that says so, not alembic's
    traceback, and nothing changed."""
    assert passgate("db", "upgrade", "--database-url", sqlite_url).returncode == 0
    path = tmp_path / "config.db"
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    result = passgate("db", "upgrade", "--database-url", sqlite_url)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "'9999_from_the_future'" in result.stderr and "newer version" in result.stderr
    with sqlite3.connect(path) as connection:
        (stored,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert stored == "9999_from_the_future"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/db?sslmode=verify-full", "ssl=verify-full"),
        ("postgresql://u@h/db?ssl=require", "ssl=require"),
        ("postgresql://u@h/db?sslmode=require&ssl=require", "ssl=require"),
    ],
)
def test_libpq_sslmode_is_read_as_asyncpg_ssl(given: str, expected: str) -> None:
    url = async_url(given)
    assert url.drivername == "postgresql+asyncpg"
    assert url.render_as_string().endswith(f"?{expected}")


def test_two_different_tls_modes_are_refused() -> None:
    result = passgate(
        "db", "upgrade", "--database-url", "postgresql://u@127.0.0.1/db?ssl=require&sslmode=disable",
    )  # fmt: skip
    assert_config_error(result, "sslmode= or ssl=")
