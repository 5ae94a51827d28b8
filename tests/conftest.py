"""Fixtures: a real server on loopback over SQLite, and over PostgreSQL when it is reachable
(always under CI, where an unreachable PostgreSQL fails the run instead of skipping)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from authsignal.client import AuthsignalClient

from tests.live_server import LiveServer, Tenant
from tests.passkeys.helpers import Ceremony

NODE_DIR = Path(__file__).parent / "compat" / "node"
POSTGRES_ADMIN_URL = os.environ.get(
    "PASSGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PATIENT_DATABASE = {
    "database_pool_timeout_seconds": 30,
    "database_lock_timeout_seconds": 30,
    "database_statement_timeout_seconds": 60,
}


async def _postgres(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session", autouse=True)
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Passgate's data directory (its master key file) for every server and command a test
    starts, so tests never use or make the developer's ./.passgate/master.key."""
    path = tmp_path_factory.mktemp("passgate-data")
    names = ("PASSGATE_DATA_DIR", "PASSGATE_MASTER_KEY")
    saved = {name: os.environ.pop(name, None) for name in names}
    os.environ["PASSGATE_DATA_DIR"] = str(path)
    yield path
    for name, value in saved.items():
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh, empty database of each supported kind for the test session."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'passgate.db'}"
        return
    name = f"passgate_test_{secrets.token_hex(4)}"
    try:
        asyncio.run(_postgres(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is required under CI: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL}: {exc}")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def server(database_url: str) -> Iterator[LiveServer]:
    # Patient database waits: the suites fire bursts of 50-100 concurrent writes at this one
    # process on a shared machine to test races, not overload (a burst that outlasts the
    # default waits gets 503s by design; tests/server/test_overload.py tests the defaults).
    live = LiveServer(database_url, **PATIENT_DATABASE).start()
    yield live
    live.stop()


@pytest.fixture
def tenant(server: LiveServer) -> Tenant:
    return server.create_tenant()


@pytest.fixture
def other_tenant(server: LiveServer) -> Tenant:
    return server.create_tenant(name="other")


@pytest.fixture
def ceremony(
    server: LiveServer, tenant: Tenant, authsignal: AuthsignalClient
) -> Iterator[Ceremony]:
    """The test's tenant's Client API, driven step by step (tests/passkeys/helpers.py)."""
    flow = Ceremony(server.api_url, tenant.id, authsignal)
    yield flow
    flow.close()


@pytest.fixture
def authsignal(server: LiveServer, tenant: Tenant) -> Iterator[AuthsignalClient]:
    """Authsignal's own published Python server SDK, pointed at Passgate."""
    client = AuthsignalClient(api_secret_key=tenant.secret_key, api_url=server.api_url, timeout=10)
    yield client
    client.session.close()


@pytest.fixture
def http(server: LiveServer, tenant: Tenant) -> Iterator[httpx.Client]:
    """Plain HTTP with the tenant's secret key, for what the SDK does not cover."""
    with httpx.Client(base_url=server.api_url, auth=(tenant.secret_key, ""), timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
def node_sdk() -> Path:
    """Authsignal's Node SDK, installed from tests/compat/node/package-lock.json."""
    if not (shutil.which("node") and shutil.which("npm")):
        if IN_CI:
            pytest.fail("node and npm are required under CI")
        pytest.skip("node and npm are not installed")
    if not (NODE_DIR / "node_modules" / "@authsignal" / "node").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"],
            cwd=NODE_DIR,
            check=True,
            timeout=300,
        )
    return NODE_DIR
