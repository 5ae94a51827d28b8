"""The unit of work: one session per request, committed before the response is sent.

A GET reads only, so its transaction is read-only: on SQLite it starts with a plain BEGIN and
never waits for the write lock, so reads keep working while a writer (another process, a long
migration) holds it. A GET that does write says so: `@writes` on the route function, or
`writes_on_get = True` on a route class (the console's pages refresh the admin's session).
Every other method writes (BEGIN IMMEDIATE on SQLite, see `store.database`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.services.errors import PassgateError
from passgate.server.store.database import read_only

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


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Commit when the route returns, roll back when it raises (unless the domain error says
    its writes must stand). Routes and services never commit; a 200 therefore always means
    the transaction is durable."""
    async with request.app.state.sessionmaker() as session:
        if reads_only(request):
            read_only(session)
        # A route class that turns errors into responses itself (the console's) runs before
        # this dependency exits, so it must undo the writes itself: see `undo_writes`.
        request.state.session = session
        try:
            yield session
        except PassgateError as exc:
            await (session.commit() if exc.keep_changes else session.rollback())
            raise
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


async def undo_writes(request: Request, exc: PassgateError) -> None:
    """For route classes that catch a domain error and answer it themselves: the dependency
    above then sees a normal return and would commit, so roll back here first (unless the
    error's writes must stand)."""
    session: AsyncSession | None = getattr(request.state, "session", None)
    if session is not None and not exc.keep_changes:
        # Detach what was loaded first: a rollback expires it, and the error page still
        # reads the signed-in admin.
        session.expunge_all()
        await session.rollback()


# scope="function": the commit happens before the response goes out, not after.
Session = Annotated[AsyncSession, Depends(_request_session, scope="function")]
