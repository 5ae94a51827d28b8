"""A real Passgate server on a loopback port, in a thread with its own event loop."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import uvicorn
from sqlalchemy import insert, inspect

from passgate.server.app import create_app
from passgate.server.services import tenants, tokens
from passgate.server.settings import Settings
from passgate.server.store.db import Db
from passgate.server.store.migrate import upgrade
from passgate.server.store.tables import Base

T = TypeVar("T")


async def insert_rows(db: Db, rows: Iterable[Base]) -> None:
    """Insert rows a test built as table objects (`User(...)`), in order, with Core INSERTs
    (the columns' own defaults fill what a row leaves unset). A row listed twice goes in once."""
    done: set[int] = set()
    for row in rows:
        if id(row) in done:
            continue
        done.add(id(row))
        mapper = inspect(type(row))
        values = {
            attribute.columns[0].key: getattr(row, attribute.key)
            for attribute in mapper.column_attrs
            if getattr(row, attribute.key) is not None
        }
        await db.execute(insert(mapper.local_table).values(values))


class LiveServer:
    def __init__(self, database_url: str, **settings: Any) -> None:
        self.database_url = database_url
        asyncio.run(upgrade(database_url))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        # As `passgate serve` does: the hosted pages' origin is the listen address, named
        # `localhost` so that tenants with the rp id localhost can use it.
        settings.setdefault("public_url", f"http://localhost:{self.port}")
        self.settings = Settings(database_url=database_url, **settings)
        self.app = create_app(self.settings)
        # Keep idle connections open: clients in tests (Authsignal's SDK over requests) reuse
        # one after pauses longer than uvicorn's 5 s default, and a POST sent just as the
        # server closes it fails with "connection reset" instead of being retried.
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_keep_alive=300,
        )
        self._server = uvicorn.Server(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def public_url(self) -> str:
        """Where a browser reaches the hosted pages and the console."""
        assert self.settings.public_url is not None
        return self.settings.public_url

    @property
    def api_url(self) -> str:
        return f"{self.url}/v1"

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._server.serve())
        finally:
            self._loop.close()

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)

    def run(self, work: Callable[[Db], Awaitable[T]]) -> T:
        """Run `work` in one committed transaction (a `Db`) on the server's own engines and
        loop."""

        async def unit() -> T:
            async with self.app.state.engines.transaction() as db:
                return await work(db)

        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(unit(), self._loop).result(timeout=30)

    def create_tenant(self, name: str = "test", rp_id: str = "localhost", **kwargs: Any) -> Tenant:
        async def work(db: Db) -> Tenant:
            tenant, secret_key = await tenants.create_tenant(db, name=name, rp_id=rp_id, **kwargs)
            return Tenant(tenant.id, secret_key, rp_id)

        return self.run(work)

    def update_tenant(self, tenant_id: str, **changes: Any) -> None:
        """What an operator does with `passgate tenant origins` or the console."""

        async def work(db: Db) -> None:
            await tenants.update_tenant(db, tenant_id, tenants.TenantChanges(**changes))

        self.run(work)

    def expired_token(self, tenant_id: str, user_id: str, action_code: str = "signIn") -> str:
        """A genuine token of the tenant's, issued long enough ago to have expired."""

        async def work(db: Db) -> str:
            tenant = await tenants.get_tenant(db, tenant_id)
            issued = int(time.time()) - tenant.token_lifetime_seconds - 60
            return tokens.issue_token(
                tenant, user_id=user_id, action_code=action_code, idempotency_key="old", now=issued
            )

        return self.run(work)


class Tenant:
    """What a test knows of a tenant: what its operator was shown at creation."""

    def __init__(self, tenant_id: str, secret_key: str, rp_id: str) -> None:
        self.id = tenant_id
        self.secret_key = secret_key
        self.rp_id = rp_id
