"""Statements run through the driver directly (store/prepared.py) give what SQLAlchemy gives.

Each store function below runs twice on the same inline SQLite database: once with prepared
statements switched off (SQLAlchemy's own execution) and once with them on, after the
statement has been seen twice (so it is the prepared form that runs). Writes run inside a
savepoint that is undone, so both runs start from the same rows; every value given to the
statements (ids, times) is the same in both runs, so the rows (frozen dataclasses, compared
field by field: datetimes with their zone, JSON, booleans, bytes, NULLs) must be equal."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from passgate.server.app import create_app
from passgate.server.services import tenants as tenant_service
from passgate.server.services.tenants import hash_secret_key
from passgate.server.settings import Settings
from passgate.server.store import actions, authenticators, tenants, users
from passgate.server.store.db import Db, Engines
from passgate.server.store.migrate import upgrade
from passgate.server.store.prepared import PreparedStatements, prepare
from passgate.server.store.tables import Admin, Tenant


class Undo(Exception):
    """Raised inside a savepoint to undo what a run wrote."""


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[tuple[Engines, Any]]:
    url = f"sqlite:///{tmp_path / 'prepared.db'}"
    asyncio.run(upgrade(url))
    app = create_app(Settings(database_url=url))
    engines = app.state.engines
    assert engines.prepared is not None, "inline SQLite prepares statements"
    yield engines, app
    asyncio.run(engines.dispose())


async def _twice(
    engines: Engines, run: Callable[[Db], Awaitable[Any]], *, writes: bool
) -> tuple[Any, Any]:
    """What `run` returns through SQLAlchemy, then through the prepared statements."""
    prepared = engines.prepared
    assert prepared is not None
    results = []
    for mode in ("sqlalchemy", "prime", "prime", "prepared"):
        engines.prepared = None if mode == "sqlalchemy" else prepared
        hits = prepared.hits
        async with engines.transaction() as db:
            if writes:
                try:
                    async with db.savepoint():
                        results.append(await run(db))
                        raise Undo
                except Undo:
                    pass
            else:
                results.append(await run(db))
        if mode == "prepared":
            assert prepared.hits > hits, "the last run went through prepared statements"
    engines.prepared = prepared
    return results[0], results[-1]


async def test_store_functions_give_the_same_rows(engines: tuple[Engines, Any]) -> None:
    engine_set, _app = engines
    async with engine_set.transaction() as db:
        tenant, secret_key = await tenant_service.create_tenant(
            db, name="prepared", rp_id="app.example", origins=["https://app.example"]
        )
    key_hash = hash_secret_key(secret_key)
    now = datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC)
    async with engine_set.transaction() as db:
        await users.ensure_user(db, tenant.id, "alice")
        await users.update_user(db, tenant.id, "alice", {"username": "alice@example.com"})

    action_id = str(uuid.uuid4())

    def tracked_values() -> dict[str, Any]:
        return {
            "id": action_id,
            "tenant_id": tenant.id,
            "user_id": "alice",
            "action_code": "signIn",
            "idempotency_key": "idem-1",
            "state": "CHALLENGE_REQUIRED",
            "ip_address": "203.0.113.9",
            "user_agent": "tests",
            "device_id": None,
            "custom": {"amount": 12.5, "flag": True, "nested": {"list": [1, "two"]}},
            "scope": None,
            "redirect_url": "https://app.example/done",
            "locale": "en",
            "origin": "server",
        }

    async def track(db: Db) -> Any:
        found = await actions.track_for_user(db, tracked_values(), key_hash=key_hash, now=now)
        assert found is not None
        # The action id is made inside track_for_user; everything else is given.
        return (found.tenant_version, found.enrolled_methods, found.username, found.action)

    before, after = await _twice(engine_set, track, writes=True)
    assert before[:3] == after[:3]
    assert _without_id(before[3]) == _without_id(after[3])
    assert before[3].custom == {"amount": 12.5, "flag": True, "nested": {"list": [1, "two"]}}
    assert before[3].created_at == now and after[3].created_at.tzinfo is not None

    # Rows to read back: an action that stays.
    async with engine_set.transaction() as db:
        kept = await actions.track_for_user(db, tracked_values(), key_hash=key_hash, now=now)
        assert kept is not None

    async def reads(db: Db) -> Any:
        return (
            await tenants.get_tenant(db, tenant.id),
            await tenants.get_tenant_by_key(db, key_hash, now),
            await users.get_user(db, tenant.id, "alice"),
            await actions.get_action(db, tenant.id, "alice", "signIn", "idem-1"),
            await authenticators.find_authenticators(db, tenant.id, "alice"),
            await db.scalar(select(Tenant.__table__.c.created_at).where(Tenant.id == tenant.id)),
        )

    before, after = await _twice(engine_set, reads, writes=False)
    assert before == after
    assert before[0] is not None and before[3] is not None
    assert before[0].origins == ["https://app.example"]


def _without_id(row: Any) -> dict[str, Any]:
    fields = {name: getattr(row, name) for name in row.__dataclass_fields__}
    fields.pop("id")
    return fields


def test_statements_that_need_sqlalchemy_are_not_prepared(
    engines: tuple[Engines, Any],
) -> None:
    engine_set, _app = engines
    assert engine_set.inline is not None
    dialect = engine_set.inline[0].dialect
    admins = cast(Table, Admin.__table__)
    # A parameter expanded at execution (an IN list).
    assert prepare(select(admins).where(admins.c.email.in_(["a", "b"])), dialect) is None
    # An INSERT whose missing columns get Python-side defaults.
    assert prepare(admins.insert(), dialect, ["id", "email"]) is None
    # Textual SQL, whose result columns only the cursor knows.
    assert prepare(text("SELECT id, email FROM admins"), dialect) is None
    # A plain, fully parameterised statement is prepared.
    assert prepare(select(admins).where(admins.c.email == "x"), dialect) is not None


def test_a_statement_is_prepared_when_seen_again(engines: tuple[Engines, Any]) -> None:
    engine_set, _app = engines
    assert engine_set.inline is not None
    cache = PreparedStatements(engine_set.inline[0].dialect)
    statement = select(Admin.__table__).where(Admin.__table__.c.email == "x")
    assert cache.get(statement, None) is None  # seen once: SQLAlchemy runs it
    assert cache.get(statement, None) is not None  # again: prepared from now on
    # A statement built anew each time is never prepared.
    for _ in range(3):
        assert cache.get(select(Admin.__table__).where(Admin.__table__.c.id == "y"), None) is None


def test_parameters_are_bound_as_sqlalchemy_binds_them(engines: tuple[Engines, Any]) -> None:
    """The positional values the driver gets, NULLs included (a JSON None is the JSON text
    null, as SQLAlchemy writes it), are the ones SQLAlchemy's own execution would send."""
    engine_set, _app = engines
    assert engine_set.inline is not None
    dialect = engine_set.inline[0].dialect
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    params = {
        "id": "a1",
        "tenant_id": "t1",
        "user_id": "u1",
        "action_code": "signIn",
        "idempotency_key": "k1",
        "state": "ALLOW",
        "state_updated_at": now,
        "created_at": now,
        "updated_at": now,
        "ip_address": None,
        "user_agent": None,
        "device_id": None,
        "custom": None,
        "scope": None,
        "redirect_url": None,
        "locale": None,
        "origin": "server",
        "key_hash": "h",
        "now": now,
    }
    statement = actions.TRACK_FOR_USER._factory(sqlite_insert)
    prepared = prepare(statement, dialect, list(params))
    assert prepared is not None
    compiled = statement.compile(dialect=dialect, column_keys=list(params))
    constructed = compiled.construct_params(params)
    processors = compiled._bind_processors
    assert compiled.positiontup is not None
    expected = tuple(
        processors[name](constructed[name]) if name in processors else constructed[name]
        for name in compiled.positiontup
    )
    assert prepared.parameters(params) == expected
    assert "null" in expected  # the JSON column's None
