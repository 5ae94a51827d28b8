"""The client IP behind a reverse proxy (server/forwarded.py): `X-Forwarded-For` counts only
from trusted proxies, read from the right. Seen through what Passgate records per client IP:
the Client API's per-address rate limit and its security event, on a real server whose
clients call from different loopback addresses (127.0.0.2 is the trusted proxy)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from passgate.server.forwarded import TrustedProxies, resolve
from passgate.server.services import audit
from passgate.server.settings import Settings
from passgate.server.store.db import Db
from passgate.server.store.tables import AuditEvent
from tests.live_server import LiveServer, Tenant

PROXY, STRANGER = "127.0.0.2", "127.0.0.3"
C1 = "/client/challenge"  # limited per client address (services/rate_limits.py)
WINDOW = 3600


def fresh_window() -> None:
    """Wait for the next rate-limit window if this one ends within seconds."""
    left = WINDOW - time.time() % WINDOW
    if left < 5:
        time.sleep(left + 0.05)


def events(server: LiveServer, tenant: Tenant) -> list[Any]:
    """The tenant's rate-limit security events."""

    async def work(db: Db) -> list[Any]:
        query = select(AuditEvent).where(
            AuditEvent.tenant_id == tenant.id, AuditEvent.action == audit.RATE_LIMITED
        )
        return list((await db.execute(query)).all())

    return server.run(work)


@pytest.fixture(scope="module")
def proxied(database_url: str) -> Iterator[LiveServer]:
    live = LiveServer(
        database_url,
        forwarded_allow_ips=f"{PROXY}, 10.0.0.0/8",
        client_rate_limit_per_ip=1,
        client_rate_limit_per_tenant=0,
        client_rate_limit_window_seconds=WINDOW,
        prune_interval_seconds=0,
    ).start()
    yield live
    live.stop()


@pytest.fixture
def app(proxied: LiveServer) -> Tenant:
    fresh_window()
    return proxied.create_tenant(name="proxied")


def calls(server: LiveServer, tenant: Tenant, peer: str, *forwarded_for: str) -> list[int]:
    """C1 once per `X-Forwarded-For` value, from the loopback address `peer`."""
    transport = httpx.HTTPTransport(local_address=peer)
    with httpx.Client(
        base_url=server.api_url, auth=(tenant.id, ""), transport=transport, timeout=10
    ) as api:
        return [
            api.post(C1, json={}, headers={"X-Forwarded-For": value}).status_code
            for value in forwarded_for
        ]


def test_a_trusted_proxy_forwards_the_client_address(proxied: LiveServer, app: Tenant) -> None:
    # Two clients behind one proxy each have their own count; the first one's second call is
    # over its limit of one.
    assert calls(proxied, app, PROXY, "203.0.113.7", "203.0.113.8", "203.0.113.7") == [
        200,
        200,
        429,
    ]
    (event,) = events(proxied, app)
    assert event.source == "203.0.113.7"


def test_anyone_else_is_counted_by_its_own_address(proxied: LiveServer, app: Tenant) -> None:
    assert calls(proxied, app, STRANGER, "203.0.113.9", "203.0.113.10") == [200, 429]
    (event,) = events(proxied, app)
    assert event.source == STRANGER


def test_addresses_a_client_put_in_front_are_ignored(proxied: LiveServer, app: Tenant) -> None:
    """The proxy appends the address it saw; what the client sent stands to its left."""
    spoofed = ("198.51.100.1, 203.0.113.20", "198.51.100.2,203.0.113.20")
    assert calls(proxied, app, PROXY, *spoofed) == [200, 429]
    (event,) = events(proxied, app)
    assert event.source == "203.0.113.20"


TRUSTED = TrustedProxies.parse("127.0.0.1, ::1, 10.0.0.0/8")


@pytest.mark.parametrize(
    ("peer", "header", "client"),
    [
        ("192.0.2.1", "203.0.113.7", "192.0.2.1"),  # not a proxy: its header is not read
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", "203.0.113.7", "203.0.113.7"),
        ("127.0.0.1", "6.6.6.6, 203.0.113.7", "203.0.113.7"),
        # Through two proxies of ours: the first one's entry is skipped.
        ("127.0.0.1", "6.6.6.6, 203.0.113.7, 10.1.2.3", "203.0.113.7"),
        ("::1", "[2001:db8::5]:4711", "2001:db8::5"),
        ("::ffff:127.0.0.1", "203.0.113.7:4711", "203.0.113.7"),
        # Garbage to the right of the client: the nearest proxy stands for it.
        ("127.0.0.1", "203.0.113.7, unknown, 10.1.2.3", "10.1.2.3"),
        ("127.0.0.1", "10.9.9.9, 10.1.2.3", "10.9.9.9"),  # only proxies: the left-most
    ],
)
def test_resolve(peer: str, header: str, client: str) -> None:
    assert resolve(peer, [header], TRUSTED) == client


def test_a_unix_socket_peer_is_trusted_only_with_a_star() -> None:
    assert resolve(None, ["203.0.113.7"], TRUSTED) is None
    assert resolve(None, ["203.0.113.7"], TrustedProxies.parse("*")) == "203.0.113.7"


def test_the_setting_names_a_bad_entry() -> None:
    with pytest.raises(
        ValidationError, match=re.escape("'10.0.0.0/33' is not an IP address or network")
    ):
        Settings(forwarded_allow_ips="127.0.0.1, 10.0.0.0/33")
