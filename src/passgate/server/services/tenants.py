"""Tenants: creation, secret keys (stored hashed, compared in constant time) and lookup."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from passgate.server import limits
from passgate.server.services import origins as origin_rules
from passgate.server.services import secrets_box, tokens
from passgate.server.services.enums import ActionOutcome
from passgate.server.services.errors import (
    UNAUTHORIZED_SECRET_KEY,
    InvalidRequest,
    NotFound,
    Unauthorized,
)
from passgate.server.services.tokens import generate_signing_key
from passgate.server.store import tenants as store
from passgate.server.store.db import Db
from passgate.server.store.tables import utcnow
from passgate.server.store.tenants import TenantRow as TenantRow

SECRET_KEY_PREFIX = "pg_sk_"
MIN_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME = 60, 86_400
ACTION_CODE = re.compile(limits.ACTION_CODE_PATTERN)
# How long an old secret key may keep working after a rotation, at most.
MAX_KEY_GRACE = timedelta(days=30)

# Per-process memory of tenants, only as of a version: each request still reads the tenant (or
# its version) from the database, in the statement it runs anyway where it can, so a rotated
# secret key fails and a changed setting applies at once in every process. What is kept is the
# newest row seen per tenant (reused while its `updated_at` is unchanged, so caches keyed by
# it, e.g. the opened signing key, stay warm) and which tenant a key hash named (a hint: the
# key itself is checked by the database every time).
_rows: dict[str, TenantRow] = {}
_ids_by_key: dict[str, str] = {}


def _seen(tenant: TenantRow) -> TenantRow:
    """The row to use: the one already kept when the version is the same."""
    kept = _rows.get(tenant.id)
    if kept is not None and kept.updated_at == tenant.updated_at:
        return kept
    if kept is None or kept.updated_at < tenant.updated_at:
        _rows[tenant.id] = tenant
    return tenant


def cached(tenant_id: str) -> TenantRow | None:
    """The newest row of a tenant this process has seen, if any. Only for a caller that then
    checks the tenant's version in the statement that decides (and reads it afresh on a
    change): see client_api/auth.py and services/passkeys.py."""
    return _rows.get(tenant_id)


def forget(tenant_id: str) -> None:
    """Drop what this process remembers of a tenant (nothing depends on it for correctness:
    every request checks the tenant's version in the database)."""
    _rows.pop(tenant_id, None)
    for digest, known in list(_ids_by_key.items()):
        if known == tenant_id:
            del _ids_by_key[digest]


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
    db: Db,
    *,
    name: str,
    rp_id: str,
    origins: Sequence[str] = (),
    rp_name: str | None = None,
) -> tuple[TenantRow, str]:
    """Create a tenant. Returns it with its secret key, which is never retrievable again."""
    name = _checked_name(name, "a tenant")
    rp_name = _checked_name(rp_name or name, "the relying party")
    rp_id = origin_rules.check_rp_id(rp_id)
    secret_key = _new_secret_key()
    key_id, private_key = generate_signing_key()
    tenant_id = str(uuid.uuid4())
    await secrets_box.ready(db)
    tenant = await store.insert_tenant(
        db,
        {
            "id": tenant_id,
            "name": name,
            "secret_key_hash": hash_secret_key(secret_key),
            "secret_key_hint": secret_key[: len(SECRET_KEY_PREFIX) + 4],
            "rp_id": rp_id,
            "rp_name": rp_name,
            "origins": expected_origins(rp_id, origins),
            "token_lifetime_seconds": 600,
            "signing_key_id": key_id,
            "signing_private_key": secrets_box.seal(
                private_key, tenant_id=tenant_id, field=secrets_box.SIGNING_KEY
            ),
            "settings": {},
        },
    )
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


async def update_tenant(db: Db, tenant_id: str, changes: TenantChanges) -> TenantRow:
    """Change a tenant's name, relying party or origins, all checked before anything is
    written: a bad value raises `InvalidRequest` naming it and nothing is saved."""
    tenant = await get_tenant(db, tenant_id)
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
        await _check_rp_change(db, tenant, rp_id, changes.confirm_orphaned_passkeys)
    values: dict[str, Any] = {
        "name": name,
        "rp_id": rp_id,
        "rp_name": rp_name,
        "origins": new_origins,
    }
    if lifetime is not None:
        values["token_lifetime_seconds"] = lifetime
    updated = await _updated(db, tenant_id, values)
    origin_rules.tenants_changed()
    return updated


async def _updated(db: Db, tenant_id: str, values: dict[str, Any]) -> TenantRow:
    tenant = await store.update_tenant(db, tenant_id, values)
    if tenant is None:
        raise NotFound(f"no tenant with id {tenant_id!r}")
    return _seen(tenant)


async def save_settings(db: Db, tenant_id: str, settings: dict[str, Any]) -> TenantRow:
    """Replace a tenant's settings (one UPDATE ... RETURNING; bumps its version, so every
    process applies them at its next request)."""
    tenant = await store.save_settings(db, tenant_id, settings)
    if tenant is None:
        raise NotFound(f"no tenant with id {tenant_id!r}")
    return _seen(tenant)


async def _check_rp_change(db: Db, tenant: TenantRow, rp_id: str, confirmed: int | None) -> None:
    count = await store.count_tenant_passkeys(db, tenant.id)
    if count and confirmed != count:
        raise InvalidRequest(
            f"the tenant has {count} passkeys made for {tenant.rp_id!r}; none of them will work "
            f"with {rp_id!r}. Confirm with the count ({count}) to change it anyway.",
            error_code="rp_id_change_unconfirmed",
        )


