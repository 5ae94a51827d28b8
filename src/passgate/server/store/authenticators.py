"""Authenticators (what a user verifies with): rows and statements."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update

from passgate.server.store.db import Db
from passgate.server.store.push import PushDeviceRow
from passgate.server.store.tables import Authenticator, PasskeyCredential, PushDevice, utcnow


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
# Only verified authenticators count: an email, phone or TOTP enrolled but not yet verified
# is not enrolled (docs/fallback-methods.md).
ENROLLED_METHODS = (
    select(_c.verification_method)
    .where(
        _c.tenant_id == bindparam("tenant_id"),
        _c.user_id == bindparam("user_id"),
        _c.verified_at.is_not(None),
    )
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
_DEVICES = cast(Table, PushDevice.__table__)
# A user's push devices with their authenticators, expired ones included (the console's view).
FIND_PUSH_DEVICES = (
    select(_DEVICES, *[column.label(f"a_{column.name}") for column in AUTHENTICATORS.c])
    .join(AUTHENTICATORS, _c.id == _DEVICES.c.id)
    .where(
        _DEVICES.c.tenant_id == bindparam("tenant_id"),
        _DEVICES.c.user_id == bindparam("user_id"),
    )
    .order_by(_c.created_at, _DEVICES.c.id)
)
_PASSKEYS = cast(Table, PasskeyCredential.__table__)
RENAME_PASSKEY = (
    update(_PASSKEYS)
    .where(
        _PASSKEYS.c.tenant_id == bindparam("p_tenant_id"),
        _PASSKEYS.c.user_id == bindparam("p_user_id"),
        _PASSKEYS.c.authenticator_id == bindparam("p_authenticator_id"),
    )
    .values(name=bindparam("p_name"))
)


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


async def find_push_devices(
    db: Db, tenant_id: str, user_id: str
) -> list[tuple[AuthenticatorRow, PushDeviceRow]]:
    """A user's push devices, expired ones included, each with its authenticator."""
    rows = await db.all(FIND_PUSH_DEVICES, {"tenant_id": tenant_id, "user_id": user_id})
    found = []
    for row in rows:
        authenticator = {name: row[f"a_{name}"] for name in AuthenticatorRow.__slots__}
        found.append((AuthenticatorRow.of(authenticator), PushDeviceRow.of(row)))
    return found


async def rename_passkey(
    db: Db, tenant_id: str, user_id: str, authenticator_id: str, name: str | None
) -> bool:
    """Name the passkey of this authenticator (None: back to its model's name); False if the
    user has no such passkey."""
    params = {
        "p_tenant_id": tenant_id,
        "p_user_id": user_id,
        "p_authenticator_id": authenticator_id,
        "p_name": name,
    }
    return await db.rowcount(RENAME_PASSKEY, params) == 1
