"""Alembic, driven from code: `passgate db upgrade` (and `passgate serve`, unless told not to)
apply migrations.

Many processes may upgrade one database at once (workers, hosts, a deploy step beside servers
still starting): on PostgreSQL each upgrade first takes a transaction-level advisory lock on a
fixed key, so one applies the migrations and the others, once it has committed, find nothing
pending. On SQLite the upgrade's transaction takes the write lock at BEGIN, which serialises
them the same way. Nothing pending: nothing is run and nothing is logged."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError as AlembicError
from sqlalchemy import Connection, inspect, text

from passgate.server.store.database import create_engine

MIGRATIONS = Path(__file__).with_name("migrations")
# pg_advisory_xact_lock's key for "migrating this database": any fixed 64-bit number
# (here the first 8 bytes of sha256("passgate migrations") as a signed integer).
MIGRATION_LOCK_KEY = -0x6D51_9A07_7308_8BD0
# How long an upgrade waits for another process's upgrade to finish.
MIGRATION_LOCK_WAIT = "600s"

# The standard library's logger: a command that configured no logging (its output may be JSON
# for scripts) prints nothing; `passgate serve` routes it through its own log format.
log = logging.getLogger("passgate.migrate")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection, revision: str) -> tuple[str | None, str | None]:
    """On the upgrade's connection, in its transaction: lock, then apply what is pending.
    Returns the revisions before and after."""
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"SET LOCAL lock_timeout = '{MIGRATION_LOCK_WAIT}'"))
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.execute(text("RESET lock_timeout"))
    config = alembic_config(connection)
    before = _stored_revision(connection)
    script = ScriptDirectory.from_config(config)
    target = script.get_current_head() if revision == "head" else revision
    if before is not None and before == target:
        return before, before
    if before is not None and not _known(script, before):
        raise UnknownRevision(
            f"the database is at migration {before!r}, which this version of Passgate "
            f"(whose newest is {script.get_current_head()!r}) does not have: it was upgraded "
            "by a newer version; run that version, or restore a backup taken before the upgrade"
        )
    command.upgrade(config, revision)
    return before, _stored_revision(connection)


class UnknownRevision(Exception):
    """The database was migrated by a newer Passgate than this one."""


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except AlembicError:
        return False


def _stored_revision(connection: Connection) -> str | None:
    """The revision in alembic_version, read directly: alembic's own MigrationContext logs
    two INFO lines each time it is made, which every start would repeat."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


async def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at `database_url` up to `revision`, in one transaction, under the
    migration lock (see the module's docstring)."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            before, after = await connection.run_sync(lambda sync: _upgrade(sync, revision))
    finally:
        await engine.dispose()
    if before != after:
        log.info("database migrated from %s to %s", before or "nothing", after)


async def current_revision(database_url: str) -> str | None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()