async def rotate_secret_key(db: Db, tenant_id: str, *, grace: timedelta = timedelta(0)) -> str:
    """Give the tenant a new secret key and return it (it is never retrievable again). The
    old key keeps working for `grace`, so backends can move to the new one without downtime;
    a key still in an earlier grace period stops at once (there is one previous key)."""
    if not timedelta(0) <= grace <= MAX_KEY_GRACE:
        raise InvalidRequest(f"the grace period must be between 0 and {MAX_KEY_GRACE.days} days")
    tenant = await get_tenant(db, tenant_id)
    secret_key = _new_secret_key()
    keep_old = grace > timedelta(0)
    await _updated(
        db,
        tenant_id,
        {
            "previous_secret_key_hash": tenant.secret_key_hash if keep_old else None,
            "previous_secret_key_expires_at": utcnow() + grace if keep_old else None,
            "secret_key_hash": hash_secret_key(secret_key),
            "secret_key_hint": secret_key[: len(SECRET_KEY_PREFIX) + 4],
        },
    )
    forget(tenant_id)
    return secret_key


async def rotate_signing_key(db: Db, tenant_id: str) -> tuple[TenantRow, str]:
    """Give the tenant a new token signing key (a new `kid`); return the tenant and the old
    key's id. New tokens are signed with the new key at once, in every process (the tenant's
    version changes, and each process reads the tenant again when it does); the old key's
    public half stays in the JWKS, and tokens it signed stay valid, until they have all
    expired (services/tokens.py). The row is locked first, so two rotations at once keep
    each other's keys."""
    locked = await store.update_tenant(db, tenant_id, {})
    if locked is None:
        raise NotFound(f"no tenant with id {tenant_id!r}")
    key_id, pem, retired = tokens.rotated_keys(locked, int(utcnow().timestamp()))
    await secrets_box.ready(db)
    rotated = await _updated(
        db,
        tenant_id,
        {
            "signing_key_id": key_id,
            "signing_private_key": secrets_box.seal(
                pem, tenant_id=tenant_id, field=secrets_box.SIGNING_KEY
            ),
            "retired_signing_keys": retired,
        },
    )
    return rotated, locked.signing_key_id


async def authenticate(db: Db, secret_key: str | None) -> TenantRow:
    """The tenant owning `secret_key` (its current key, or its previous one during a grace
    period), or `Unauthorized`. The database checks the key on every call (one statement)."""
    if not secret_key:
        raise Unauthorized(UNAUTHORIZED_SECRET_KEY)
    return await authenticate_hash(db, hash_secret_key(secret_key))


@dataclass(frozen=True, slots=True)
class SecretKey:
    """A Server API caller's secret key (hashed) and the tenant this process last saw it open,
    if any. Not yet checked: the statement the request runs checks it (`authenticate_hash`
    for requests whose statements do not)."""

    key_hash: str
    tenant: TenantRow | None


def secret_key(secret_key: str | None) -> SecretKey:
    """The caller's key, unchecked (no statement); `Unauthorized` when there is none."""
    if not secret_key:
        raise Unauthorized(UNAUTHORIZED_SECRET_KEY)
    digest = hash_secret_key(secret_key)
    known = _ids_by_key.get(digest)
    return SecretKey(digest, None if known is None else _rows.get(known))


async def authenticate_hash(db: Db, key_hash: str) -> TenantRow:
    """The tenant this key (hashed) opens now, or `Unauthorized` (one statement)."""
    tenant = await store.get_tenant_by_key(db, key_hash, utcnow())
    if tenant is None:
        _ids_by_key.pop(key_hash, None)
        raise Unauthorized(UNAUTHORIZED_SECRET_KEY)
    _ids_by_key[key_hash] = tenant.id
    return _seen(tenant)


async def find_tenant(db: Db, tenant_id: str) -> TenantRow | None:
    """A tenant by id as the database has it now; None when there is none."""
    tenant = await store.get_tenant(db, tenant_id)
    return None if tenant is None else _seen(tenant)


async def get_tenant(db: Db, tenant_id: str) -> TenantRow:
    tenant = await find_tenant(db, tenant_id)
    if tenant is None:
        raise NotFound(f"no tenant with id {tenant_id!r}")
    return tenant


async def list_tenants(db: Db) -> list[TenantRow]:
    return await store.find_tenants(db)


def default_outcome(tenant: TenantRow, action_code: str) -> ActionOutcome:
    """The state a tracked action starts in; CHALLENGE_REQUIRED unless configured."""
    configured = tenant.settings.get("actionOutcomes", {}).get(action_code)
    return ActionOutcome(configured) if configured else ActionOutcome.CHALLENGE_REQUIRED


async def set_action_outcome(
    db: Db, tenant_id: str, action_code: str, outcome: ActionOutcome
) -> TenantRow:
    if not ACTION_CODE.fullmatch(action_code):
        raise InvalidRequest(
            f"action code {action_code!r} may only use letters, digits and _ . : - (1-100)"
        )
    tenant = await get_tenant(db, tenant_id)
    outcomes = {**tenant.settings.get("actionOutcomes", {}), action_code: outcome.value}
    return await save_settings(db, tenant_id, {**tenant.settings, "actionOutcomes": outcomes})
