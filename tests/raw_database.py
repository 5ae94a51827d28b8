"""What a copy of the database shows someone without Passgate: every byte of an SQLite file
(its WAL too), every row of every PostgreSQL table as text. And a fresh database of the
session's kind, for tests that must start from nothing."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from passgate.server.store.database import sqlite_path
from tests.conftest import POSTGRES_ADMIN_URL, _postgres


def raw_text(database_url: str) -> str:
    path = sqlite_path(database_url)
    if path is not None:
        # Read by another process: closing a descriptor of the database file in this one (a
        # test's server may run here) would drop every POSIX lock this process holds on it,
        # SQLite's connections' included, and another process could then rebuild the WAL
        # index under them (SQLite's documentation warns of exactly this).
        read = subprocess.run(
            [sys.executable, "-c", _READ_FILES, str(path)],
            capture_output=True,
            check=True,
            timeout=60,
        )
        return read.stdout.decode("latin-1")
    return asyncio.run(_postgres_rows(database_url))


_READ_FILES = """
import sys
from pathlib import Path
path = Path(sys.argv[1])
for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
    if file.exists():
        sys.stdout.buffer.write(file.read_bytes())
"""


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
