"""The unit of work: one session per request, committed before the response is sent.

A GET reads only, so its transaction is read-only: on SQLite it starts with a plain BEGIN and
never waits for the write lock, so reads keep working while a writer (another process, a long
migration) holds it. A GET that does write says so: `@writes` on the route function, or
`writes_on_get = True` on a route class (the console's pages refresh the admin's session).
Every other method writes (BEGIN IMMEDIATE on SQLite, see `store.database`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from passgate.server.services.errors import PassgateError
from passgate.server.store.db import Db

__all__ = [
    "READ_METHODS",
    "Database",
    "Db",
    "reads_only",
    "undo_writes",
    "unit_of_work",
    "writes",
]

F = TypeVar("F", bound=Callable[..., Any])

READ_METHODS = frozenset({"GET", "HEAD"})
WRITES_ON_GET = "writes_on_get"


def writes(endpoint: F) -> F:
    """Mark a GET route that writes: its transaction may write (and on SQLite takes the
    write lock at BEGIN), like a POST's."""
    setattr(endpoint, WRITES_ON_GET, True)
    return endpoint


def reads_only(request: Request) -> bool:
    if request.method not in READ_METHODS:
        return False
    route = request.scope.get("route")
    endpoint = getattr(route, "endpoint", None)
    return route is not None and not (
        getattr(route, WRITES_ON_GET, False) or getattr(endpoint, WRITES_ON_GET, False)
    )


@asynccontextmanager
async def unit_of_work(request: Request) -> AsyncIterator[Db]:
    """Commit when the route returns, roll back when it raises (unless the domain error says
    its writes must stand). Routes and services never commit; a 200 therefore always means
    the transaction is durable. The connection is taken at the first statement, so a request
    answered without the database costs none. (The `Database` dependency, and the hot
    routes that skip FastAPI's dependency solving, server/fast_routes.py.)"""
    db = request.app.state.engines.db(read_only=reads_only(request))
    # A route class that turns errors into responses itself (the console's) runs before
    # this dependency exits, so it must undo the writes itself: see `undo_writes`.
    request.state.db = db
    try:
        yield db
    except PassgateError as exc:
        await (db.commit() if exc.keep_changes else db.rollback())
        raise
    except BaseException:
        await db.rollback()
        raise
    else:
        await db.commit()
    finally:
        await db.close()


async def _request_db(request: Request) -> AsyncIterator[Db]:
    async with unit_of_work(request) as db:
        yield db


async def undo_writes(request: Request, exc: PassgateError) -> None:
    """For route classes that catch a domain error and answer it themselves: the dependency
    above then sees a normal return and would commit, so roll back here first (unless the
    error's writes must stand)."""
    db: Db | None = getattr(request.state, "db", None)
    if db is not None and not exc.keep_changes:
        await db.rollback()


# scope="function": the commit happens before the response goes out, not after.
Database = Annotated[Db, Depends(_request_db, scope="function")]
