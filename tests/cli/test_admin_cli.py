"""`passgate admin ...` through the command's own entry point (`passgate.cli.main`, in this
process for speed: a dozen commands), against a real database."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from passgate.cli import main
from passgate.server.services import audit, tenants
from passgate.server.services.push import settings as push_settings
from passgate.server.store.database import create_engine
from passgate.server.store.db import Engines


@pytest.fixture
def passgate(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        with monkeypatch.context() as patch:
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            code = main(list(args))
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return run


def audit_actions(database_url: str) -> list[tuple[str, str | None, str | None]]:
    async def read() -> list[tuple[str, str | None, str | None]]:
        engine = create_engine(database_url)
        try:
            async with Engines(engine).transaction() as db:
                page = await audit.list_events(db)
                return [(e.action, e.target_id, e.source) for e in reversed(page.events)]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_create_list_link_remove(passgate: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'admins.db'}"
    created = passgate("admin", "create", "--email", "Ops@Example.com", "--database-url", url)
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    assert lines[0] == "Enrolment link for ops@example.com (works once, for 15 minutes):"
    assert lines[1].startswith("http://localhost:8000/admin/enrol?token=")

    again = passgate("admin", "create", "--email", "ops@example.com", "--database-url", url)
    assert again.returncode != 0
    assert again.stderr.strip() == "passgate: error: there is already an admin ops@example.com"

    public = {"PASSGATE_PUBLIC_URL": "https://auth.example.com/", "PASSGATE_DATABASE_URL": url}
    link = passgate("admin", "link", "--email", "ops@example.com", env=public)
    assert link.returncode == 0, link.stderr
    token = link.stdout.splitlines()[1].removeprefix("https://auth.example.com/admin/enrol?token=")
    assert len(token) == 43 and token not in created.stdout

    listed = passgate("admin", "list", "--json", "--database-url", url)
    assert json.loads(listed.stdout)[0]["email"] == "ops@example.com"
    assert json.loads(listed.stdout)[0]["passkeys"] == 0

    removed = passgate("admin", "remove", "--email", "ops@example.com", "--database-url", url)
    assert removed.returncode == 0 and removed.stdout.strip() == "removed ops@example.com"
    assert json.loads(passgate("admin", "list", "--json", "--database-url", url).stdout) == []
    missing = passgate("admin", "remove", "--email", "ops@example.com", "--database-url", url)
    assert missing.stderr.strip() == "passgate: error: no admin 'ops@example.com'"
    bad = passgate("admin", "create", "--email", "not-an-email", "--database-url", url)
    assert "is not an email address" in bad.stderr

    assert audit_actions(url) == [
        ("admin.created", "ops@example.com", "cli"),
        ("admin.link.created", "ops@example.com", "cli"),
        ("admin.removed", "ops@example.com", "cli"),
    ]


def test_tenant_changes_from_the_cli_are_audited(passgate: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tenants.db'}"
    created = passgate(
        "tenant",
        "create",
        "--name",
        "Shop",
        "--rp-id",
        "shop.example",
        "--database-url",
        url,
        "--json",
    )
    tenant_id = json.loads(created.stdout)["tenantId"]
    passgate(
        "tenant", "origins", tenant_id, "--add", "https://www.shop.example", "--database-url", url
    )
    passgate(
        "tenant", "set-action", tenant_id, "signIn", "--outcome", "ALLOW", "--database-url", url
    )
    passgate("tenant", "update", tenant_id, "--push-expiry", "60", "--database-url", url)
    passgate(
        "tenant", "passkeys", tenant_id, "--ios-app", "ABCDE12345.shop.app", "--database-url", url
    )
    actions = audit_actions(url)
    assert [action for action, _, _ in actions] == [
        "tenant.created",
        "tenant.updated",
        "tenant.action_outcome.changed",
        "tenant.push.changed",
        "tenant.passkeys.changed",
    ]
    assert {(target, source) for _, target, source in actions} == {(tenant_id, "cli")}


def test_cli_rotation_ends_a_console_rotations_grace_period(passgate: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'webhook.db'}"
    created = passgate(
        "tenant",
        "create",
        "--name",
        "Hooks",
        "--rp-id",
        "hooks.example",
        "--database-url",
        url,
        "--json",
    )
    tenant_id = json.loads(created.stdout)["tenantId"]
    passgate(
        "tenant",
        "update",
        tenant_id,
        "--webhook-url",
        "https://hooks.example/push",
        "--database-url",
        url,
    )

    async def settings(rotate: bool) -> push_settings.PushSettings:
        engine = create_engine(url)
        try:
            async with Engines(engine).transaction() as db:
                if rotate:
                    return await push_settings.rotate_webhook_secret(
                        db, tenant_id, grace_seconds=3600
                    )
                return push_settings.push_settings(await tenants.get_tenant(db, tenant_id))
        finally:
            await engine.dispose()

    in_grace = asyncio.run(settings(rotate=True))
    assert len(in_grace.signing_secrets()) == 2
    rotated = passgate(
        "tenant", "update", tenant_id, "--rotate-webhook-secret", "--database-url", url
    )
    assert rotated.returncode == 0, rotated.stderr
    after = asyncio.run(settings(rotate=False))
    assert after.webhook_secret not in (None, in_grace.webhook_secret)
    assert after.signing_secrets() == [after.webhook_secret]
