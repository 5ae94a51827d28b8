"""Recovery codes (RECOVERY_CODE): each a keyed MAC in `recovery_codes`, used once
(services/recovery_codes.py holds the rules)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update

from passgate.server.store.authenticators import AUTHENTICATORS, AuthenticatorRow
from passgate.server.store.db import Db
from passgate.server.store.tables import RecoveryCode

METHOD = "RECOVERY_CODE"
CODES = cast(Table, RecoveryCode.__table__)
_r = CODES.c
_a = AUTHENTICATORS.c

FIND_SET = (
    select(AUTHENTICATORS)
    .where(
        _a.tenant_id == bindparam("tenant_id"),
        _a.user_id == bindparam("user_id"),
        _a.verification_method == METHOD,
    )
    .order_by(_a.created_at, _a.id)
)
DELETE_CODES = delete(CODES).where(_r.authenticator_id == bindparam("p_authenticator_id"))
INSERT_CODE = insert(CODES)
# One statement finds the code by its MAC and uses it up: of two requests with the same
# code, exactly one sees it unused.
USE_CODE = (
    update(CODES)
    .where(
        _r.tenant_id == bindparam("p_tenant_id"),
        _r.user_id == bindparam("p_user_id"),
        _r.code_mac == bindparam("p_code_mac"),
        _r.used_at.is_(None),
    )
    .values(used_at=bindparam("p_now"))
    .returning(_r.authenticator_id)
)
COUNT_UNUSED = select(func.count()).where(
    _r.authenticator_id == bindparam("authenticator_id"), _r.used_at.is_(None)
)


async def find_sets(db: Db, tenant_id: str, user_id: str) -> list[AuthenticatorRow]:
    """The user's RECOVERY_CODE authenticators (one, unless enrolments raced)."""
    rows = await db.all(FIND_SET, {"tenant_id": tenant_id, "user_id": user_id})
    return [AuthenticatorRow.of(row) for row in rows]


async def replace_codes(
    db: Db, *, authenticator_id: str, tenant_id: str, user_id: str, code_macs: Sequence[str]
) -> None:
    """The authenticator's codes become exactly these (the old ones stop working)."""
    await db.execute(DELETE_CODES, {"p_authenticator_id": authenticator_id})
    await db.execute_many(
        INSERT_CODE,
        [
            {
                "authenticator_id": authenticator_id,
                "code_mac": code_mac,
                "tenant_id": tenant_id,
                "user_id": user_id,
            }
            for code_mac in code_macs
        ],
    )


async def use_code(
    db: Db, tenant_id: str, user_id: str, code_mac: str, now: datetime
) -> str | None:
    """Use up the user's unused code with this MAC: its authenticator's id, or None."""
    found = await db.first(
        USE_CODE,
        {"p_tenant_id": tenant_id, "p_user_id": user_id, "p_code_mac": code_mac, "p_now": now},
    )
    return None if found is None else str(found["authenticator_id"])


async def count_unused(db: Db, authenticator_id: str) -> int:
    return int(await db.scalar(COUNT_UNUSED, {"authenticator_id": authenticator_id}) or 0)
