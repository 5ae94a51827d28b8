"""The migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from passgate.server.store.database import create_engine
from passgate.server.store.migrate import alembic_config, current_revision
from passgate.server.store.tables import Base
from tests.live_server import LiveServer


def test_migrated_schema_matches_the_tables(server: LiveServer) -> None:
    async def differences() -> list[object]:
        engine = create_engine(server.database_url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(
                    lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
                )
        finally:
            await engine.dispose()

    assert asyncio.run(differences()) == []


def test_database_is_at_the_single_head(server: LiveServer) -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1
    assert asyncio.run(current_revision(server.database_url)) == heads[0]
