"""Migrations under a lock: many processes may run `passgate db upgrade` (or start servers)
at once against one database; one applies the migrations, the others wait and find nothing
pending (src/passgate/server/store/migrate.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from passgate.server.store.database import create_engine
from passgate.server.store.migrate import MIGRATION_LOCK_KEY, alembic_config, upgrade
from passgate.server.store.tables import Base

pytestmark = pytest.mark.postgres


def schema_differences(database_url: str) -> list[object]:
    async def differences() -> list[object]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(
                    lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
                )
        finally:
            await engine.dispose()

    return asyncio.run(differences())


async def versions(database_url: str) -> list[str]:
    connection = await asyncpg.connect(database_url)
    try:
        return [row[0] for row in await connection.fetch("SELECT version_num FROM alembic_version")]
    finally:
        await connection.close()


def test_two_concurrent_db_upgrades_on_a_fresh_database_both_succeed(
    fresh_postgres_url: str,
) -> None:
    command = [sys.executable, "-m", "passgate.cli", "db", "upgrade"]
    env = {**os.environ, "PASSGATE_DATABASE_URL": fresh_postgres_url}
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120)[0].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert all("database is up to date" in output for output in outputs), outputs
    assert schema_differences(fresh_postgres_url) == []
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert asyncio.run(versions(fresh_postgres_url)) == [head]


def test_upgrades_in_one_process_at_once_apply_the_migrations_once(
    fresh_postgres_url: str,
) -> None:
    async def together() -> None:
        await asyncio.gather(*(upgrade(fresh_postgres_url) for _ in range(4)))

    asyncio.run(together())
    assert schema_differences(fresh_postgres_url) == []


def test_an_upgrade_waits_for_the_migration_lock(fresh_postgres_url: str) -> None:
    async def scenario() -> None:
        holder = await asyncpg.connect(fresh_postgres_url)
        try:
            await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
            upgrading = asyncio.create_task(upgrade(fresh_postgres_url))
            await asyncio.sleep(1.5)
            assert not upgrading.done()
            assert await versions_or_none(fresh_postgres_url) is None
            await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
            await asyncio.wait_for(upgrading, timeout=60)
        finally:
            await holder.close()

    asyncio.run(scenario())
    assert schema_differences(fresh_postgres_url) == []


async def versions_or_none(database_url: str) -> list[str] | None:
    connection = await asyncpg.connect(database_url)
    try:
        exists = await connection.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
    finally:
        await connection.close()
    return await versions(database_url) if exists else None
