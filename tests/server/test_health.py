"""/health/live and /health/ready, what load balancers and orchestrators probe: ready means
the database answers; a Redis outage is reported as degraded, never as unready."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fresh_postgres import drop, fresh_postgres_database
from tests.live_server import LiveServer
from tests.server.push.test_redis_wakeups import redis_url  # noqa: F401 (a fixture)


def test_live_and_ready(server: LiveServer) -> None:
    live = httpx.get(f"{server.url}/health/live")
    assert live.status_code == 200 and live.json()["status"] == "ok"
    ready = httpx.get(f"{server.url}/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok"}  # no Redis configured
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert not any(path.startswith("/health") for path in paths)


@pytest.mark.postgres
def test_ready_is_503_once_the_database_is_gone() -> None:
    with fresh_postgres_database("passgate_ready") as url:
        server = LiveServer(url).start()
        try:
            assert httpx.get(f"{server.url}/health/ready").status_code == 200
            drop(url)
            ready = httpx.get(f"{server.url}/health/ready", timeout=10)
            assert ready.status_code == 503
            assert ready.json()["status"] == "unavailable"
            assert ready.json()["database"] == "error: InvalidCatalogNameError"
            # The process itself is fine: do not restart it, just send it no traffic.
            assert httpx.get(f"{server.url}/health/live").status_code == 200
            assert httpx.get(f"{server.url}/health").status_code == 200
        finally:
            server.stop()


class TcpRelay:
    """Forwards a loopback port to Redis until closed: a Redis the test can take away."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def relay(redis_url: str) -> Iterator[TcpRelay]:  # noqa: F811
    parts = httpx.URL(redis_url)
    relay = TcpRelay((parts.host, parts.port or 6379))
    yield relay
    relay.close()


def test_a_redis_outage_degrades_but_does_not_unready(relay: TcpRelay, tmp_path: Path) -> None:
    server = LiveServer(
        f"sqlite:///{tmp_path / 'passgate.db'}", redis_url=f"redis://127.0.0.1:{relay.port}/0"
    ).start()
    try:
        before = httpx.get(f"{server.url}/health/ready")
        assert before.status_code == 200
        assert before.json() == {"status": "ok", "database": "ok", "redis": "ok"}
        relay.close()
        after = httpx.get(f"{server.url}/health/ready", timeout=10)
        assert after.status_code == 200
        assert after.json() == {"status": "ok", "database": "ok", "redis": "degraded"}
    finally:
        server.stop()
