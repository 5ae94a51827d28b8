"""Migration 0006 (cascading foreign keys) on both databases: a 0005 database full of rows,
orphans of every kind among them, comes out with every other row as it was, its orphans
mended and reported, and deletes that cascade from a tenant, a user or an authenticator."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from alembic import command
from sqlalchemy import inspect, text

from passgate.server.store.database import create_engine, sqlite_path
from passgate.server.store.migrate import alembic_config, current_revision, upgrade
from tests.raw_database import fresh_database_url

__all__ = ["fresh_database_url"]

NOW = "2026-11-30 10:00:00"
TABLES = (
    "tenants",
    "users",
    "authenticators",
    "passkey_credentials",
    "push_devices",
    "actions",
    "push_challenges",
    "audit_events",
)
KEYS = {"users": "tenant_id, user_id", "passkey_credentials": "authenticator_id"}
REBUILT = ("users", "authenticators", "actions", "passkey_credentials")

# (name, table, columns, referred table, referred columns) the database must have at 0006.
FOREIGN_KEYS = {
    ("users", ("tenant_id",), "tenants", ("id",)),
    ("authenticators", ("tenant_id", "user_id"), "users", ("tenant_id", "user_id")),
    ("actions", ("tenant_id", "user_id"), "users", ("tenant_id", "user_id")),
    ("passkey_credentials", ("authenticator_id",), "authenticators", ("id",)),
    # Declared by 0003 already.
    ("push_devices", ("id",), "authenticators", ("id",)),
    ("push_challenges", ("action_id",), "actions", ("id",)),
}

# The rows the migration deletes: of a missing tenant, or of a missing authenticator/action.
ORPHANS: dict[str, set[tuple[str, ...]]] = {
    "users": {("tx", "zed")},
    "authenticators": {("a-zed",), ("a-tx-nobody",)},
    "actions": {("act-tx",)},
    "passkey_credentials": {("a-missing",)},
    "push_devices": {("a-zed",), ("a-gone",)},
    "push_challenges": {("pc-tx",), ("pc-gone",)},
}
# The users it restores: an authenticator or an action names them in a tenant that exists.
RESTORED_USERS = {("t1", "ghost"), ("t1", "phantom")}
FIXES = {
    "users": {"deleted": 1, "restored": 2},
    "authenticators": {"deleted": 2, "userRestored": 1},
    "actions": {"deleted": 1, "userRestored": 2},
    "passkey_credentials": {"deleted": 1},
    "push_devices": {"deleted": 2},
    "push_challenges": {"deleted": 2},
}


def _seed(blob: Any) -> list[str]:
    """Tenants t1 and t2 (tx is gone), their users, authenticators and actions, and orphans of
    every kind. `blob(hex)` is the database's literal for bytes."""

    def tenant(id: str) -> str:
        return (
            "INSERT INTO tenants (id, name, secret_key_hash, secret_key_hint, rp_id, rp_name,"
            " origins, token_lifetime_seconds, signing_key_id, signing_private_key, settings,"
            f" created_at, updated_at) VALUES ('{id}', 'Tenant {id}', 'hash-{id}', 'sk_...{id}',"
            f" '{id}.example', 'RP {id}', '[\"https://{id}.example\"]', 600, 'kid-{id}',"
            f" 'sealed-{id}', '{{}}', '{NOW}', '{NOW}')"
        )

    def user(tenant: str, id: str, handle: str) -> str:
        return (
            "INSERT INTO users (tenant_id, user_id, handle, email, email_verified, phone_number,"
            " phone_number_verified, username, display_name, custom, locale, created_at,"
            f" updated_at) VALUES ('{tenant}', '{id}', '{handle}', '{id}@example.com', true,"
            f" NULL, false, '{id}', 'User {id}', '{{\"tier\": \"gold\"}}', 'en', '{NOW}',"
            f" '{NOW}')"
        )

    def authenticator(id: str, tenant: str, user: str, method: str) -> str:
        return (
            "INSERT INTO authenticators (id, tenant_id, user_id, verification_method, email,"
            " is_default, created_at, verified_at) VALUES"
            f" ('{id}', '{tenant}', '{user}', '{method}', '{user}@example.com', true, '{NOW}',"
            f" '{NOW}')"
        )

    def credential(authenticator: str, tenant: str, user: str) -> str:
        return (
            "INSERT INTO passkey_credentials (authenticator_id, tenant_id, user_id,"
            " credential_id, public_key, sign_count, aaguid, attestation_format, device_type,"
            " backed_up, transports, name, public_key_algorithm, attestation_verified) VALUES"
            f" ('{authenticator}', '{tenant}', '{user}', 'cred-{authenticator}', {blob('a501')},"
            " 7, '00000000-0000-0000-0000-000000000000', 'none', 'multiDevice', true,"
            " '[\"internal\", \"hybrid\"]', 'Laptop', -7, false)"
        )

    def device(id: str, tenant: str, user: str) -> str:
        return (
            "INSERT INTO push_devices (id, tenant_id, user_id, public_key, device_name,"
            f" device_platform) VALUES ('{id}', '{tenant}', '{user}', 'key-{id}', 'Phone',"
            " 'ios')"
        )

    def action(id: str, tenant: str, user: str) -> str:
        return (
            "INSERT INTO actions (id, tenant_id, user_id, action_code, idempotency_key, state,"
            " state_updated_at, created_at, updated_at, custom, origin) VALUES"
            f" ('{id}', '{tenant}', '{user}', 'signIn', 'key-{id}', 'CHALLENGE_REQUIRED',"
            f" '{NOW}', '{NOW}', '{NOW}', '{{\"amount\": 5}}', 'server')"
        )

    def challenge(id: str, tenant: str, user: str, action: str) -> str:
        return (
            "INSERT INTO push_challenges (id, tenant_id, user_id, action_id, state, created_at,"
            f" expires_at) VALUES ('{id}', '{tenant}', '{user}', '{action}', 'pending',"
            f" '{NOW}', '2026-11-30 11:00:00')"
        )

    def event(id: str, tenant: str, target: str) -> str:
        return (
            "INSERT INTO audit_events (id, occurred_at, actor_type, actor_id, action,"
            f" target_type, target_id, tenant_id, details) VALUES ('{id}', '{NOW}', 'api',"
            f" '{tenant}', 'user.updated', 'user', '{target}', '{tenant}',"
            ' \'{"email": "changed"}\')'
        )

    return [
        tenant("t1"),
        tenant("t2"),
        user("t1", "alice", "00000000-0000-4000-8000-00000000000a"),
        user("t1", "bob", "00000000-0000-4000-8000-00000000000b"),
        user("t2", "carol", "00000000-0000-4000-8000-00000000000c"),
        user("tx", "zed", "00000000-0000-4000-8000-00000000000d"),
        authenticator("a-alice-pk", "t1", "alice", "PASSKEY"),
        authenticator("a-alice-push", "t1", "alice", "PUSH"),
        authenticator("a-bob-email", "t1", "bob", "EMAIL_OTP"),
        authenticator("a-carol-pk", "t2", "carol", "PASSKEY"),
        authenticator("a-ghost", "t1", "ghost", "EMAIL_OTP"),
        authenticator("a-zed", "tx", "zed", "PUSH"),
        authenticator("a-tx-nobody", "tx", "nobody", "EMAIL_OTP"),
        credential("a-alice-pk", "t1", "alice"),
        credential("a-carol-pk", "t2", "carol"),
        credential("a-missing", "t1", "alice"),
        device("a-alice-push", "t1", "alice"),
        device("a-zed", "tx", "zed"),
        device("a-gone", "t1", "bob"),
        action("act-alice", "t1", "alice"),
        action("act-bob", "t1", "bob"),
        action("act-carol", "t2", "carol"),
        action("act-ghost", "t1", "ghost"),
        action("act-phantom", "t1", "phantom"),
        action("act-tx", "tx", "zed"),
        challenge("pc-alice", "t1", "alice", "act-alice"),
        challenge("pc-carol", "t2", "carol", "act-carol"),
        challenge("pc-tx", "tx", "zed", "act-tx"),
        challenge("pc-gone", "t1", "bob", "act-gone"),
        event("ev-alice", "t1", "alice"),
        event("ev-zed", "tx", "zed"),
    ]


