"""Running one unit of work against the operator's database from a command."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.services.errors import PassgateError
from passgate.server.settings import Settings
from passgate.server.store.database import DatabaseUrlError, create_engine, create_sessionmaker
from passgate.server.store.migrate import upgrade

T = TypeVar("T")

# The option every command that touches the database takes.
DatabaseUrl = Annotated[
    str,
    typer.Option(
        "--database-url",
        envvar="PASSGATE_DATABASE_URL",
        help="sqlite:///path or postgresql://user@host/db",
    ),
]


class CommandError(typer.exceptions.TyperException):
    """A failure to report on one line, without a traceback."""


def load_settings(**overrides: Any) -> Settings:
    """Settings from `PASSGATE_*` and the command's options; a bad value is one line."""
    try:
        return Settings(**overrides)
    except SettingsError as exc:
        raise CommandError(f"bad PASSGATE_* setting: {exc}") from exc
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "PASSGATE_" + "_".join(str(part) for part in error["loc"]).upper()
        raise CommandError(f"{name}: {error['msg']}") from exc


def run(database_url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Migrate, then run `work` in one committed transaction. Failures become one-line errors."""

    async def _run() -> T:
        await upgrade(database_url)
        engine = create_engine(database_url)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    return translate_errors(lambda: asyncio.run(_run()))


def translate_errors(call: Callable[[], T]) -> T:
    try:
        return call()
    except PassgateError as exc:
        raise CommandError(exc.description) from exc
    except DatabaseUrlError as exc:
        raise CommandError(str(exc)) from exc
    except (DBAPIError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise CommandError(f"cannot use the database: {reason}") from exc
    except SQLAlchemyError as exc:
        raise CommandError(f"database error: {exc}") from exc
