"""A magic link names Passgate's configured public URL, never the request's Host header: a
forged Host would otherwise mail the user a link to the forger's site, whose secret then
confirms a sign-in the forger's own token finalizes. Without a public URL (an app run under
uvicorn's factory without PASSGATE_PUBLIC_URL) no link is sent at all."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from passgate.server.services import audit
from passgate.server.services.delivery.config import configure_email
from passgate.server.store.db import Db
from tests.live_server import LiveServer
from tests.receivers import SmtpReceiver
from tests.tenant_client import TenantClient

FORGED = "attacker.example"


@pytest.fixture
def bare_server(database_url: str) -> Iterator[LiveServer]:
    live = LiveServer(database_url, public_url=None).start()
    yield live
    live.stop()


def test_no_public_url_sends_no_link(bare_server: LiveServer) -> None:
    tenant = bare_server.create_tenant()
    with SmtpReceiver() as smtp:

        async def work(db: Db) -> None:
            await configure_email(
                db,
                audit.Actor(type="admin", id="test"),
                tenant.id,
                host=smtp.host,
                port=smtp.port,
                security="none",
                sender="Shop <no-reply@example.com>",
            )

        bare_server.run(work)
        with TenantClient(bare_server.api_url, tenant) as client:
            token = client.token("hosted", "signUp")
            headers = {"Host": FORGED}
            for path, body in (
                ("/user-authenticators/email-magic-link", {"email": "h@example.com"}),
                ("/challenge/email-magic-link", None),
            ):
                sent = client.client("POST", path, token=token, json=body, headers=headers)
                assert sent.status_code == 400, sent.text
                assert "PASSGATE_PUBLIC_URL" in sent.json()["errorDescription"]
        assert smtp.messages == []
