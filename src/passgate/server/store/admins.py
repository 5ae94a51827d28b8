"""Statements of the admin console: admins, their passkeys, enrolment links, sessions and
single-use WebAuthn challenges. Each "use once" is one conditional UPDATE."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from passgate.server.store.db import Db
from passgate.server.store.tables import (
    Admin,
    AdminChallenge,
    AdminLink,
    AdminPasskey,
    AdminSession,
    UTCDateTime,
)

R = TypeVar("R", bound="_Row")


class _Row:
    __slots__: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def of(cls: type[R], row: Mapping[Any, Any]) -> R:
        """From a result row (extra columns, e.g. of a join, are ignored)."""
        return cls(**{name: row[name] for name in cls.__slots__})

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, kw_only=True, slots=True)
class AdminRow(_Row):
    id: str
    email: str
    handle: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class AdminPasskeyRow(_Row):
    id: str
    admin_id: str
    credential_id: str
    public_key: bytes
    sign_count: int
    aaguid: str
    name: str | None
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class AdminLinkRow(_Row):
    id: str
    admin_id: str
    token_hash: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class AdminSessionRow(_Row):
    id: str
    admin_id: str
    token_hash: str
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None
    ip_address: str | None
    user_agent: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class AdminChallengeRow(_Row):
    id: str
    purpose: str
    state: str
    challenge: bytes
    admin_id: str | None
    link_id: str | None
    binding_hash: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


ADMINS = cast(Table, Admin.__table__)
ADMIN_PASSKEYS = cast(Table, AdminPasskey.__table__)
ADMIN_LINKS = cast(Table, AdminLink.__table__)
ADMIN_SESSIONS = cast(Table, AdminSession.__table__)
ADMIN_CHALLENGES = cast(Table, AdminChallenge.__table__)
_a, _p, _l, _s, _ch = (
    ADMINS.c,
    ADMIN_PASSKEYS.c,
    ADMIN_LINKS.c,
    ADMIN_SESSIONS.c,
    ADMIN_CHALLENGES.c,
)


def _now() -> Any:
    return bindparam("now", type_=UTCDateTime())


# The admin's columns beside a joined row's, prefixed so they do not clash.
_ADMIN_COLUMNS = [column.label(f"admin__{column.name}") for column in ADMINS.c]


def _admin_of(row: Mapping[Any, Any]) -> AdminRow:
    return AdminRow(**{name: row[f"admin__{name}"] for name in AdminRow.__slots__})


# Admins ----------------------------------------------------------------------------------

ADMIN_BY_ID = select(ADMINS).where(_a.id == bindparam("admin_id"))
ADMIN_BY_EMAIL = select(ADMINS).where(_a.email == bindparam("email"))
ALL_ADMINS = select(ADMINS).order_by(_a.created_at, _a.email)
PASSKEY_COUNTS = select(_p.admin_id, func.count().label("count")).group_by(_p.admin_id)
INSERT_ADMIN = insert(ADMINS)
DELETE_ADMIN = delete(ADMINS).where(_a.id == bindparam("admin_id"))


async def get_admin(db: Db, admin_id: str) -> AdminRow | None:
    row = await db.first(ADMIN_BY_ID, {"admin_id": admin_id})
    return None if row is None else AdminRow.of(row)


async def get_admin_by_email(db: Db, email: str) -> AdminRow | None:
    row = await db.first(ADMIN_BY_EMAIL, {"email": email})
    return None if row is None else AdminRow.of(row)


async def find_admins(db: Db) -> list[AdminRow]:
    return [AdminRow.of(row) for row in await db.all(ALL_ADMINS)]


async def passkey_counts(db: Db) -> dict[str, int]:
    return {row["admin_id"]: int(row["count"]) for row in await db.all(PASSKEY_COUNTS)}


async def insert_admin(db: Db, admin: AdminRow) -> bool:
    """Add an admin; False when the email (or handle) is taken, by a racing command say."""
    try:
        async with db.savepoint():
            await db.execute(INSERT_ADMIN, admin.values())
    except IntegrityError:
        return False
    return True


async def delete_admin(db: Db, admin_id: str) -> bool:
    """Delete an admin; their passkeys, links, sessions and challenges go with them (FKs)."""
    return await db.rowcount(DELETE_ADMIN, {"admin_id": admin_id}) > 0


# Passkeys --------------------------------------------------------------------------------

PASSKEYS_OF = (
    select(ADMIN_PASSKEYS)
    .where(_p.admin_id == bindparam("admin_id"))
    .order_by(_p.created_at, _p.id)
)
PASSKEY_BY_CREDENTIAL = (
    select(ADMIN_PASSKEYS, *_ADMIN_COLUMNS)
    .join(ADMINS, _a.id == _p.admin_id)
    .where(_p.credential_id == bindparam("credential_id"))
)
INSERT_PASSKEY = insert(ADMIN_PASSKEYS)
RECORD_PASSKEY_USE = (
    update(ADMIN_PASSKEYS)
    .where(_p.id == bindparam("passkey_id"))
    .values(sign_count=bindparam("new_sign_count"), last_used_at=_now())
)
DELETE_PASSKEY = delete(ADMIN_PASSKEYS).where(
    _p.id == bindparam("passkey_id"), _p.admin_id == bindparam("admin_id")
)


async def find_passkeys(db: Db, admin_id: str) -> list[AdminPasskeyRow]:
    return [AdminPasskeyRow.of(row) for row in await db.all(PASSKEYS_OF, {"admin_id": admin_id})]


async def get_passkey_by_credential(
    db: Db, credential_id: str
) -> tuple[AdminPasskeyRow, AdminRow] | None:
    row = await db.first(PASSKEY_BY_CREDENTIAL, {"credential_id": credential_id})
    return None if row is None else (AdminPasskeyRow.of(row), _admin_of(row))


async def insert_passkey(db: Db, passkey: AdminPasskeyRow) -> bool:
    """Add a passkey; False when its credential id is already registered."""
    try:
        async with db.savepoint():
            await db.execute(INSERT_PASSKEY, passkey.values())
    except IntegrityError:
        return False
    return True


async def record_passkey_use(db: Db, passkey_id: str, sign_count: int, now: datetime) -> None:
    await db.execute(
        RECORD_PASSKEY_USE, {"passkey_id": passkey_id, "new_sign_count": sign_count, "now": now}
    )


async def delete_passkey(db: Db, admin_id: str, passkey_id: str) -> bool:
    return await db.rowcount(DELETE_PASSKEY, {"passkey_id": passkey_id, "admin_id": admin_id}) > 0


# Enrolment links -------------------------------------------------------------------------

LINK_BY_HASH = (
    select(ADMIN_LINKS, *_ADMIN_COLUMNS)
    .join(ADMINS, _a.id == _l.admin_id)
    .where(_l.token_hash == bindparam("token_hash"))
)
INSERT_LINK = insert(ADMIN_LINKS)
USE_LINK = (
    update(ADMIN_LINKS)
    .where(_l.id == bindparam("link_id"), _l.used_at.is_(None), _l.expires_at > _now())
    .values(used_at=_now())
)


async def get_link_by_hash(db: Db, token_hash: str) -> tuple[AdminLinkRow, AdminRow] | None:
    """A link with its admin (one join)."""
    row = await db.first(LINK_BY_HASH, {"token_hash": token_hash})
    return None if row is None else (AdminLinkRow.of(row), _admin_of(row))


async def insert_link(db: Db, link: AdminLinkRow) -> None:
    await db.execute(INSERT_LINK, link.values())


async def consume_link(db: Db, link_id: str, now: datetime) -> bool:
    """Atomically mark an unused, unexpired link used: True for exactly one caller, ever."""
    return await db.rowcount(USE_LINK, {"link_id": link_id, "now": now}) == 1


# Sessions --------------------------------------------------------------------------------

SESSION_BY_HASH = (
    select(ADMIN_SESSIONS, *_ADMIN_COLUMNS)
    .join(ADMINS, _a.id == _s.admin_id)
    .where(_s.token_hash == bindparam("token_hash"))
)
INSERT_SESSION = insert(ADMIN_SESSIONS)
TOUCH_SESSION = (
    update(ADMIN_SESSIONS).where(_s.id == bindparam("session_id")).values(last_seen_at=_now())
)
LIVE_SESSIONS = (
    select(ADMIN_SESSIONS)
    .where(
        _s.admin_id == bindparam("admin_id"),
        _s.revoked_at.is_(None),
        _s.expires_at > _now(),
        _s.last_seen_at > bindparam("idle_since", type_=UTCDateTime()),
    )
    .order_by(_s.last_seen_at.desc())
)
_REVOKE = (
    update(ADMIN_SESSIONS)
    .where(_s.admin_id == bindparam("of_admin"), _s.revoked_at.is_(None))
    .values(revoked_at=_now())
)
REVOKE_ALL_SESSIONS = _REVOKE
REVOKE_SESSION = _REVOKE.where(_s.id == bindparam("session_id"))


async def get_session_by_hash(db: Db, token_hash: str) -> tuple[AdminSessionRow, AdminRow] | None:
    row = await db.first(SESSION_BY_HASH, {"token_hash": token_hash})
    return None if row is None else (AdminSessionRow.of(row), _admin_of(row))


async def insert_session(db: Db, row: AdminSessionRow) -> None:
    await db.execute(INSERT_SESSION, row.values())


async def touch_session(db: Db, session_id: str, now: datetime) -> None:
    await db.execute(TOUCH_SESSION, {"session_id": session_id, "now": now})


async def find_live_sessions(
    db: Db, admin_id: str, *, now: datetime, idle_since: datetime
) -> list[AdminSessionRow]:
    """An admin's sessions that are neither revoked, expired nor idle too long."""
    rows = await db.all(LIVE_SESSIONS, {"admin_id": admin_id, "now": now, "idle_since": idle_since})
    return [AdminSessionRow.of(row) for row in rows]


