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


def _users(tenant_id: str, count: int, now: datetime) -> Iterator[tuple[Any, ...]]:
    for number in range(count):
        created = now - SPREAD * ((number % 997) / 997)
        name = user_id(number)
        handle = f"00000000-0000-4000-8000-{number:012x}"
        yield (
            tenant_id,
            name,
            handle,
            f"{name}@bench.example",
            True,
            False,
            name,
            created,
            created,
        )


def _actions(tenant_id: str, count: int, users: int, now: datetime) -> Iterator[tuple[Any, ...]]:
    for number in range(count):
        owner = number % users
        created = now - SPREAD * ((number % 9973) / 9973)
        code = ACTION_CODES[number % len(ACTION_CODES)]
        state, method = ("CHALLENGE_SUCCEEDED", "PASSKEY") if number % 5 else ("ALLOW", None)
        yield (
            f"00000000-0000-4000-9000-{number:012x}",
            tenant_id,
            user_id(owner),
            code,
            f"pre-{number}",
            state,
            created,
            created,
            created,
            method,
            "server",
        )


def _batches(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    while batch := list(islice(rows, BATCH)):
        yield batch


def _sqlite_time(value: datetime) -> str:
    # How SQLAlchemy's SQLite dialect stores a UTC DateTime.
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _sqlite_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        _sqlite_time(v) if isinstance(v, datetime) else int(v) if isinstance(v, bool) else v
        for v in row
    )


def _insert_sqlite(path: str, tenant_id: str, users: int, actions: int, now: datetime) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA synchronous = OFF")
        for table, columns, rows in (
            ("users", USER_COLUMNS, _users(tenant_id, users, now)),
            ("actions", ACTION_COLUMNS, _actions(tenant_id, actions, users, now)),
        ):
            sql = (
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})"
            )
            for batch in _batches(rows):
                with connection:
                    connection.executemany(sql, [_sqlite_row(row) for row in batch])
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
    try:
        for table, columns, rows in (
            ("users", USER_COLUMNS, _users(tenant_id, users, now)),
            ("actions", ACTION_COLUMNS, _actions(tenant_id, actions, users, now)),
        ):
            for batch in _batches(rows):
                await connection.copy_records_to_table(table, records=batch, columns=columns)
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
