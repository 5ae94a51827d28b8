"""The Client API's side of the rate limits (services/rate_limits.py): a dependency for the
routes anyone can call with the tenant id alone, answering 429 `too_many_requests` with
`Retry-After` (docs/wire.md#rate-limits).

It runs after the Client API's auth, as the first write of the request's one transaction
(server/database.py): a call within the limits commits its count with its own writes (a call
that then fails rolls its count back with the rest: it wrote nothing); a refused call commits
the count (and the security event of the first refusal)
before the 429 goes out, so the count stands. The rows it counts in stay locked on PostgreSQL
until the request commits, which costs less than a second transaction (its own BEGIN, COMMIT
and connection checkout) on every call: the address's row, which only that address's calls
share, and one of the tenant's shards, picked at random, so the calls of a busy tenant do not
all queue on one row (services/rate_limits.py). It takes the caller from the
Client API's auth (the same dependency the route uses, resolved once), so it reads no tenant
of its own, and the 429 goes to the tenant's origins like any other answer (see cors.py).

The client IP is the peer's address, or behind a trusted reverse proxy the address it forwards
(server/forwarded.py, `PASSGATE_FORWARDED_ALLOW_IPS`)."""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request

from passgate.server.client_api.auth import CachedAnyCaller
from passgate.server.database import Database
from passgate.server.forwarded import client_ip
from passgate.server.services import rate_limits
from passgate.server.services.rate_limits import ClientLimits


async def _limit_client_writes(request: Request, caller: CachedAnyCaller, db: Database) -> None:
    """Count a Basic call (the auth has found its tenant, so an unknown tenant is refused 401
    and counts nothing; a Bearer call is not limited)."""
    limits = ClientLimits.from_settings(request.app.state.settings)
    if caller.claims is not None or not limits.enabled:
        return
    refusal = await rate_limits.check_client_write(
        db,
        limits,
        tenant_id=caller.tenant.id,
        client_ip=client_ip(request) or "unknown",
    )
    if refusal is not None:
        # The count stands although the call is refused: commit it before the 429 (the
        # request's dependency then has nothing left to roll back).
        await db.commit()
        raise HTTPException(
            429, refusal.description, headers={"Retry-After": str(refusal.retry_after)}
        )


# For a route's `dependencies=[...]`: runs before the route's own dependencies.
ClientWriteLimit = Depends(_limit_client_writes)