async def revoke_sessions(
    db: Db, admin_id: str, now: datetime, session_id: str | None = None
) -> int:
    """Revoke one of an admin's sessions, or all of them; returns how many were live."""
    if session_id is None:
        return await db.rowcount(REVOKE_ALL_SESSIONS, {"of_admin": admin_id, "now": now})
    return await db.rowcount(
        REVOKE_SESSION, {"of_admin": admin_id, "now": now, "session_id": session_id}
    )


# Challenges ------------------------------------------------------------------------------

INSERT_CHALLENGE = insert(ADMIN_CHALLENGES)
CONSUME_CHALLENGE = (
    update(ADMIN_CHALLENGES)
    .where(
        _ch.id == bindparam("challenge_id"),
        _ch.purpose == bindparam("for_purpose"),
        _ch.state == "pending",
        _ch.expires_at > _now(),
    )
    .values(state="used", used_at=_now())
    .returning(ADMIN_CHALLENGES)
)


async def insert_challenge(db: Db, challenge: AdminChallengeRow) -> None:
    await db.execute(INSERT_CHALLENGE, challenge.values())


async def consume_challenge(
    db: Db, challenge_id: str, purpose: str, now: datetime
) -> AdminChallengeRow | None:
    """Use up a pending, unexpired challenge: for exactly one caller, ever."""
    row = await db.first(
        CONSUME_CHALLENGE, {"challenge_id": challenge_id, "for_purpose": purpose, "now": now}
    )
    return None if row is None else AdminChallengeRow.of(row)
