"""Rate limits on the Client API calls that anyone can make with nothing but the public tenant
id, and that each write a row: C1 (`/challenge`) and C4 (authentication options), with and
without `/web` (docs/wire.md#rate-limits).

Two fixed windows are counted per call: one per client IP and tenant, so one address cannot
spend a tenant's whole allowance, and one per tenant, which bounds what a spread-out flood can
write. The count lives in the database (`rate_limit_windows`, one atomic upsert for both
buckets, in the request's own transaction), so
the limits hold across worker processes and hosts; the window's number is part of the bucket,
so a new window starts at zero and old ones are pruned. A call over the per-IP limit is not
counted against the tenant: one noisy address cannot lock everyone else out.

Calls with a Bearer token are not limited: the token comes from the tenant's backend (its
track, with the secret key), names one user and expires within minutes; the backend decides
how many there are, and an anonymous flood that fills the tenant's window never blocks them."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from passgate.server.services import audit, single_use
from passgate.server.settings import Settings
from passgate.server.store import rate_limits as store
from passgate.server.store.db import Db
from passgate.server.store.tables import utcnow

# IPv6 addresses are counted per /64: one host usually holds a whole /64.
IPV6_PREFIX = 64


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientLimits:
    """At most `per_ip` calls from one address and `per_tenant` calls in all to one tenant per
    window of `window_seconds`; 0 turns a limit off."""

    per_ip: int
    per_tenant: int
    window_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientLimits:
        return cls(
            per_ip=settings.client_rate_limit_per_ip,
            per_tenant=settings.client_rate_limit_per_tenant,
            window_seconds=settings.client_rate_limit_window_seconds,
        )

    @property
    def enabled(self) -> bool:
        return bool(self.per_ip or self.per_tenant)


@dataclass(frozen=True, kw_only=True, slots=True)
class Refusal:
    """A call over a limit: which one, and the whole seconds until its window ends."""

    scope: str
    maximum: int
    retry_after: int

    @property
    def description(self) -> str:
        who = "from this address" if self.scope == "ip" else "for this tenant"
        return (
            f"Too many sign-in requests {who} (at most {self.maximum} a window). "
            f"Try again in {self.retry_after} s."
        )


def client_network(address: str) -> str:
    """What one client is counted as: its IPv4 address, or its IPv6 /64."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, IPV6_PREFIX), strict=False))
    return str(parsed)


async def check_client_write(
    db: Db,
    limits: ClientLimits,
    *,
    tenant_id: str,
    client_ip: str,
    now: datetime | None = None,
) -> Refusal | None:
    """Count one call of `client_ip` to the tenant (both buckets in one statement); a
    `Refusal` when it is over a limit. A call over the per-IP limit is taken back from the
    tenant's count (in the same transaction, so no other call sees it in between). The first
    call over a limit in a window records a security event (one per bucket per window,
    however many calls follow). The caller commits the count even when it refuses."""
    now = now or utcnow()
    epoch = now.timestamp()
    window = int(epoch // limits.window_seconds)
    window_end = (window + 1) * limits.window_seconds
    expires_at = datetime.fromtimestamp(window_end, UTC)
    network = client_network(client_ip)
    checks = [
        (scope, maximum, bucket)
        for scope, maximum, bucket in (
            ("ip", limits.per_ip, f"client:ip:{tenant_id}:{network}:{window}"),
            ("tenant", limits.per_tenant, f"client:tenant:{tenant_id}:{window}"),
        )
        if maximum
    ]
    if not checks:
        return None
    hits = await store.count_hits(db, [bucket for _, _, bucket in checks], expires_at)
    for scope, maximum, bucket in checks:
        if hits[bucket] <= maximum:
            continue
        if scope == "ip" and len(checks) > 1:
            await store.uncount_hit(db, checks[1][2])
        if hits[bucket] == maximum + 1:
            details = {"limit": scope, "maximum": maximum, "windowSeconds": limits.window_seconds}
            await single_use.security_event(
                db, tenant_id, audit.RATE_LIMITED, details, source=network
            )
        return Refusal(
            scope=scope, maximum=maximum, retry_after=max(1, math.ceil(window_end - epoch))
        )
    return None
