"""Authenticator apps (AUTHENTICATOR_APP): their sealed shared secrets in `totp_secrets`, the
last time step each accepted, and the statements on their `authenticators` rows
(services/totp.py holds the rules)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, or_, select, update

from passgate.server.store.authenticators import AUTHENTICATORS, AuthenticatorRow
from passgate.server.store.db import Db
from passgate.server.store.tables import TotpSecret, User
from passgate.server.store.users import UserRow

METHOD = "AUTHENTICATOR_APP"
SECRETS = cast(Table, TotpSecret.__table__)
_s = SECRETS.c
_a = AUTHENTICATORS.c
_USERS = cast(Table, User.__table__)


@dataclass(frozen=True, kw_only=True, slots=True)
class TotpRow:
    """An authenticator app of a user: its authenticator, its sealed secret and the last
    time step a code was accepted for (None: none yet)."""

    authenticator: AuthenticatorRow
    secret: str
    last_step: int | None

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> TotpRow:
        return cls(
            authenticator=AuthenticatorRow.of(row),
            secret=row["secret"],
            last_step=row["last_step"],
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class SealedSecret:
    """One stored secret, for the master key's whole-database steps (services/secrets_box)."""

    authenticator_id: str
    tenant_id: str
    secret: str


FIND_USER_APPS = (
    select(AUTHENTICATORS, _s.secret, _s.last_step)
    .join(SECRETS, _s.authenticator_id == _a.id)
    .where(
        _a.tenant_id == bindparam("tenant_id"),
        _a.user_id == bindparam("user_id"),
        _a.verification_method == METHOD,
    )
    .order_by(_a.created_at, _a.id)
)
INSERT_SECRET = insert(SECRETS)
# A code is accepted once: only a step later than the last one accepted moves it on, so two
# requests racing with the same code (or an older one) cannot both pass.
ACCEPT_STEP = (
    update(SECRETS)
    .where(
        _s.authenticator_id == bindparam("p_authenticator_id"),
        or_(_s.last_step.is_(None), _s.last_step < bindparam("p_step")),
    )
    .values(last_step=bindparam("p_step"))
)
# The first code verified: the authenticator counts as enrolled from now on. Conditional, so
# of two first codes racing exactly one completes the enrolment.
MARK_VERIFIED = (
    update(AUTHENTICATORS)
    .where(_a.id == bindparam("p_authenticator_id"), _a.verified_at.is_(None))
    .values(verified_at=bindparam("p_now"), last_verified_at=bindparam("p_now"))
    .returning(*AUTHENTICATORS.c)
)
NOTE_VERIFIED = (
    update(AUTHENTICATORS)
    .where(_a.id == bindparam("p_authenticator_id"))
    .values(last_verified_at=bindparam("p_now"))
)
# The user's other authenticator apps (a newer one replaces them).
DELETE_OTHER_APPS = (
    delete(AUTHENTICATORS)
    .where(
        _a.tenant_id == bindparam("p_tenant_id"),
        _a.user_id == bindparam("p_user_id"),
        _a.verification_method == METHOD,
        _a.id != bindparam("p_keep"),
    )
    .returning(_a.id, _a.verified_at)
)
# The user's apps not verified yet (an enrolment started again replaces them).
DELETE_PENDING_APPS = delete(AUTHENTICATORS).where(
    _a.tenant_id == bindparam("p_tenant_id"),
    _a.user_id == bindparam("p_user_id"),
    _a.verification_method == METHOD,
    _a.verified_at.is_(None),
)
# The user's row, locked until the transaction ends (PostgreSQL; SQLite has one writer at a
# time): a user's enrolments of one method take turns.
LOCK_USER = (
    select(_USERS)
    .where(_USERS.c.tenant_id == bindparam("tenant_id"), _USERS.c.user_id == bindparam("user_id"))
    .with_for_update()
)
ALL_SECRETS = select(_s.authenticator_id, _s.tenant_id, _s.secret).order_by(_s.authenticator_id)
RESEAL = (
    update(SECRETS)
    .where(
        _s.authenticator_id == bindparam("p_authenticator_id"),
        _s.secret == bindparam("p_old"),
    )
    .values(secret=bindparam("p_new"))
)


async def user_apps(db: Db, tenant_id: str, user_id: str) -> list[TotpRow]:
    """The user's authenticator apps, verified or not, oldest first."""
    rows = await db.all(FIND_USER_APPS, {"tenant_id": tenant_id, "user_id": user_id})
    return [TotpRow.of(row) for row in rows]


async def insert_secret(db: Db, *, authenticator_id: str, tenant_id: str, secret: str) -> None:
    await db.execute(
        INSERT_SECRET,
        {"authenticator_id": authenticator_id, "tenant_id": tenant_id, "secret": secret},
    )


async def accept_step(db: Db, authenticator_id: str, step: int) -> bool:
    """Record `step` as the last accepted; False when it is not later than the last one."""
    changed = await db.rowcount(
        ACCEPT_STEP, {"p_authenticator_id": authenticator_id, "p_step": step}
    )
    return changed == 1


async def mark_verified(db: Db, authenticator_id: str, now: datetime) -> AuthenticatorRow | None:
    """Set the authenticator's `verified_at`; None when it was set already."""
    row = await db.first(MARK_VERIFIED, {"p_authenticator_id": authenticator_id, "p_now": now})
    return None if row is None else AuthenticatorRow.of(row)


async def note_verified(db: Db, authenticator_id: str, now: datetime) -> None:
    """The authenticator was just used (its `last_verified_at`)."""
    await db.execute(NOTE_VERIFIED, {"p_authenticator_id": authenticator_id, "p_now": now})


async def delete_other_apps(
    db: Db, tenant_id: str, user_id: str, keep: str
) -> list[tuple[str, bool]]:
    """Remove the user's authenticator apps but `keep`: each one's id and whether it had
    been verified."""
    rows = await db.all(
        DELETE_OTHER_APPS, {"p_tenant_id": tenant_id, "p_user_id": user_id, "p_keep": keep}
    )
    return [(row["id"], row["verified_at"] is not None) for row in rows]


async def delete_pending_apps(db: Db, tenant_id: str, user_id: str) -> None:
    await db.execute(DELETE_PENDING_APPS, {"p_tenant_id": tenant_id, "p_user_id": user_id})


async def lock_user(db: Db, tenant_id: str, user_id: str) -> UserRow:
    """The user (who must exist), locked until the transaction ends."""
    row = await db.first(LOCK_USER, {"tenant_id": tenant_id, "user_id": user_id})
    assert row is not None
    return UserRow.of(row)


async def all_secrets(db: Db) -> list[SealedSecret]:
    rows = await db.all(ALL_SECRETS)
    return [
        SealedSecret(
            authenticator_id=row["authenticator_id"],
            tenant_id=row["tenant_id"],
            secret=row["secret"],
        )
        for row in rows
    ]


async def reseal(db: Db, authenticator_id: str, old: str, new: str) -> bool:
    """Replace a stored secret with the same secret sealed again; False when the row changed
    or went meanwhile."""
    changed = await db.rowcount(
        RESEAL, {"p_authenticator_id": authenticator_id, "p_old": old, "p_new": new}
    )
    return changed == 1