def seed(database_url: str) -> None:
    """Write the rows as they might be found in an old database: foreign keys not enforced,
    as on an SQLite connection that never turned them on."""
    path = sqlite_path(database_url)
    if path is not None:
        connection = sqlite3.connect(path)
        try:
            for statement in _seed(lambda hex: f"X'{hex}'"):
                connection.execute(statement)
            connection.commit()
        finally:
            connection.close()
        return

    async def postgres() -> None:
        connection = await asyncpg.connect(database_url, timeout=5)
        try:
            async with connection.transaction():
                await connection.execute("SET LOCAL session_replication_role = replica")
                await connection.execute("SET LOCAL timezone = 'UTC'")
                for statement in _seed(lambda hex: f"decode('{hex}', 'hex')"):
                    await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(postgres())


def run(database_url: str, *statements: str) -> list[int]:
    """Each statement in one transaction on Passgate's own engine; their row counts."""

    async def go() -> list[int]:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                return [(await connection.execute(text(s))).rowcount for s in statements]
        finally:
            await engine.dispose()

    return asyncio.run(go())


Rows = dict[str, dict[tuple[Any, ...], dict[str, Any]]]


def rows(database_url: str) -> Rows:
    """Every row of the tables above (column: value), by primary key."""

    async def go() -> Rows:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                found: Rows = {}
                for table in TABLES:
                    key = KEYS.get(table, "id").split(", ")
                    result = await connection.execute(text(f"SELECT * FROM {table}"))
                    found[table] = {
                        tuple(row._mapping[k] for k in key): dict(row._mapping) for row in result
                    }
                return found
        finally:
            await engine.dispose()

    return asyncio.run(go())


