"""Fixtures for command tests: a fresh PostgreSQL database of the test's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fresh_postgres import fresh_postgres_database


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped after the test."""
    with fresh_postgres_database("passgate_cli") as url:
        yield url
