"""Engines for the two supported databases: SQLite (embedded) and PostgreSQL.

Two things here keep a busy or stalled database from turning into slow 500s:

- `Limits` bound every wait: for a pooled connection (`pool_timeout`), for a lock another
  transaction holds (SQLite's busy timeout, PostgreSQL's `lock_timeout`) and, on PostgreSQL,
  for a whole statement (`statement_timeout`). What times out is answered 503 (`errors.py`).
- Read-only transactions (a `store.db.Db` made `read_only`): on SQLite a transaction that
  may write starts with BEGIN IMMEDIATE (it takes the write lock at once, so a read-then-write
  never fails half-way on a lock upgrade), while a read-only one runs on the read engine's own
  connections with a plain BEGIN and never waits for a writer (WAL readers see the last
  commit). A write attempted in a read-only transaction is refused on both databases, so a
  route marked read-only by mistake fails in tests, not as a rare lock error in production."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    create_async_engine,
)

from passgate.server.store.prepared import sqlite_execute

# The execution option (on connections) and session info key of read-only transactions.
READ_ONLY = "passgate_read_only"


class DatabaseUrlError(ValueError):
    """The database URL names a database Passgate cannot use."""


class WriteInReadOnlyTransaction(RuntimeError):
    """A programming error: a statement that writes ran in a read-only transaction."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """How long one database call may wait, in seconds. The defaults suit commands (patient);
    the server passes its settings (short, so a client hears 503 before it gives up)."""

    pool_timeout: float = 30.0
    lock_timeout: float = 30.0
    # PostgreSQL only (SQLite statements run in-process); None: no limit.
    statement_timeout: float | None = None


def async_url(database_url: str) -> URL:
    """Turn an operator's URL (`sqlite:///path`, `postgresql://...`) into an async driver URL."""
    try:
        url = make_url(database_url)
    except Exception as exc:
        raise DatabaseUrlError(f"not a database URL: {database_url!r}") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        query = dict(url.query)
        # libpq's `sslmode=` (what most PostgreSQL URLs carry) is asyncpg's `ssl=`, with the
        # same mode names (disable, allow, prefer, require, verify-ca, verify-full).
        if "sslmode" in query:
            mode = query.pop("sslmode")
            if "ssl" in query and query["ssl"] != mode:
                raise DatabaseUrlError("give the TLS mode once: sslmode= or ssl=, not both")
            query["ssl"] = mode
        return url.set(drivername="postgresql+asyncpg", query=query)
    raise DatabaseUrlError(
        f"unsupported database {backend!r}: use sqlite:///path or postgresql://user@host/db"
    )


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def sqlite_path(database_url: str) -> Path | None:
    """The file of an SQLite URL; None for PostgreSQL and in-memory databases."""
    url = async_url(database_url)
    if not is_sqlite(url) or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def create_engine(
    database_url: str, *, pool_size: int = 10, limits: Limits | None = None
) -> AsyncEngine:
    """The engine for transactions that may write, bounded by `limits`.

    SQLite lets one transaction write at a time, so its write engine has one connection:
    this process's writers take turns in the pool's queue, first come first served, holding
    nothing while they wait (SQLite's own busy handler, which they would otherwise all poll,
    is unfair and can starve a writer past any timeout). Its busy timeout then only matters
    against other processes. PostgreSQL gets a pool of `pool_size` (and as many overflow)."""
    limits = limits or Limits()
    url = async_url(database_url)
    if is_sqlite(url):
        return _sqlite_engine(database_url, limits, pool_size=1, max_overflow=0)
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=limits.pool_timeout,
        pool_pre_ping=True,
        connect_args={"server_settings": _postgresql_settings(limits)},
    )
    event.listen(engine.sync_engine, "before_cursor_execute", _refuse_writes_when_read_only)
    return engine


def create_read_engine(
    engine: AsyncEngine, *, pool_size: int = 10, limits: Limits | None = None
) -> AsyncEngine:
    """The engine for read-only transactions: on SQLite a pool of its own (WAL readers run
    side by side, and beside the writer); on PostgreSQL the write engine's pool."""
    options = {READ_ONLY: True}
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        return engine.execution_options(**options)
    limits = limits or Limits()
    read = _sqlite_engine(engine.url, limits, pool_size=pool_size, max_overflow=pool_size)
    return read.execution_options(**options)


