"""A server of the delivery tests' own, over a database of their own (SQLite, and PostgreSQL
when reachable), with a fast outbox: retries within a second, three tries before a message
is given up."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from passgate.server.services import tenants
from passgate.server.services.delivery import Messenger
from passgate.server.services.enums import VerificationMethod
from passgate.server.store import outbox as outbox_store
from passgate.server.store.db import Db
from passgate.server.store.outbox import OutboxRow
from passgate.server.store.tables import AuditEvent, OutboxMessage
from tests.conftest import PATIENT_DATABASE
from tests.fresh_postgres import fresh_postgres_database
from tests.live_server import LiveServer, Tenant

FAST = {
    "outbox_poll_seconds": 0.2,
    "outbox_retry_base_seconds": 0.1,
    "outbox_retry_max_seconds": 0.3,
    "outbox_max_attempts": 3,
    "outbox_lease_seconds": 10,
    "prune_interval_seconds": 0,
    "push_delivery_timeout_seconds": 5,
    **PATIENT_DATABASE,
}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def delivery_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('delivery') / 'passgate.db'}"
        return
    with fresh_postgres_database("passgate_delivery") as url:
        yield url


@pytest.fixture(scope="module")
def live(delivery_url: str) -> Iterator[LiveServer]:
    server = LiveServer(delivery_url, **FAST).start()
    yield server
    server.stop()


@pytest.fixture
def shop(live: LiveServer) -> Tenant:
    """A tenant whose name users see in messages."""

    async def work(db: Db) -> Tenant:
        tenant, secret_key = await tenants.create_tenant(
            db, name="shop", rp_id="localhost", rp_name="Shop & Co"
        )
        return Tenant(tenant.id, secret_key, "localhost")

    return live.run(work)


def messenger(server: LiveServer) -> Messenger:
    found: Messenger = server.app.state.messenger
    return found


def send_code(
    server: LiveServer,
    tenant_id: str,
    destination: str,
    code: str = "123456",
    method: VerificationMethod = VerificationMethod.EMAIL_OTP,
    locale: str | None = None,
    **extra: Any,
) -> None:
    """What the one-time code methods do: enqueue a code in a transaction of theirs."""

    async def work(db: Db) -> None:
        tenant = await tenants.get_tenant(db, tenant_id)
        await messenger(server).send_code(
            db, tenant, method=method, destination=destination, code=code, locale=locale, **extra
        )

    server.run(work)


def outbox_rows(server: LiveServer, tenant_id: str) -> list[OutboxRow]:
    """The tenant's outbox messages, oldest first."""

    async def work(db: Db) -> list[OutboxRow]:
        query = (
            select(OutboxMessage.id)
            .where(OutboxMessage.tenant_id == tenant_id)
            .order_by(OutboxMessage.created_at)
        )
        found = [await outbox_store.get(db, row["id"]) for row in await db.all(query)]
        return [row for row in found if row is not None]

    return server.run(work)


def audit_events(server: LiveServer, tenant_id: str, action: str) -> list[dict[str, Any]]:
    """The details of the tenant's audit events named `action`, with their target id."""

    async def work(db: Db) -> list[dict[str, Any]]:
        query = (
            select(AuditEvent.details, AuditEvent.target_id)
            .where(AuditEvent.tenant_id == tenant_id, AuditEvent.action == action)
            .order_by(AuditEvent.occurred_at)
        )
        rows = await db.all(query)
        return [{"targetId": row["target_id"], **(row["details"] or {})} for row in rows]

    return server.run(work)


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
