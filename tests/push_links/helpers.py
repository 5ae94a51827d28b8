"""Making push enrolment links as a backend does (the Server API), and an expired one."""

from __future__ import annotations

import time
from typing import Any

import httpx

from passgate.server.services import enrolment, push_links, tenants, tokens
from passgate.server.store.db import Db
from tests.live_server import LiveServer, Tenant


def server_link(server: LiveServer, tenant: Tenant, user_id: str) -> dict[str, Any]:
    """`POST /v1/users/{userId}/push-enrolment-links` with the tenant's secret key."""
    with httpx.Client(base_url=server.api_url, auth=(tenant.secret_key, ""), timeout=10) as http:
        made = http.post(f"/users/{user_id}/push-enrolment-links")
    assert made.status_code == 200, made.text
    return dict(made.json())


def expired_link(server: LiveServer, tenant: Tenant, link: dict[str, Any]) -> str:
    """The same link's action, with a token issued 11 minutes ago."""

    async def work(db: Db) -> str:
        row = await tenants.get_tenant(db, tenant.id)
        claims = tokens.decode_token(row, link["token"], accept=frozenset({tokens.PUSH_ENROLMENT}))
        return tokens.issue_token(
            row,
            user_id=claims.user_id,
            action_code=claims.action_code,
            idempotency_key=claims.idempotency_key,
            scope=enrolment.ADD_SCOPE,
            now=int(time.time()) - push_links.LIFETIME_SECONDS - 60,
            purpose=tokens.PUSH_ENROLMENT,
            lifetime_seconds=push_links.LIFETIME_SECONDS,
        )

    return push_links.link_url(server.public_url, server.run(work))
