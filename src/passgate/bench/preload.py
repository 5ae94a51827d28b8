"""Fill a migrated database with users and actions by bulk inserts (columns as in
src/passgate/server/store/tables.py), so that the measured flows run against tables of a
realistic size. SQLite: executemany in batches; PostgreSQL: COPY (asyncpg)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from passgate.server.store.database import async_url, is_sqlite, sqlite_path

BATCH = 20_000
USER_COLUMNS = (
    "tenant_id",
    "user_id",
    "handle",
    "email",
    "email_verified",
    "phone_number_verified",
    "username",
    "created_at",
    "updated_at",
)
ACTION_COLUMNS = (
    "id",
    "tenant_id",
    "user_id",
    "action_code",
    "idempotency_key",
    "state",
    "state_updated_at",
    "created_at",
    "updated_at",
    "verification_method",
    "origin",
)
ACTION_CODES = ("signIn", "approvePayment", "signUp", "changeEmail")
# Spread over the last 30 days: well inside the default 90-day retention, so nothing is pruned.
SPREAD = timedelta(days=30)


def user_id(number: int) -> str:
    """The id of preloaded user `number` (the track flow picks among these)."""
    return f"pre-{number:07d}"


def _times(now: datetime, steps: int, *, as_text: bool) -> list[Any]:
    """`steps` instants spread over SPREAD before `now`; as text for SQLite, stored as
    SQLAlchemy's SQLite dialect stores a UTC DateTime."""
    instants = [now - SPREAD * (step / steps) for step in range(steps)]
    if as_text:
        return [instant.strftime("%Y-%m-%d %H:%M:%S.%f") for instant in instants]
    return instants


def _users(
    tenant_id: str, count: int, times: list[Any], yes: Any, no: Any
) -> Iterator[tuple[Any, ...]]:
    steps = len(times)
    for number in range(count):
        created = times[number % steps]
        name = user_id(number)
        handle = f"00000000-0000-4000-8000-{number:012x}"
        yield (tenant_id, name, handle, f"{name}@bench.example", yes, no, name, created, created)


def _actions(tenant_id: str, count: int, users: int, times: list[Any]) -> Iterator[tuple[Any, ...]]:
    steps = len(times)
    codes = len(ACTION_CODES)
    for number in range(count):
        created = times[number % steps]
        allowed = number % 5 == 0
        yield (
            f"00000000-0000-4000-9000-{number:012x}",
            tenant_id,
            user_id(number % users),
            ACTION_CODES[number % codes],
            f"pre-{number}",
            "ALLOW" if allowed else "CHALLENGE_SUCCEEDED",
            created,
            created,
            created,
            None if allowed else "PASSKEY",
            "server",
        )


def _batches(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    while batch := list(islice(rows, BATCH)):
        yield batch


def _insert_sqlite(path: str, tenant_id: str, users: int, actions: int, now: datetime) -> None:
    connection = sqlite3.connect(path)
    times = _times(now, 9973, as_text=True)
    try:
        connection.execute("PRAGMA synchronous = OFF")
        connection.execute("PRAGMA cache_size = -262144")  # 256 MiB
        for table, columns, rows in (
            ("users", USER_COLUMNS, _users(tenant_id, users, times, 1, 0)),
            ("actions", ACTION_COLUMNS, _actions(tenant_id, actions, users, times)),
        ):
            # Secondary indexes are built once at the end, faster than row by row.
            indexes = connection.execute(
                "SELECT name, sql FROM sqlite_master "
                "WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
                (table,),
            ).fetchall()
            with connection:
                for name, _sql in indexes:
                    connection.execute(f'DROP INDEX "{name}"')
            sql = (
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})"
            )
            for batch in _batches(rows):
                with connection:
                    connection.executemany(sql, batch)
            with connection:
                for _name, index_sql in indexes:
                    connection.execute(index_sql)
        with connection:
            connection.execute("ANALYZE")
    finally:
        connection.close()


async def _insert_postgresql(
    database_url: str, tenant_id: str, users: int, actions: int, now: datetime
) -> None:
    import asyncpg  # type: ignore[import-untyped]

    url = async_url(database_url).set(drivername="postgresql")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    times = _times(now, 9973, as_text=False)
    try:
        for table, columns, rows in (
            ("users", USER_COLUMNS, _users(tenant_id, users, times, True, False)),
            ("actions", ACTION_COLUMNS, _actions(tenant_id, actions, users, times)),
        ):
            # Secondary indexes (not the primary key's) are built once at the end.
            indexes = await connection.fetch(
                "SELECT c.relname AS name, pg_get_indexdef(x.indexrelid) AS definition "
                "FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid "
                "WHERE x.indrelid = $1::regclass AND NOT x.indisprimary AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)",
                table,
            )
            for index in indexes:
                await connection.execute(f'DROP INDEX "{index["name"]}"')
            for batch in _batches(rows):
                await connection.copy_records_to_table(table, records=batch, columns=columns)
            for index in indexes:
                await connection.execute(index["definition"])
        await connection.execute("ANALYZE users; ANALYZE actions")
    finally:
        await connection.close()


def preload(database_url: str, tenant_id: str, *, users: int, actions: int) -> float:
    """Insert `users` users and `actions` actions (spread over the users) for the tenant;
    return the seconds it took."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    if actions and not users:
        raise ValueError("actions need users to belong to")
    if is_sqlite(async_url(database_url)):
        path = sqlite_path(database_url)
        if path is None:
            raise ValueError("the benchmark needs an SQLite file, not an in-memory database")
        _insert_sqlite(str(path), tenant_id, users, actions, now)
    else:
        asyncio.run(_insert_postgresql(database_url, tenant_id, users, actions, now))
    return time.perf_counter() - started
