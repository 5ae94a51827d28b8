"""Tenants: creation, secret keys (stored hashed, compared in constant time) and lookup."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.services import origins as origin_rules
from passgate.server.services import secrets_box
from passgate.server.services.enums import ActionOutcome
from passgate.server.services.errors import (
    UNAUTHORIZED_SECRET_KEY,
    InvalidRequest,
    NotFound,
    Unauthorized,
)
from passgate.server.services.tokens import generate_signing_key
from passgate.server.store import limits, queries
from passgate.server.store.tables import Tenant, utcnow

SECRET_KEY_PREFIX = "pg_sk_"
MIN_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME = 60, 86_400
ACTION_CODE = re.compile(limits.ACTION_CODE_PATTERN)
# How long an old secret key may keep working after a rotation, at most.
MAX_KEY_GRACE = timedelta(days=30)

# Tenants change rarely and every request needs one, so each process keeps what it loaded for
# a few seconds: a changed setting or rotated key reaches other processes within this time.
CACHE_SECONDS = 10.0
_by_secret_hash: dict[str, tuple[float, Tenant]] = {}
_by_id: dict[str, tuple[float, Tenant]] = {}


def _cached(cache: dict[str, tuple[float, Tenant]], key: str) -> Tenant | None:
    entry = cache.get(key)
    if entry is None or entry[0] < time.monotonic():
        return None
    return entry[1]


def _remember(session: AsyncSession, tenant: Tenant) -> None:
    """Cache a freshly loaded tenant, detached from its session so that session's rollback or
    close cannot expire it under other requests. Cached tenants are read-only."""
    session.expunge(tenant)
    expires = time.monotonic() + CACHE_SECONDS
    _by_secret_hash[tenant.secret_key_hash] = (expires, tenant)
    if tenant.previous_secret_key_hash is not None:
        # Checked against its expiry on every use, cached or not (`_key_matches`).
        _by_secret_hash[tenant.previous_secret_key_hash] = (expires, tenant)
    _by_id[tenant.id] = (expires, tenant)


def forget(tenant_id: str) -> None:
    """Drop a tenant from this process's cache after changing it."""
    _by_id.pop(tenant_id, None)
    for digest, (_, tenant) in list(_by_secret_hash.items()):
        if tenant.id == tenant_id:
            del _by_secret_hash[digest]


def hash_secret_key(secret_key: str) -> str:
    # The keys are 256-bit random, so a plain SHA-256 is as strong as a slow hash here.
    return hashlib.sha256(secret_key.encode()).hexdigest()


def _new_secret_key() -> str:
    return SECRET_KEY_PREFIX + secrets.token_urlsafe(32)


def expected_origins(rp_id: str, extra_origins: Sequence[str]) -> list[str]:
    """`https://<rp id>` and the extra origins, each normalized and checked against the rp id."""
    normal = origin_rules.normalize_all([f"https://{rp_id}", *extra_origins])
    origin_rules.check_origins_fit(rp_id, normal)
    return normal


async def create_tenant(
    session: AsyncSession,
    *,
    name: str,
    rp_id: str,
    origins: Sequence[str] = (),
    rp_name: str | None = None,
) -> tuple[Tenant, str]:
    """Create a tenant. Returns it with its secret key, which is never retrievable again."""
    name = _checked_name(name, "a tenant")
    rp_name = _checked_name(rp_name or name, "the relying party")
    rp_id = origin_rules.check_rp_id(rp_id)
    secret_key = _new_secret_key()
    key_id, private_key = generate_signing_key()
    tenant_id = str(uuid.uuid4())
    await secrets_box.ready(session)
    tenant = Tenant(
        id=tenant_id,
        name=name,
        secret_key_hash=hash_secret_key(secret_key),
        secret_key_hint=secret_key[: len(SECRET_KEY_PREFIX) + 4],
        rp_id=rp_id,
        rp_name=rp_name,
        origins=expected_origins(rp_id, origins),
        token_lifetime_seconds=600,
        signing_key_id=key_id,
        signing_private_key=secrets_box.seal(
            private_key, tenant_id=tenant_id, field=secrets_box.SIGNING_KEY
        ),
        settings={},
    )
    session.add(tenant)
    await session.flush()
    origin_rules.tenants_changed()
    return tenant, secret_key


