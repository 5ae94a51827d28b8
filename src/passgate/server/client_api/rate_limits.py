"""The Client API's side of the rate limits (services/rate_limits.py): a dependency for the
routes anyone can call with the tenant id alone, answering 429 `too_many_requests` with
`Retry-After` (docs/wire.md#rate-limits).

It runs before the route's own dependencies, in a short transaction of its own that commits
at once: the count must stand even when the call is refused, must not hold a PostgreSQL row
lock for the rest of the request, and (on SQLite) must be written before the request's own
transaction takes the write lock. It reads the tenant through the same cache as the Client
API's auth, which then finds it there.

The client IP is the ASGI peer address. Behind a reverse proxy every client shares the
proxy's address; trusting `X-Forwarded-For` from configured proxies is not done yet."""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request

from passgate.server.client_api.auth import tenant_id_from_basic
from passgate.server.cors import TENANT_ORIGINS
from passgate.server.services import rate_limits, tenants
from passgate.server.services.rate_limits import ClientLimits
from passgate.server.store.tables import utcnow


def _basic_tenant_id(request: Request) -> str | None:
    """The tenant id of a Basic authorization, parsed as the Client API's auth does; None for
    Bearer calls (not limited) and for calls the auth will refuse anyway."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not credentials.strip():
        return None
    tenant_id = tenant_id_from_basic(credentials)
    return tenant_id if tenant_id and len(tenant_id) <= 36 else None


async def _limit_client_writes(request: Request) -> None:
    limits = ClientLimits.from_settings(request.app.state.settings)
    tenant_id = _basic_tenant_id(request)
    if tenant_id is None or not limits.enabled:
        return
    async with request.app.state.sessionmaker() as session, session.begin():
        tenant = await tenants.find_tenant(session, tenant_id)
        if tenant is None:
            return  # the auth answers 401; nothing is counted for a tenant that does not exist
        # The 429 goes to the tenant's origins like any other answer (see cors.py).
        setattr(request.state, TENANT_ORIGINS, tenant.origins)
        refusal = await rate_limits.check_client_write(
            session,
            limits,
            tenant_id=tenant.id,
            client_ip=request.client.host if request.client else "unknown",
            now=utcnow(),
        )
    if refusal is not None:
        raise HTTPException(
            429, refusal.description, headers={"Retry-After": str(refusal.retry_after)}
        )


# For a route's `dependencies=[...]`, listed first so it runs before the request's session.
ClientWriteLimit = Depends(_limit_client_writes)
