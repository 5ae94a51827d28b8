"""What a copy of the database shows someone without Passgate: every byte of an SQLite file
(its WAL too), every row of every PostgreSQL table as text. And a fresh database of the
session's kind, for tests that must start from nothing."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from passgate.server.store.database import sqlite_path
from tests.conftest import POSTGRES_ADMIN_URL, _postgres


def raw_text(database_url: str) -> str:
    path = sqlite_path(database_url)
    if path is not None:
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        return "".join(file.read_bytes().decode("latin-1") for file in files if file.exists())
    return asyncio.run(_postgres_rows(database_url))


async def _postgres_rows(database_url: str) -> str:
    connection = await asyncpg.connect(database_url, timeout=5)
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
        texts = []
        for table in tables:
            name = table["tablename"]
            texts.append(
                await connection.fetchval(
                    f"SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM \"{name}\" t"
                )
            )
        return "\n".join(texts)
    finally:
        await connection.close()


@pytest.fixture
def fresh_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the same kind as the session's (SQLite or PostgreSQL)."""
    if sqlite_path(database_url) is not None:
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"passgate_fresh_{secrets.token_hex(4)}"
    asyncio.run(_postgres(f'CREATE DATABASE "{name}"'))
    yield f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    asyncio.run(_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
