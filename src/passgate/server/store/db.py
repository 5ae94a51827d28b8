"""The unit of work the store runs on: one connection, SQLAlchemy Core statements, no ORM.

A `Db` is what a request (or a background job, or a command) holds. It takes a connection
from the pool at its first statement, not before, so a request answered from a cache costs no
connection and no transaction; the connection's first statement begins the transaction
(SQLAlchemy's autobegin), and `commit()` or `rollback()` ends it and gives the connection
back. Statements are Core constructs, most of them built once at import time (see
`Statements`), so each execution is a compiled-cache hit and a driver call.

Read-only units of work (`Db(..., read_only=True)`, or `read_only()` between transactions)
run on the read engine: on SQLite its own WAL readers with a plain BEGIN, never waiting for
the writer; any write there is refused (store/database.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Executable

from passgate.server.store.prepared import Prepared, PreparedStatements, sqlite_execute

T = TypeVar("T")

POSTGRESQL, SQLITE = "postgresql", "sqlite"


class Engines:
    """The write engine and the read engine of one database (store/database.py), and on
    SQLite optionally `inline` engines: synchronous ones whose statements run on the event
    loop's thread (see `Db`), with this process's writers taking turns (`write_turn`, first
    come first served, waiting at most `pool_timeout` like a pooled connection)."""

    __slots__ = (
        "_write_turn",
        "_writer",
        "inline",
        "lock_timeout",
        "pool_timeout",
        "prepared",
        "read",
        "write",
    )

    def __init__(
        self,
        write: AsyncEngine,
        read: AsyncEngine | None = None,
        *,
        inline: tuple[Engine, Engine] | None = None,
        pool_timeout: float = 30.0,
        lock_timeout: float = 30.0,
    ) -> None:
        self.write = write
        self.read = read or write.execution_options(passgate_read_only=True)
        self.inline = inline
        # Inline SQLite runs the statements it sees again and again through the driver
        # directly (store/prepared.py).
        self.prepared = PreparedStatements(inline[0].dialect) if inline is not None else None
        self.pool_timeout = pool_timeout
        self.lock_timeout = lock_timeout
        self._write_turn: asyncio.Lock | None = None
        # Inline SQLite's one write connection, kept between units of work: only the holder
        # of `write_turn` uses it (checking it out of the pool per unit of work cost more
        # than the statement it ran).
        self._writer: Connection | None = None

    @property
    def write_turn(self) -> asyncio.Lock:
        if self._write_turn is None:
            self._write_turn = asyncio.Lock()
        return self._write_turn

    def writer(self) -> Connection:
        """Inline SQLite's write connection (the caller holds `write_turn`)."""
        assert self.inline is not None
        if self._writer is None or self._writer.invalidated or self._writer.closed:
            self._writer = self.inline[0].connect()
        return self._writer

    def drop_writer(self) -> None:
        """Close the write connection (after an error that may have left it unusable)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    async def dispose(self) -> None:
        self.drop_writer()
        if self.inline is not None:
            for engine in self.inline:
                engine.dispose()

    @property
    def dialect(self) -> str:
        return self.write.dialect.name

    def db(self, *, read_only: bool = False) -> Db:
        return Db(self, read_only=read_only)

    @asynccontextmanager
    async def transaction(self, *, read_only: bool = False) -> AsyncIterator[Db]:
        """A unit of work that commits when the block ends and rolls back when it raises."""
        db = Db(self, read_only=read_only)
        try:
            yield db
        except BaseException:
            await db.rollback()
            raise
        else:
            await db.commit()
        finally:
            await db.close()


class Db:
    """One unit of work (see the module docstring). Not shared between tasks."""

    __slots__ = (
        "_after_commit",
        "_connection",
        "_engines",
        "_read_only",
        "_sync",
        "_turn",
        "dialect",
    )

    def __init__(self, engines: Engines, *, read_only: bool = False) -> None:
        self._engines = engines
        self._read_only = read_only
        self._connection: AsyncConnection | None = None
        # Inline SQLite (see `Engines`): a synchronous connection, and whether this unit of
        # work holds the process's turn to write.
        self._sync: Connection | None = None
        self._turn = False
        self._after_commit: list[Callable[[], None]] = []
        self.dialect = engines.dialect

    @property
    def is_read_only(self) -> bool:
        return self._read_only

    @property
    def in_transaction(self) -> bool:
        if self._sync is not None:
            return self._sync.in_transaction()
        return self._connection is not None and self._connection.in_transaction()

    async def _inline(self, inline: tuple[Engine, Engine]) -> Connection:
        if self._sync is None:
            if not self._read_only:
                turn = self._engines.write_turn
                if turn.locked():
                    try:
                        await asyncio.wait_for(turn.acquire(), self._engines.pool_timeout)
                    except TimeoutError:
                        raise PoolTimeout(
                            "waited too long for this process's turn to write"
                        ) from None
                else:
                    # Free: taken at once (wait_for's task would cost more than the write).
                    await turn.acquire()
                self._turn = True
            try:
                self._sync = inline[1].connect() if self._read_only else self._engines.writer()
            except BaseException:
                self._release_turn()
                raise
        return self._sync

    async def _begin_inline(self, connection: Connection) -> None:
        """BEGIN IMMEDIATE for an inline writer. Another process may hold SQLite's write lock;
        rather than wait in SQLite's busy handler (which would hold up the event loop and
        every other request), try again after short asyncio sleeps, for at most the lock
        timeout; then the busy error goes up (and is answered 503, like a pooled wait)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._engines.lock_timeout
        pause = 0.002
        while True:
            try:
                connection.begin()
                return
            except OperationalError as exc:
                if connection.in_transaction():
                    connection.rollback()
                busy = getattr(exc.orig, "sqlite_errorcode", None)
                if busy is None or busy & 0xFF not in (5, 6) or loop.time() >= deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _release_turn(self) -> None:
        if self._turn:
            self._turn = False
            self._engines.write_turn.release()

    async def connection(self) -> AsyncConnection:
        if self._engines.inline is not None:
            raise RuntimeError("inline SQLite units of work have no async connection")
        if self._connection is None:
            engine = self._engines.read if self._read_only else self._engines.write
            self._connection = await engine.connect()
        return self._connection

    async def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> CursorResult[Any]:
        inline = self._engines.inline
        if inline is not None:
            sync = await self._inline(inline)
            if self._turn and not sync.in_transaction():
                await self._begin_inline(sync)
            return sync.execute(statement, parameters)
        connection = await self.connection()
        return await connection.execute(statement, parameters)

    async def execute_many(
        self, statement: Executable, parameters: Sequence[Mapping[str, Any]]
    ) -> None:
        if not parameters:
            return
        inline = self._engines.inline
        if inline is not None:
            sync = await self._inline(inline)
            if self._turn and not sync.in_transaction():
                await self._begin_inline(sync)
            sync.execute(statement, list(parameters))
            return
        connection = await self.connection()
        await connection.execute(statement, list(parameters))

    async def _prepared(
        self, statement: Executable, parameters: Mapping[str, Any] | None
    ) -> tuple[Prepared, sqlite3.Cursor] | None:
        """Run `statement` through the driver when it is prepared (store/prepared.py): inline
        SQLite only. None when it is to go through SQLAlchemy instead."""
        prepared_statements = self._engines.prepared
        inline = self._engines.inline
        if prepared_statements is None or inline is None:
            return None
        prepared = prepared_statements.get(statement, parameters)
        if prepared is None:
            return None
        sync = await self._inline(inline)
        if not sync.in_transaction():
            if self._turn:
                await self._begin_inline(sync)
            else:
                sync.begin()
        values = prepared.parameters(parameters)
        cursor = sync.connection.driver_connection.cursor()  # type: ignore[union-attr]
        # The engine's listeners (the read-only guard, statement counters) see every
        # statement, as they do on SQLAlchemy's path; the prepared statement stands in for
        # the execution context.
        for listener in sync.dispatch.before_cursor_execute:
            listener(sync, cursor, prepared.sql, values, prepared, False)
        sqlite_execute(cursor, prepared.sql, values)
        return prepared, cursor

    async def first(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Mapping[str, Any] | None:
        """The first row (as a mapping), or None."""
        ran = await self._prepared(statement, parameters)
        if ran is not None:
            prepared, found = _first_of(ran)
            return None if found is None else prepared.row(found)
        result = await self.execute(statement, parameters)
        return cast(Mapping[str, Any] | None, result.mappings().first())

    async def all(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Sequence[Mapping[str, Any]]:
        ran = await self._prepared(statement, parameters)
        if ran is not None:
            prepared, cursor = ran
            try:
                return [prepared.row(found) for found in cursor.fetchall()]
            finally:
                cursor.close()
        result = await self.execute(statement, parameters)
        return cast(Sequence[Mapping[str, Any]], result.mappings().all())

    async def scalar(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Any:
        ran = await self._prepared(statement, parameters)
        if ran is not None:
            prepared, found = _first_of(ran)
            if found is None:
                return None
            process = prepared.results[0]
            return found[0] if process is None or found[0] is None else process(found[0])
        result = await self.execute(statement, parameters)
        return result.scalar()

    async def rowcount(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> int:
        """How many rows a write touched."""
        ran = await self._prepared(statement, parameters)
        if ran is not None:
            prepared, cursor = ran
            try:
                if prepared.keys:
                    cursor.fetchall()
                return int(cursor.rowcount)
            finally:
                cursor.close()
        result = await self.execute(statement, parameters)
        return int(result.rowcount)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """Undo only what the block wrote when it raises; the transaction goes on."""
        inline = self._engines.inline
        if inline is not None:
            sync = await self._inline(inline)
            if self._turn and not sync.in_transaction():
                await self._begin_inline(sync)
            with sync.begin_nested():
                yield
            return
        connection = await self.connection()
        async with connection.begin_nested():
            yield

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the current transaction has committed (never after a rollback)."""
        self._after_commit.append(callback)

    async def commit(self) -> None:
        """Commit what this unit of work wrote and give the connection back; the next
        statement takes a connection and begins a transaction again."""
        if self._sync is not None:
            try:
                if self._sync.in_transaction():
                    self._sync.commit()
            finally:
                self._release_sync()
            self._run_after_commit()
            return
        if self._connection is None:
            self._run_after_commit()
            return
        if self._connection.in_transaction():
            await self._connection.commit()
        await self._release()
        self._run_after_commit()

    def _run_after_commit(self) -> None:
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def _release_sync(self) -> None:
        connection, self._sync = self._sync, None
        try:
            if connection is None:
                pass
            elif not self._turn:
                connection.close()
            elif connection.in_transaction():
                # Neither committed nor rolled back (an error in either): do not keep it.
                self._engines.drop_writer()
        finally:
            self._release_turn()

    async def rollback(self) -> None:
        self._after_commit = []
        if self._sync is not None:
            try:
                if self._sync.in_transaction():
                    self._sync.rollback()
            finally:
                self._release_sync()
        if self._connection is None:
            return
        if self._connection.in_transaction():
            await self._connection.rollback()
        await self._release()

    def read_only(self) -> None:
        """From the next transaction on, read only (see the module docstring)."""
        if self.in_transaction:
            raise RuntimeError("read_only() between transactions only, not inside one")
        self._read_only = True

    async def close(self) -> None:
        await self.rollback()

    async def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()


def _first_of(ran: tuple[Prepared, sqlite3.Cursor]) -> tuple[Prepared, Any]:
    """The prepared statement and the first row its cursor holds (None: no row)."""
    prepared, cursor = ran
    try:
        return prepared, cursor.fetchone()
    finally:
        cursor.close()


class Statements(Generic[T]):
    """A statement built once per dialect (each dialect's INSERT ... ON CONFLICT is its
    own construct): `STATEMENT = Statements(lambda insert: insert(table).values(...))`,
    then `await db.execute(STATEMENT[db], params)`."""

    __slots__ = ("_built", "_factory")

    def __init__(self, factory: Callable[[Callable[[Table], Any]], T]) -> None:
        self._factory = factory
        self._built: dict[str, T] = {}

    def __getitem__(self, db: Db) -> T:
        built = self._built.get(db.dialect)
        if built is None:
            insert = postgresql.insert if db.dialect == POSTGRESQL else sqlite.insert
            built = self._built[db.dialect] = self._factory(insert)
        return built
