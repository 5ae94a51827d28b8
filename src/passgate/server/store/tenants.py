"""Tenants: rows and statements. Services hold the rules (services/tenants.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from passgate.server.store.db import Db
from passgate.server.store.tables import PasskeyCredential, Tenant, UTCDateTime, utcnow


@dataclass(frozen=True, kw_only=True, slots=True)
class TenantRow:
    """A row of `tenants` (store/tables.py says what each column means)."""

    id: str
    name: str
    secret_key_hash: str
    secret_key_hint: str
    rp_id: str
    rp_name: str
    origins: list[str]
    token_lifetime_seconds: int
    signing_key_id: str
    signing_private_key: str
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    previous_secret_key_hash: str | None
    previous_secret_key_expires_at: datetime | None
    # Public halves of rotated-out signing keys still accepted (services/tokens.py).
    retired_signing_keys: list[dict[str, Any]] | None = None

    @classmethod
    def from_attributes(cls, obj: Any) -> TenantRow:
        """From an object with the same attributes (an ORM `Tenant`, while code that loads
        them remains)."""
        return cls(**{name: getattr(obj, name) for name in cls.__slots__})

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> TenantRow:
        """From a result row (extra columns, e.g. of a join, are ignored)."""
        return cls(**{name: row[name] for name in cls.__slots__})


TENANTS = cast(Table, Tenant.__table__)
_c = TENANTS.c

GET_TENANT = select(TENANTS).where(_c.id == bindparam("tenant_id"))
ALL_TENANTS = select(TENANTS).order_by(_c.created_at, _c.id)
TENANTS_BY_RP_ID = select(TENANTS).where(_c.rp_id == bindparam("rp_id"))
TENANT_ORIGINS = select(_c.id, _c.origins)


KEY_MATCHES = or_(
    _c.secret_key_hash == bindparam("key_hash"),
    and_(
        _c.previous_secret_key_hash == bindparam("key_hash"),
        _c.previous_secret_key_expires_at > bindparam("now", type_=UTCDateTime()),
    ),
)
# The tenant whose secret key (or previous key, within its grace period) has this hash.
TENANT_BY_KEY = select(TENANTS).where(KEY_MATCHES).limit(1)
# The same check for one known tenant: its version (`updated_at`) when the key is still good.
TENANT_VERSION_BY_KEY = select(_c.updated_at).where(_c.id == bindparam("tenant_id"), KEY_MATCHES)

SAVE_SETTINGS = (
    update(TENANTS)
    .where(_c.id == bindparam("tenant_id"))
    .values(settings=bindparam("settings"), updated_at=bindparam("updated_at"))
    .returning(TENANTS)
)


async def get_tenant(db: Db, tenant_id: str) -> TenantRow | None:
    row = await db.first(GET_TENANT, {"tenant_id": tenant_id})
    return None if row is None else TenantRow.of(row)


async def get_tenant_by_key(db: Db, key_hash: str, now: datetime) -> TenantRow | None:
    row = await db.first(TENANT_BY_KEY, {"key_hash": key_hash, "now": now})
    return None if row is None else TenantRow.of(row)


async def tenant_version_by_key(
    db: Db, tenant_id: str, key_hash: str, now: datetime
) -> datetime | None:
    """The tenant's `updated_at` if this key still opens it; None when it does not."""
    version: datetime | None = await db.scalar(
        TENANT_VERSION_BY_KEY, {"tenant_id": tenant_id, "key_hash": key_hash, "now": now}
    )
    return version


async def find_tenants(db: Db) -> list[TenantRow]:
    return [TenantRow.of(row) for row in await db.all(ALL_TENANTS)]


async def find_tenants_by_rp_id(db: Db, rp_id: str) -> list[TenantRow]:
    return [TenantRow.of(row) for row in await db.all(TENANTS_BY_RP_ID, {"rp_id": rp_id})]


async def find_tenant_origins(db: Db) -> list[tuple[str, list[str]]]:
    """(id, origins) of every tenant: what the CORS index is built from."""
    rows = await db.all(TENANT_ORIGINS)
    return [(row["id"], list(row["origins"] or ())) for row in rows]


async def insert_tenant(db: Db, values: Mapping[str, Any]) -> TenantRow:
    now = utcnow()
    row = await db.first(
        insert(TENANTS).values({"created_at": now, "updated_at": now, **values}).returning(TENANTS)
    )
    assert row is not None
    return TenantRow.of(row)


async def update_tenant(db: Db, tenant_id: str, values: Mapping[str, Any]) -> TenantRow | None:
    """Change these columns (and bump `updated_at`, the tenant's version)."""
    row = await db.first(
        update(TENANTS)
        .where(_c.id == tenant_id)
        .values({**values, "updated_at": utcnow()})
        .returning(TENANTS)
    )
    return None if row is None else TenantRow.of(row)


async def save_settings(db: Db, tenant_id: str, settings: dict[str, Any]) -> TenantRow | None:
    row = await db.first(
        SAVE_SETTINGS, {"tenant_id": tenant_id, "settings": settings, "updated_at": utcnow()}
    )
    return None if row is None else TenantRow.of(row)


_PASSKEYS = cast(Table, PasskeyCredential.__table__)
COUNT_TENANT_PASSKEYS = (
    select(func.count())
    .select_from(_PASSKEYS)
    .where(_PASSKEYS.c.tenant_id == bindparam("tenant_id"))
)


async def count_tenant_passkeys(db: Db, tenant_id: str) -> int:
    return int(await db.scalar(COUNT_TENANT_PASSKEYS, {"tenant_id": tenant_id}) or 0)


async def compact(engine: AsyncEngine) -> None:
    """Rewrite the database so deleted or overwritten values leave no copies in free pages:
    VACUUM on SQLite (and a WAL checkpoint), VACUUM FULL of `tenants` on PostgreSQL."""
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if path and path != ":memory:":
            await asyncio.to_thread(_vacuum_sqlite, path)
        return
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql("VACUUM FULL tenants")


def _vacuum_sqlite(path: str) -> None:
    connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        connection.execute("VACUUM")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
