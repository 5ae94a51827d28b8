"""Rate limits on the Client API calls that anyone can make with nothing but the public tenant
id, and that each write a row: C1 (`/challenge`) and C4 (authentication options), with and
without `/web` (docs/wire.md#rate-limits).

Two fixed windows are counted per call: one per client IP and tenant, so one address cannot
spend a tenant's whole allowance, and one per tenant, which bounds what a spread-out flood can
write. The count lives in the database (`rate_limit_windows`, one atomic upsert for both, in
the request's own transaction), so the limits hold across worker processes and hosts; the
window's number is part of each bucket, so a new window starts at zero and old ones are
pruned. A call over the per-IP limit is not counted against the tenant: one noisy address
cannot lock out everyone else.

The per-tenant count is split into shards (`tenant_shards`): a row that every sign-in of a
tenant updates would be held locked by each call's transaction until it commits, so on
PostgreSQL concurrent calls of one tenant would queue on it, and past the lock timeout be
answered 503. Each call counts in one shard picked at random; each shard is capped at its
share of the limit and the shares add up to the limit exactly, so more than the limit is
never admitted. A call whose shard is full takes a spare hit from another shard (a second
statement, only then); it is refused when every shard is full, or, on PostgreSQL, when the
only room left is in shards other calls hold at that moment (so the limit may refuse a few
calls early, never admit late). The per-IP count is one row and exact.

Calls with a Bearer token are not limited: the token comes from the tenant's backend (its
track, with the secret key), names one user and expires within minutes; the backend decides
how many there are, and an anonymous flood that fills the tenant's window never blocks them."""

from __future__ import annotations

import ipaddress
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from passgate.server.services import audit, single_use
from passgate.server.settings import Settings
from passgate.server.store import rate_limits as store
from passgate.server.store.db import Db
from passgate.server.store.tables import utcnow

# IPv6 addresses are counted per /64: one host usually holds a whole /64.
IPV6_PREFIX = 64
# A tenant's limit is split into up to this many shards, each with at least MIN_SHARD hits of
# its own: a limit under 2 * MIN_SHARD is one row, as exact as the per-IP one (a small limit
# is not busy enough for its row to be contended, and needs no spare hits taken).
TENANT_SHARDS = store.MAX_SHARDS
MIN_SHARD = 10
# Picks the shard of each call; not a secret, and its own generator (see pruning's jitter).
_shard_choice = random.Random()


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


def tenant_shards(tenant_id: str, window: int, maximum: int) -> list[tuple[str, int]]:
    """The buckets of a tenant's window and each one's cap (its share of `maximum`; the
    shares add up to `maximum`)."""
    count = max(1, min(TENANT_SHARDS, maximum // MIN_SHARD))
    share, left = divmod(maximum, count)
    prefix = f"client:tenant:{tenant_id}:{window}"
    if count == 1:
        return [(prefix, maximum)]
    return [(f"{prefix}:{index}", share + (index < left)) for index in range(count)]


async def check_client_write(
    db: Db,
    limits: ClientLimits,
    *,
    tenant_id: str,
    client_ip: str,
    now: datetime | None = None,
) -> Refusal | None:
    """Count one call of `client_ip` to the tenant (the address's bucket and one shard of the
    tenant's in one statement); a `Refusal` when it is over a limit. A call over the per-IP
    limit is taken back from the tenant's shard (in the same transaction, so no other call
    sees it in between). A call whose tenant shard is full takes a spare hit from another
    shard, and is refused when there is none. The first call over a limit in a window
    records a security event (one per address or tenant per window, however many calls
    follow). The caller commits the count even when it refuses."""
    now = now or utcnow()
    epoch = now.timestamp()
    window = int(epoch // limits.window_seconds)
    window_end = (window + 1) * limits.window_seconds
    expires_at = datetime.fromtimestamp(window_end, UTC)
    network = client_network(client_ip)
    ip_bucket = f"client:ip:{tenant_id}:{network}:{window}" if limits.per_ip else None
    shards = tenant_shards(tenant_id, window, limits.per_tenant) if limits.per_tenant else []
    shard, cap = _shard_choice.choice(shards) if shards else ("", 0)
    buckets = [bucket for bucket in (ip_bucket, shard) if bucket]
    if not buckets:
        return None
    hits = await store.count_hits(db, buckets, expires_at, capped=shard, cap=cap)

    def refusal(scope: str, maximum: int) -> Refusal:
        return Refusal(
            scope=scope, maximum=maximum, retry_after=max(1, math.ceil(window_end - epoch))
        )

    async def record(scope: str, maximum: int) -> None:
        details = {"limit": scope, "maximum": maximum, "windowSeconds": limits.window_seconds}
        await single_use.security_event(db, tenant_id, audit.RATE_LIMITED, details, source=network)

    if ip_bucket is not None and hits[ip_bucket] > limits.per_ip:
        if shard in hits:
            await store.uncount_hit(db, shard)
        if hits[ip_bucket] == limits.per_ip + 1:
            await record("ip", limits.per_ip)
        return refusal("ip", limits.per_ip)
    if not shard or shard in hits:
        return None
    # The call's shard is full: a spare hit in another, or the tenant is over its limit.
    others = [(bucket, share) for bucket, share in shards if bucket != shard]
    if await store.take_spare(db, others, expires_at):
        return None
    refused_mark = f"client:tenant:{tenant_id}:{window}:refused"
    if await store.claim(db, refused_mark, expires_at):
        await record("tenant", limits.per_tenant)
    return refusal("tenant", limits.per_tenant)
