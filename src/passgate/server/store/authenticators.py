"""Authenticators (what a user verifies with): rows and statements."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select

from passgate.server.store.db import Db
from passgate.server.store.tables import Authenticator, utcnow


@dataclass(frozen=True, kw_only=True, slots=True)
class AuthenticatorRow:
    """A row of `authenticators` (store/tables.py says what each column means)."""

    id: str
    tenant_id: str
    user_id: str
    verification_method: str
    email: str | None
    phone_number: str | None
    username: str | None
    display_name: str | None
    is_default: bool
    created_at: datetime
    verified_at: datetime | None
    last_verified_at: datetime | None

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> AuthenticatorRow:
        """From a result row (extra columns, e.g. of a join, are ignored)."""
        return cls(**{name: row[name] for name in cls.__slots__})


AUTHENTICATORS = cast(Table, Authenticator.__table__)
_c = AUTHENTICATORS.c

FIND_AUTHENTICATORS = (
    select(AUTHENTICATORS)
    .where(_c.tenant_id == bindparam("tenant_id"), _c.user_id == bindparam("user_id"))
    .order_by(_c.created_at, _c.id)
)
ENROLLED_METHODS = (
    select(_c.verification_method)
    .where(_c.tenant_id == bindparam("tenant_id"), _c.user_id == bindparam("user_id"))
    .distinct()
    .order_by(_c.verification_method)
)
# One statement: the foreign keys cascade to its passkey credential or push device.
DELETE_AUTHENTICATOR = delete(AUTHENTICATORS).where(
    _c.id == bindparam("authenticator_id"),
    _c.tenant_id == bindparam("tenant_id"),
    _c.user_id == bindparam("user_id"),
)
INSERT_AUTHENTICATOR = insert(AUTHENTICATORS).returning(*AUTHENTICATORS.c)


async def find_authenticators(db: Db, tenant_id: str, user_id: str) -> list[AuthenticatorRow]:
    rows = await db.all(FIND_AUTHENTICATORS, {"tenant_id": tenant_id, "user_id": user_id})
    return [AuthenticatorRow.of(row) for row in rows]


async def enrolled_methods(db: Db, tenant_id: str, user_id: str) -> list[str]:
    rows = await db.all(ENROLLED_METHODS, {"tenant_id": tenant_id, "user_id": user_id})
    return [row["verification_method"] for row in rows]


async def delete_authenticator(db: Db, tenant_id: str, user_id: str, authenticator_id: str) -> bool:
    """True if the user had it."""
    deleted = await db.rowcount(
        DELETE_AUTHENTICATOR,
        {"tenant_id": tenant_id, "user_id": user_id, "authenticator_id": authenticator_id},
    )
    return deleted > 0


async def insert_authenticator(db: Db, values: Mapping[str, Any]) -> AuthenticatorRow:
    now = utcnow()
    row = await db.first(
        INSERT_AUTHENTICATOR, {"id": str(uuid.uuid4()), "created_at": now, **values}
    )
    assert row is not None
    return AuthenticatorRow.of(row)
