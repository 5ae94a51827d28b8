"""A new, empty PostgreSQL database of a test's own (dropped after it), for tests that need
one to themselves: to migrate from nothing, or to drop while a server uses it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import pytest

from tests.conftest import IN_CI, POSTGRES_ADMIN_URL, _postgres


def drop(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    asyncio.run(_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def fresh_postgres_database(prefix: str = "passgate_fresh") -> Iterator[str]:
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        asyncio.run(_postgres(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is required under CI: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL}: {exc}")
    url = f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    try:
        yield url
    finally:
        drop(url)