def schema(database_url: str) -> dict[str, Any]:
    """Foreign keys (with their ON DELETE) and indexes of the tables, as reflected."""

    def reflect(sync: Any) -> dict[str, Any]:
        inspector = inspect(sync)
        keys = set()
        indexes = {}
        for table in TABLES:
            for fk in inspector.get_foreign_keys(table):
                ondelete = (fk.get("options") or {}).get("ondelete")
                keys.add(
                    (
                        table,
                        tuple(fk["constrained_columns"]),
                        fk["referred_table"],
                        tuple(fk["referred_columns"]),
                        ondelete.upper() if ondelete else None,
                    )
                )
            indexes[table] = sorted(
                (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                for ix in inspector.get_indexes(table)
            )
            indexes[table + " unique"] = sorted(
                tuple(uc["column_names"]) for uc in inspector.get_unique_constraints(table)
            )
            indexes[table + " key"] = inspector.get_pk_constraint(table)["constrained_columns"]
        return {"foreign_keys": keys, "indexes": indexes}

    async def go() -> dict[str, Any]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(reflect)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def downgrade(database_url: str, revision: str) -> None:
    async def go() -> None:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(
                    lambda sync: command.downgrade(alembic_config(sync), revision)
                )
        finally:
            await engine.dispose()

    asyncio.run(go())


def foreign_key_check(database_url: str) -> list[Any]:
    path = sqlite_path(database_url)
    assert path is not None
    connection = sqlite3.connect(path)
    try:
        return connection.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        connection.close()


def orphan_reports(database_url: str) -> dict[str, dict[str, Any]]:
    reports = {}
    for event in rows(database_url)["audit_events"].values():
        if event["action"] != "migration.orphans":
            continue
        who = (event["actor_type"], event["actor_id"], event["target_type"], event["tenant_id"])
        assert who == ("system", "migration 0006", "table", None)
        details = event["details"]
        details = json.loads(details) if isinstance(details, str) else details
        table = event["target_id"]
        assert details["table"] == table and table not in reports
        reports[table] = {key: value for key, value in details.items() if key != "table"}
    return reports


@pytest.fixture
def at_0005(fresh_database_url: str) -> Iterator[str]:
    """A database at 0005 holding the rows of `_seed`, orphans included."""
    asyncio.run(upgrade(fresh_database_url, "0005"))
    seed(fresh_database_url)
    yield fresh_database_url


def test_orphans_are_mended_and_reported_and_every_other_row_is_kept(
    at_0005: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = rows(at_0005)
    old_schema = schema(at_0005)
    with caplog.at_level(logging.INFO, logger="passgate.migrations"):
        asyncio.run(upgrade(at_0005, "0006"))
    after = rows(at_0005)
    assert asyncio.run(current_revision(at_0005)) == "0006"

    for table in TABLES:
        orphans = ORPHANS.get(table, set())
        kept = {key: value for key, value in before[table].items() if key not in orphans}
        now = {key: value for key, value in after[table].items() if key not in RESTORED_USERS}
        if table == "audit_events":
            now = {k: v for k, v in now.items() if v["action"] != "migration.orphans"}
        assert now == kept, table

    for key in RESTORED_USERS:
        user = after["users"][key]
        assert str(uuid.UUID(user["handle"])) == user["handle"]
        assert not user["email_verified"] and not user["phone_number_verified"]
        assert user["email"] is user["username"] is user["custom"] is None
    handles = [user["handle"] for user in after["users"].values()]
    assert len(set(handles)) == len(handles)

    assert orphan_reports(at_0005) == FIXES
    logged = [r.getMessage() for r in caplog.records if r.name == "passgate.migrations"]
    assert "migration 0006: orphans in users: deleted 1, restored 2" in logged
    assert "migration 0006: orphans in push_challenges: deleted 2" in logged
    assert len(logged) == len(FIXES)

    new_schema = schema(at_0005)
    assert new_schema["indexes"] == old_schema["indexes"]
    assert {fk[:4] for fk in new_schema["foreign_keys"]} == FOREIGN_KEYS
    assert {fk[4] for fk in new_schema["foreign_keys"]} == {"CASCADE"}
    if sqlite_path(at_0005) is not None:
        assert foreign_key_check(at_0005) == []


def owners(found: Rows, table: str) -> set[tuple[str, str]]:
    return {(row["tenant_id"], row["user_id"]) for row in found[table].values()}


def test_one_delete_takes_everything_below_it_and_no_audit_event(at_0005: str) -> None:
    asyncio.run(upgrade(at_0005, "head"))
    start = rows(at_0005)

    # An authenticator: its push device or passkey credential goes with it, nothing else.
    assert run(at_0005, "DELETE FROM authenticators WHERE id = 'a-alice-push'") == [1]
    assert run(at_0005, "DELETE FROM authenticators WHERE id = 'a-carol-pk'") == [1]
    found = rows(at_0005)
    assert set(start["push_devices"]) - set(found["push_devices"]) == {("a-alice-push",)}
    assert set(start["passkey_credentials"]) - set(found["passkey_credentials"]) == {
        ("a-carol-pk",)
    }
    for table in ("users", "actions", "push_challenges", "audit_events"):
        assert found[table] == start[table], table

    # A user: authenticators, credentials, actions and push challenges in one statement.
    deleted = run(at_0005, "DELETE FROM users WHERE tenant_id = 't1' AND user_id = 'alice'")
    assert deleted == [1]
    found = rows(at_0005)
    for table in ("authenticators", "passkey_credentials", "push_devices", "actions"):
        assert ("t1", "alice") not in owners(found, table), table
    assert set(found["users"]) == {
        ("t1", "bob"),
        ("t1", "ghost"),
        ("t1", "phantom"),
        ("t2", "carol"),
    }
    assert set(found["authenticators"]) == {("a-bob-email",), ("a-ghost",)}
    assert set(found["actions"]) == {("act-bob",), ("act-carol",), ("act-ghost",), ("act-phantom",)}
    assert set(found["push_challenges"]) == {("pc-carol",)}
    assert found["passkey_credentials"] == {} and found["push_devices"] == {}
    # Audit events about alice stay.
    assert found["audit_events"] == start["audit_events"]
    assert found["audit_events"][("ev-alice",)]["target_id"] == "alice"

    # A tenant: its users and everything below them.
    assert run(at_0005, "DELETE FROM tenants WHERE id = 't1'") == [1]
    found = rows(at_0005)
    assert set(found["users"]) == {("t2", "carol")}
    assert found["authenticators"] == {}
    assert set(found["actions"]) == {("act-carol",)}
    assert set(found["push_challenges"]) == {("pc-carol",)}
    assert found["actions"][("act-carol",)] == start["actions"][("act-carol",)]
    assert found["audit_events"] == start["audit_events"]
    if sqlite_path(at_0005) is not None:
        assert foreign_key_check(at_0005) == []


def test_downgrade_drops_the_new_keys_and_upgrade_adds_them_again(at_0005: str) -> None:
    old_schema = schema(at_0005)
    asyncio.run(upgrade(at_0005, "0006"))
    migrated = rows(at_0005)
    new_schema = schema(at_0005)

    downgrade(at_0005, "0005")
    assert asyncio.run(current_revision(at_0005)) == "0005"
    assert schema(at_0005) == old_schema
    # Rebuilding users, authenticators and actions on SQLite deletes nothing below them.
    assert rows(at_0005) == migrated

    asyncio.run(upgrade(at_0005, "0006"))
    assert schema(at_0005) == new_schema
    assert rows(at_0005) == migrated  # nothing left to mend: no second report
    if sqlite_path(at_0005) is not None:
        assert foreign_key_check(at_0005) == []
