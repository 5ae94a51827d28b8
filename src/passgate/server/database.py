"""The unit of work: one session per request, committed before the response is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.services.errors import PassgateError


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Commit when the route returns, roll back when it raises (unless the domain error says
    its writes must stand). Routes and services never commit; a 200 therefore always means
    the transaction is durable."""
    async with request.app.state.sessionmaker() as session:
        try:
            yield session
        except PassgateError as exc:
            await (session.commit() if exc.keep_changes else session.rollback())
            raise
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


# scope="function": the commit happens before the response goes out, not after.
Session = Annotated[AsyncSession, Depends(_request_session, scope="function")]
