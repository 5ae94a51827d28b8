"""The tenant's recovery methods in the console (docs/recovery.md): shown ticked as they are
(EMAIL_OTP unless set), saved and audited, a bad method refused inline with nothing saved."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from passgate.server.services import recovery, tenants
from passgate.server.store.db import Db
from tests.console.helpers import Console, alerts, audit_events, enrolled_console
from tests.live_server import LiveServer, Tenant

TICKED = re.compile(r'name="method" value="([A-Z_]+)" checked')


@pytest.fixture
def console(server: LiveServer, tmp_path: Path) -> Iterator[Console]:
    made = enrolled_console(server, tmp_path, f"recovery-{tmp_path.name}@example.com")
    yield made
    made.close()


def methods(server: LiveServer, tenant_id: str) -> list[str]:
    async def work(db: Db) -> list[str]:
        return [m.value for m in recovery.methods(await tenants.get_tenant(db, tenant_id))]

    return server.run(work)


def test_recovery_methods_are_set_in_the_console(
    server: LiveServer, console: Console, tenant: Tenant
) -> None:
    path = f"/admin/tenants/{tenant.id}"
    page = console.get(path)
    assert page.status_code == 200
    assert TICKED.findall(page.text) == ["EMAIL_OTP"]

    saved = console.post(path + "/recovery", {"method": ["EMAIL_OTP", "RECOVERY_CODE"]})  # type: ignore[dict-item]
    assert saved.status_code == 303
    assert saved.headers["location"] == f"{path}?saved=recovery#recovery"
    assert methods(server, tenant.id) == ["EMAIL_OTP", "RECOVERY_CODE"]
    assert TICKED.findall(console.get(path).text) == ["EMAIL_OTP", "RECOVERY_CODE"]

    refused = console.post(path + "/recovery", {"method": ["SMS", "PUSH"]})  # type: ignore[dict-item]
    assert refused.status_code == 400
    assert "PUSH always lets a user add" in alerts(refused)[0]
    assert TICKED.findall(refused.text) == ["SMS"]  # what was ticked is kept
    assert methods(server, tenant.id) == ["EMAIL_OTP", "RECOVERY_CODE"]

    # None ticked: no recovery at all.
    assert console.post(path + "/recovery", {}).status_code == 303
    assert methods(server, tenant.id) == []
    changes = [
        event.details
        for event in audit_events(server, tenant_id=tenant.id)
        if event.action == recovery.CHANGED
    ]
    assert len(changes) == 2