def _checked_name(name: str, whose: str) -> str:
    """A tenant's or relying party's name, trimmed; it must fit its column."""
    name = name.strip()
    if not name or len(name) > limits.TENANT_NAME:
        raise InvalidRequest(f"{whose} needs a name of at most {limits.TENANT_NAME} characters")
    return name


@dataclass(frozen=True, kw_only=True, slots=True)
class TenantChanges:
    """What `update_tenant` may change; None leaves a field as it is."""

    name: str | None = None
    rp_id: str | None = None
    rp_name: str | None = None
    add_origins: Sequence[str] = ()
    remove_origins: Sequence[str] = ()
    # Replaces the whole list (then add/remove apply to it).
    origins: Sequence[str] | None = None
    token_lifetime_seconds: int | None = None
    # A new rp id orphans every passkey made for the old one: the caller must name how many.
    confirm_orphaned_passkeys: int | None = None


async def update_tenant(session: AsyncSession, tenant_id: str, changes: TenantChanges) -> Tenant:
    """Change a tenant's name, relying party or origins, all checked before anything is
    written: a bad value raises `InvalidRequest` naming it and nothing is saved."""
    tenant = await get_tenant(session, tenant_id)
    name = tenant.name if changes.name is None else _checked_name(changes.name, "a tenant")
    rp_id = tenant.rp_id if changes.rp_id is None else origin_rules.check_rp_id(changes.rp_id)
    rp_name = (
        tenant.rp_name
        if changes.rp_name is None
        else _checked_name(changes.rp_name, "the relying party")
    )
    listed = list(tenant.origins if changes.origins is None else changes.origins)
    if rp_id != tenant.rp_id:
        listed = [f"https://{rp_id}" if o == f"https://{tenant.rp_id}" else o for o in listed]
    removed = set(origin_rules.normalize_all(changes.remove_origins))
    unknown = removed - set(origin_rules.normalize_all(listed))
    if unknown:
        raise InvalidRequest(f"not one of the tenant's origins: {', '.join(sorted(unknown))}")
    new_origins = [
        o for o in origin_rules.normalize_all([*listed, *changes.add_origins]) if o not in removed
    ]
    origin_rules.check_origins_fit(rp_id, new_origins)
    lifetime = changes.token_lifetime_seconds
    if lifetime is not None and not MIN_TOKEN_LIFETIME <= lifetime <= MAX_TOKEN_LIFETIME:
        raise InvalidRequest(
            f"token lifetime must be {MIN_TOKEN_LIFETIME}-{MAX_TOKEN_LIFETIME} seconds"
        )
    if rp_id != tenant.rp_id:
        await _check_rp_change(session, tenant, rp_id, changes.confirm_orphaned_passkeys)
    tenant.name, tenant.rp_id, tenant.rp_name, tenant.origins = name, rp_id, rp_name, new_origins
    if lifetime is not None:
        tenant.token_lifetime_seconds = lifetime
    tenant.updated_at = utcnow()
    await session.flush()
    forget(tenant.id)
    origin_rules.tenants_changed()
    return tenant


async def _check_rp_change(
    session: AsyncSession, tenant: Tenant, rp_id: str, confirmed: int | None
) -> None:
    count = await queries.count_tenant_passkeys(session, tenant.id)
    if count and confirmed != count:
        raise InvalidRequest(
            f"the tenant has {count} passkeys made for {tenant.rp_id!r}; none of them will work "
            f"with {rp_id!r}. Confirm with the count ({count}) to change it anyway.",
            error_code="rp_id_change_unconfirmed",
        )


