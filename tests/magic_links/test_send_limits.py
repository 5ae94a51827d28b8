"""Magic links count against the tenant's send limits like one-time codes
(docs/one-time-codes.md#limits): five links per action is no limit to someone who can start
new actions (a public sign-up form), who could otherwise mail any address without end."""

from __future__ import annotations

from sqlalchemy import func, select

from passgate.server.services import otp
from passgate.server.store.db import Db
from passgate.server.store.tables import Authenticator
from tests.live_server import LiveServer, Tenant
from tests.magic_links.test_magic_links import ENROL, client, enrol, smtp
from tests.receivers import SmtpReceiver
from tests.tenant_client import TenantClient

__all__ = ["client", "smtp"]


def _limits(server: LiveServer, tenant: Tenant, **limits: int) -> None:
    async def work(db: Db) -> None:
        await otp.set_limits(db, tenant.id, limits)

    server.run(work)


def test_links_to_one_address_across_actions_are_limited(
    server: LiveServer, tenant: Tenant, client: TenantClient, smtp: SmtpReceiver
) -> None:
    _limits(server, tenant, perDestination=2)
    for user in ("ml-bomb-1", "ml-bomb-2"):
        enrol(client, client.token(user, "signUp"), "victim@example.com")
    token = client.token("ml-bomb-3", "signUp")
    refused = client.client("POST", ENROL, token=token, json={"email": "victim@example.com"})
    assert refused.status_code == 429, refused.text
    assert refused.json()["errorCode"] == "too_many_requests"
    assert "this address" in refused.json()["errorDescription"]
    smtp.wait(to="victim@example.com", count=2)
    assert len([m for m in smtp.messages if "victim@example.com" in m.rcpt_tos]) == 2

    # Nothing of the refused call stays but its count: no authenticator for the third user.
    async def added(db: Db) -> int:
        query = select(func.count()).where(Authenticator.user_id == "ml-bomb-3")
        return int(await db.scalar(query) or 0)

    assert server.run(added) == 0


def test_links_spend_the_daily_budget(
    server: LiveServer, tenant: Tenant, client: TenantClient
) -> None:
    _limits(server, tenant, dailyBudget=1)
    enrol(client, client.token("ml-budget-1", "signUp"), "one@example.com")
    token = client.token("ml-budget-2", "signUp")
    refused = client.client("POST", ENROL, token=token, json={"email": "two@example.com"})
    assert refused.status_code == 429, refused.text
    assert "daily budget" in refused.json()["errorDescription"]
