"""Running one unit of work against the operator's database from a command."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from passgate.server.services.errors import PassgateError
from passgate.server.settings import Settings
from passgate.server.store.database import (
    DatabaseUrlError,
    create_engine,
    sqlite_path,
)
from passgate.server.store.db import Db, Engines
from passgate.server.store.migrate import UnknownRevision, upgrade

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
    """A failure to report on one line, without a traceback (exit code 1: the command ran
    and its change was refused)."""


class ConfigError(CommandError):
    """Configuration the command cannot run with: a bad setting, database, Redis or key
    file. Exit code 2, as for a usage error; the message says what to fix."""

    exit_code = 2


def load_settings(**overrides: Any) -> Settings:
    """Settings from `PASSGATE_*` and the command's options; a bad value is one line."""
    try:
        return Settings(**overrides)
    except SettingsError as exc:
        raise ConfigError(f"bad PASSGATE_* setting: {exc}") from exc
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "PASSGATE_" + "_".join(str(part) for part in error["loc"]).upper()
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{name}: {message}") from exc


def require_existing(database_url: str) -> None:
    """A command that only reads must not create a database: a mistyped SQLite path would
    otherwise make directories and an empty database, and show nothing, silently."""
    path = translate_errors(lambda: sqlite_path(database_url))
    if path is not None and not path.is_file():
        raise ConfigError(
            f"no database at {path}: check --database-url (or PASSGATE_DATABASE_URL); "
            "`passgate db upgrade` creates a new one"
        )


def run(database_url: str, work: Callable[[Db], Awaitable[T]], *, read_only: bool = False) -> T:
    """Migrate, then run `work` in one committed transaction. Failures become one-line errors.
    A `read_only` command refuses an SQLite database that does not exist yet."""
    if read_only:
        require_existing(database_url)

    async def _run() -> T:
        await upgrade(database_url)
        engines = Engines(create_engine(database_url))
        try:
            async with engines.transaction() as db:
                return await work(db)
        finally:
            await engines.dispose()
            await engines.write.dispose()

    return translate_errors(lambda: asyncio.run(_run()))


def translate_errors(call: Callable[[], T]) -> T:
    try:
        return call()
    except PassgateError as exc:
        raise CommandError(exc.description) from exc
    except DatabaseUrlError as exc:
        raise ConfigError(f"{exc}: check --database-url (or PASSGATE_DATABASE_URL)") from exc
    except UnknownRevision as exc:
        raise CommandError(str(exc)) from exc
    except (DBAPIError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise CommandError(f"cannot use the database: {reason}") from exc
    except SQLAlchemyError as exc:
        raise CommandError(f"database error: {exc}") from exc


def check_redis(redis_url: str) -> None:
    """Refuse to serve with a Redis that cannot be reached (one line, not a traceback at
    start-up): long-polls in other workers would never be woken through it."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    async def ping() -> None:
        client = Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3)
        try:
            await client.ping()
        finally:
            await client.aclose()

    parts = urlsplit(redis_url)
    where = f"{parts.hostname}:{parts.port or 6379}" if parts.hostname else repr(redis_url)
    try:
        asyncio.run(ping())
    except (RedisError, OSError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"cannot reach Redis at {where} (PASSGATE_REDIS_URL): {reason}; start Redis, "
            "or unset PASSGATE_REDIS_URL to run without it (one worker process)"
        ) from exc
