"""Pruning: `passgate db prune` and each server's background run delete what nobody can use
any more and keep everything live, over SQLite and PostgreSQL; audit events are never pruned."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from passgate.cli import main
from passgate.server.services import audit
from passgate.server.store.db import Db
from passgate.server.store.tables import (
    Action,
    Admin,
    AdminChallenge,
    AdminLink,
    AdminSession,
    AuditEvent,
    Base,
    PasskeyChallenge,
    PushChallenge,
    PushUsedNonce,
    RateLimitWindow,
    SpentChallenge,
    User,
    utcnow,
)
from tests.live_server import LiveServer, Tenant, insert_rows
from tests.raw_database import fresh_database_url

__all__ = ["fresh_database_url"]

HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def new_id() -> str:
    return str(uuid.uuid4())


def challenge(tenant: Tenant, expires: datetime) -> PasskeyChallenge:
    return PasskeyChallenge(
        id=new_id(),
        tenant_id=tenant.id,
        purpose="authentication",
        challenge=b"c" * 32,
        expires_at=expires,
    )


def spent(tenant: Tenant, kind: str, expires: datetime) -> SpentChallenge:
    """A used-up challenge's digest (a passkey challenge's or a push message's)."""
    return SpentChallenge(digest=new_id(), tenant_id=tenant.id, kind=kind, expires_at=expires)


def action(tenant: Tenant, state: str, changed: datetime, origin: str = "server") -> Action:
    return Action(
        id=new_id(),
        tenant_id=tenant.id,
        user_id="pruned-user",
        action_code="signIn",
        idempotency_key=new_id(),
        state=state,
        state_updated_at=changed,
        created_at=changed,
        updated_at=changed,
        origin=origin,
    )


class Rows:
    """One row of each kind, dead or live, added to the server's database."""

    def __init__(self, server: LiveServer, tenant: Tenant) -> None:
        now = utcnow()
        admin = Admin(id=new_id(), email=f"{new_id()}@example.com", handle=new_id())
        old_action = action(tenant, "CHALLENGE_SUCCEEDED", now - 100 * DAY)
        self.dead: list[Base] = [
            challenge(tenant, now - HOUR),
            PushUsedNonce(digest=new_id(), tenant_id=tenant.id, expires_at=now - HOUR),
            spent(tenant, "passkey", now - HOUR),
            spent(tenant, "push", now - HOUR),
            RateLimitWindow(bucket=f"test:{new_id()}", hits=3, expires_at=now - HOUR),
            AdminChallenge(
                id=new_id(),
                purpose="authentication",
                challenge=b"c",
                binding_hash="b" * 64,
                expires_at=now - HOUR,
            ),
            AdminLink(id=new_id(), admin_id=admin.id, token_hash=new_id(), expires_at=now - HOUR),
            AdminSession(
                id=new_id(), admin_id=admin.id, token_hash=new_id(), expires_at=now - HOUR
            ),
            AdminSession(
                id=new_id(),
                admin_id=admin.id,
                token_hash=new_id(),
                expires_at=now + HOUR,
                revoked_at=now - HOUR,
            ),
            # A client-made action whose challenge has long expired.
            action(tenant, "CHALLENGE_REQUIRED", now - 3 * HOUR, origin="client"),
            old_action,
            # Goes with its action.
            PushChallenge(
                id=new_id(),
                tenant_id=tenant.id,
                user_id="pruned-user",
                action_id=old_action.id,
                state="approved",
                created_at=now - 100 * DAY,
                expires_at=now - 100 * DAY,
            ),
        ]
        self.live: list[Base] = [
            admin,
            challenge(tenant, now + HOUR),
            # Expired a moment ago: still there, so a late caller hears "expired".
            challenge(tenant, now - timedelta(minutes=1)),
            PushUsedNonce(digest=new_id(), tenant_id=tenant.id, expires_at=now + HOUR),
            spent(tenant, "passkey", now + HOUR),
            # Expired a moment ago: kept for the grace (another process's clock may differ).
            spent(tenant, "push", now - timedelta(minutes=1)),
            RateLimitWindow(bucket=f"test:{new_id()}", hits=3, expires_at=now + HOUR),
            AdminLink(id=new_id(), admin_id=admin.id, token_hash=new_id(), expires_at=now + HOUR),
            AdminSession(
                id=new_id(), admin_id=admin.id, token_hash=new_id(), expires_at=now + HOUR
            ),
            action(tenant, "CHALLENGE_REQUIRED", now - timedelta(minutes=10), origin="client"),
            action(tenant, "CHALLENGE_REQUIRED", now - 3 * HOUR),
            action(tenant, "CHALLENGE_SUCCEEDED", now - 10 * DAY),
            # Waiting for a person, however old.
            action(tenant, "REVIEW_REQUIRED", now - 200 * DAY),
            AuditEvent(
                id=new_id(),
                occurred_at=now - 400 * DAY,
                actor_type="admin",
                action="tenant.created",
                tenant_id=tenant.id,
            ),
        ]
        self.server = server

        async def add(db: Db) -> None:
            # The actions' user first (actions refer to their user).
            await insert_rows(
                db,
                [
                    User(tenant_id=tenant.id, user_id="pruned-user", handle=new_id()),
                    admin,
                    *self.dead,
                    *self.live,
                ],
            )

        server.run(add)

    def present(self, rows: list[Base]) -> list[bool]:
        return present(self.server, rows)


