"""passgate_db_connections_in_use counts the connections checked out of the server's pools."""

from __future__ import annotations

import asyncio
import time

import httpx
from sqlalchemy import text

from tests.live_server import LiveServer


def in_use(server: LiveServer) -> float:
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith("passgate_db_connections_in_use "):
            return float(line.split()[1])
    raise AssertionError("no pool gauge")


def test_the_pool_gauge_counts_connections_held(server: LiveServer) -> None:
    released = asyncio.Event()

    async def hold() -> None:
        async with server.app.state.engines.write.connect() as connection:
            await connection.execute(text("SELECT 1"))
            await released.wait()

    assert server._loop is not None
    holding = asyncio.run_coroutine_threadsafe(hold(), server._loop)
    deadline = time.monotonic() + 10
    before = in_use(server)
    while before < 1:
        assert time.monotonic() < deadline, "the gauge never counted the held connection"
        time.sleep(0.05)
        before = in_use(server)
    server._loop.call_soon_threadsafe(released.set)
    holding.result(timeout=10)
    assert in_use(server) == before - 1