async def rotate_secret_key(
    session: AsyncSession, tenant_id: str, *, grace: timedelta = timedelta(0)
) -> str:
    """Give the tenant a new secret key and return it (it is never retrievable again). The
    old key keeps working for `grace`, so backends can move to the new one without downtime;
    a key still in an earlier grace period stops at once (there is one previous key)."""
    if not timedelta(0) <= grace <= MAX_KEY_GRACE:
        raise InvalidRequest(f"the grace period must be between 0 and {MAX_KEY_GRACE.days} days")
    tenant = await get_tenant(session, tenant_id)
    secret_key = _new_secret_key()
    keep_old = grace > timedelta(0)
    tenant.previous_secret_key_hash = tenant.secret_key_hash if keep_old else None
    tenant.previous_secret_key_expires_at = utcnow() + grace if keep_old else None
    tenant.secret_key_hash = hash_secret_key(secret_key)
    tenant.secret_key_hint = secret_key[: len(SECRET_KEY_PREFIX) + 4]
    tenant.updated_at = utcnow()
    await session.flush()
    forget(tenant_id)
    return secret_key


def _key_matches(tenant: Tenant, digest: str) -> bool:
    """The current key, or the previous one until its grace period ends (compared in
    constant time either way)."""
    current = hmac.compare_digest(tenant.secret_key_hash, digest)
    previous = tenant.previous_secret_key_hash
    expires = tenant.previous_secret_key_expires_at
    in_grace = previous is not None and expires is not None and utcnow() < expires
    return current or (in_grace and hmac.compare_digest(previous or "", digest))


async def authenticate(session: AsyncSession, secret_key: str | None) -> Tenant:
    """The tenant owning `secret_key` (its current key, or its previous one during a grace
    period), or `Unauthorized`."""
    if not secret_key:
        raise Unauthorized(UNAUTHORIZED_SECRET_KEY)
    digest = hash_secret_key(secret_key)
    tenant = _cached(_by_secret_hash, digest)
    if tenant is None:
        tenant = await queries.tenant_by_secret_hash(session, digest)
        if tenant is not None:
            _remember(session, tenant)
    if tenant is None or not _key_matches(tenant, digest):
        raise Unauthorized(UNAUTHORIZED_SECRET_KEY)
    return tenant


async def find_tenant(session: AsyncSession, tenant_id: str) -> Tenant | None:
    """A tenant by id for the request path (cached, read-only); None when there is none."""
    tenant = _cached(_by_id, tenant_id)
    if tenant is None:
        tenant = await session.get(Tenant, tenant_id)
        if tenant is not None:
            _remember(session, tenant)
    return tenant


async def get_tenant(session: AsyncSession, tenant_id: str) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"no tenant with id {tenant_id!r}")
    return tenant


async def list_tenants(session: AsyncSession) -> Sequence[Tenant]:
    return await queries.all_tenants(session)


def default_outcome(tenant: Tenant, action_code: str) -> ActionOutcome:
    """The state a tracked action starts in; CHALLENGE_REQUIRED unless configured."""
    configured = tenant.settings.get("actionOutcomes", {}).get(action_code)
    return ActionOutcome(configured) if configured else ActionOutcome.CHALLENGE_REQUIRED


async def set_action_outcome(
    session: AsyncSession, tenant_id: str, action_code: str, outcome: ActionOutcome
) -> None:
    if not ACTION_CODE.fullmatch(action_code):
        raise InvalidRequest(
            f"action code {action_code!r} may only use letters, digits and _ . : - (1-100)"
        )
    tenant = await get_tenant(session, tenant_id)
    outcomes = {**tenant.settings.get("actionOutcomes", {}), action_code: outcome.value}
    tenant.settings = {**tenant.settings, "actionOutcomes": outcomes}
    await session.flush()
    forget(tenant_id)