def _sqlite_engine(
    database_url: str | URL, limits: Limits, *, pool_size: int, max_overflow: int
) -> AsyncEngine:
    url = async_url(database_url) if isinstance(database_url, str) else database_url
    pool: dict[str, Any] = {}
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        pool = {
            "pool_size": pool_size,
            "max_overflow": max_overflow,
            "pool_timeout": limits.pool_timeout,
        }
    engine = create_async_engine(url, connect_args={"timeout": limits.lock_timeout}, **pool)
    busy_ms = round(limits.lock_timeout * 1000)
    event.listen(engine.sync_engine, "connect", functools.partial(_sqlite_pragmas, busy_ms))
    event.listen(engine.sync_engine, "begin", _sqlite_begin)
    event.listen(engine.sync_engine, "before_cursor_execute", _refuse_writes_when_read_only)
    return engine


def create_inline_sqlite_engines(
    engine: AsyncEngine, *, pool_size: int = 10, limits: Limits | None = None
) -> tuple[Engine, Engine] | None:
    """Synchronous engines (the standard library's sqlite3) on the same SQLite file, for
    units of work that run their statements on the event loop's thread (store/db.py): an
    indexed SQLite statement takes microseconds, less than handing it to aiosqlite's thread
    and back. One write connection (its writers queue in `Db`, not in the pool) and a reader
    pool. None for PostgreSQL and in-memory databases."""
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        return None
    limits = limits or Limits()
    url = engine.url.set(drivername="sqlite+pysqlite")
    built = []
    for size in (1, pool_size):
        # The writer does not wait in SQLite's busy handler (it would hold the event loop):
        # `store.db.Db` retries its BEGIN IMMEDIATE with asyncio sleeps instead.
        busy_ms = 0 if size == 1 else round(limits.lock_timeout * 1000)
        sync = sqlalchemy.create_engine(
            url,
            connect_args={"timeout": busy_ms / 1000, "check_same_thread": False},
            pool_size=size,
            max_overflow=0 if size == 1 else pool_size,
            pool_timeout=limits.pool_timeout,
        )
        event.listen(sync, "connect", functools.partial(_sqlite_pragmas, busy_ms))
        event.listen(sync, "begin", _sqlite_begin_inline)
        event.listen(sync, "before_cursor_execute", _refuse_writes_when_read_only)
        built.append(sync)
    write, read = built
    return write, read.execution_options(**{READ_ONLY: True})


def _postgresql_settings(limits: Limits) -> dict[str, str]:
    """Server settings of every connection (milliseconds): waits end in an error, not never."""
    settings = {"lock_timeout": str(round(limits.lock_timeout * 1000))}
    if limits.statement_timeout is not None:
        settings["statement_timeout"] = str(round(limits.statement_timeout * 1000))
    return settings


def _sqlite_pragmas(busy_ms: int, dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event own transactions (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    """A transaction that may write takes SQLite's write lock at BEGIN (IMMEDIATE), so one
    that reads then writes waits its turn (busy timeout) instead of failing with "database is
    locked" when another writer got in first. A read-only one takes no lock at all."""
    connection.exec_driver_sql(_begin_statement(connection))


def _sqlite_begin_inline(connection: Any) -> None:
    """`_sqlite_begin` for the inline engines, straight to the driver: the same statement,
    without the cost of a SQLAlchemy execution (which a BEGIN, never counted nor guarded,
    does not need). A busy database raises `OperationalError`, which `store.db.Db` retries."""
    sqlite_execute(connection.connection.driver_connection, _begin_statement(connection))


def _begin_statement(connection: Any) -> str:
    read_only = connection.get_execution_options().get(READ_ONLY, False)
    return "BEGIN" if read_only else "BEGIN IMMEDIATE"


def _refuse_writes_when_read_only(
    connection: Any, _cursor: Any, statement: str, _parameters: Any, context: Any, _many: bool
) -> None:
    if not connection.get_execution_options().get(READ_ONLY, False) or context is None:
        return
    if context.isinsert or context.isupdate or context.isdelete:
        raise WriteInReadOnlyTransaction(
            "a write in a read-only transaction (a GET route that writes must be marked "
            f"with passgate.server.database.writes): {statement.split(None, 3)[:3]}"
        )
