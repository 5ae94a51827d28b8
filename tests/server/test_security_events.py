"""`audit.security_event`: what Passgate notices goes to the audit log with actor "system",
in the caller's transaction or in one of its own."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from passgate.server.services import audit
from passgate.server.store.db import Db
from tests.live_server import LiveServer, Tenant


def test_security_events_are_audited_with_actor_system(server: LiveServer, tenant: Tenant) -> None:
    async def in_the_request(db: Db) -> None:
        details = {"credentialId": "abc", "stored": 7, "presented": 3}
        await audit.security_event(db, tenant.id, audit.SIGN_COUNT_REGRESSED, details)

    async def on_its_own(db: Db) -> None:
        engine = server.app.state.engines.write
        assert isinstance(engine, AsyncEngine)
        await audit.security_event(
            engine, tenant.id, audit.ORIGIN_REFUSED, {"origin": "https://evil.example"}
        )

    server.run(in_the_request)
    server.run(on_its_own)

    async def listed(db: Db) -> list[tuple[str, str, str | None]]:
        page = await audit.list_events(db, tenant_id=tenant.id, action_prefix="security.")
        return [(event.action, event.actor_type, event.actor_id) for event in page.events]

    assert server.run(listed) == [
        (audit.ORIGIN_REFUSED, "system", audit.SYSTEM),
        (audit.SIGN_COUNT_REGRESSED, "system", audit.SYSTEM),
    ]