def present(server: LiveServer, rows: list[Base]) -> list[bool]:
    """Whether each row is still in the database."""

    async def look(db: Db) -> list[bool]:
        found = []
        for row in rows:
            key = type(row).__mapper__.primary_key[0]
            query = select(key).where(key == getattr(row, key.name))
            found.append((await db.scalar(query)) is not None)
        return found

    return server.run(look)


def prune(database_url: str, capsys: pytest.CaptureFixture[str], **env: str) -> dict[str, int]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        code = main(["db", "prune", "--database-url", database_url, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    counts: dict[str, int] = json.loads(captured.out)
    return counts


def test_passgate_db_prune_deletes_dead_rows_and_keeps_live_ones(
    server: LiveServer, tenant: Tenant, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = Rows(server, tenant)
    counts = prune(database_url, capsys)
    assert rows.present(rows.dead) == [False] * len(rows.dead)
    assert rows.present(rows.live) == [True] * len(rows.live)
    # Each kind is counted (this database may hold other tests' dead rows as well).
    assert all(
        counts[kind] >= 1
        for kind in ("passkeyChallenges", "spentChallenges", "clientActions", "actions")
    )
    assert counts["adminSessions"] >= 2

    async def last_run(db: Db) -> Any:
        query = select(AuditEvent).where(AuditEvent.action == audit.PRUNED)
        return (await db.execute(query.order_by(AuditEvent.occurred_at.desc()).limit(1))).first()

    event = server.run(last_run)
    assert event is not None and event.actor_type == "system"
    assert event.details == {kind: count for kind, count in counts.items() if count}
    # Another run (or another process's) changes nothing that is live.
    prune(database_url, capsys)
    assert rows.present(rows.live) == [True] * len(rows.live)


def test_action_retention_is_configurable(
    server: LiveServer, tenant: Tenant, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now = utcnow()
    old = action(tenant, "CHALLENGE_FAILED", now - 40 * DAY)

    async def add(db: Db) -> None:
        await insert_rows(
            db, [User(tenant_id=tenant.id, user_id="pruned-user", handle=new_id()), old]
        )

    server.run(add)
    prune(database_url, capsys, PASSGATE_ACTION_RETENTION_DAYS="0")  # kept for ever
    assert present(server, [old]) == [True]
    prune(database_url, capsys, PASSGATE_ACTION_RETENTION_DAYS="60")
    assert present(server, [old]) == [True]
    prune(database_url, capsys, PASSGATE_ACTION_RETENTION_DAYS="30")
    assert present(server, [old]) == [False]


def test_a_server_prunes_in_the_background(fresh_database_url: str) -> None:
    """On a database of its own: servers take turns at pruning (one pass per interval across
    processes, by a lease row), so on the session's database another server's longer interval
    would decide when the next pass is due."""
    pruning = LiveServer(fresh_database_url, prune_interval_seconds=0.2).start()
    try:
        tenant = pruning.create_tenant(name="pruned")
        rows = Rows(pruning, tenant)
        deadline = time.monotonic() + 10
        while any(rows.present(rows.dead)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert rows.present(rows.dead) == [False] * len(rows.dead)
        assert rows.present(rows.live) == [True] * len(rows.live)
    finally:
        pruning.stop()
