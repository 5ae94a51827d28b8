"""Email magic links: rows and statements (services/magic_links.py says what they mean).

A link's life is three conditional UPDATEs on its row, each of which exactly one caller wins:
pending -> confirmed (the page's button, before it expires), confirmed -> finalized (the poll
of the token whose action asked for it), and nothing after that."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, insert, select, update

from passgate.server.store.authenticators import AUTHENTICATORS, AuthenticatorRow
from passgate.server.store.db import Db
from passgate.server.store.tables import Action, MagicLink, Tenant, User, UTCDateTime

PENDING, CONFIRMED, FINALIZED = "pending", "confirmed", "finalized"

MAGIC_LINKS = cast(Table, MagicLink.__table__)
_c = MAGIC_LINKS.c
ACTIONS = cast(Table, Action.__table__)
TENANTS = cast(Table, Tenant.__table__)
USERS = cast(Table, User.__table__)
_ACTIONS = ACTIONS.c
_TENANTS = TENANTS.c
_USERS = USERS.c
_a = AUTHENTICATORS.c


@dataclass(frozen=True, kw_only=True, slots=True)
class MagicLinkRow:
    """A row of `magic_links` (store/tables.py says what each column means)."""

    id: str
    tenant_id: str
    user_id: str
    action_id: str
    authenticator_id: str | None
    email: str
    link_mac: str
    state: str
    created_at: datetime
    expires_at: datetime
    confirmed_at: datetime | None
    finalized_at: datetime | None

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> MagicLinkRow:
        return cls(**{name: row[name] for name in cls.__slots__})


@dataclass(frozen=True, kw_only=True, slots=True)
class ActionLinks:
    """What the finalize poll reads in one statement: the tenant's version (None: no such
    tenant) and the links sent for the token's action (none: no link, or no such action)."""

    tenant_version: datetime | None
    links: list[MagicLinkRow]


def _now() -> Any:
    return bindparam("now", type_=UTCDateTime())


INSERT_LINK = insert(MAGIC_LINKS)
GET_LINK = select(MAGIC_LINKS).where(_c.id == bindparam("id"))
# The poll (ML3), one indexed read: the tenant by its key, the action by its unique key, its
# links by `ix_magic_links_action`. Outer joins, so a tenant with no such action (or an
# action with no link) still answers its version.
_ACTION_MATCH = and_(
    _ACTIONS.tenant_id == _TENANTS.id,
    _ACTIONS.user_id == bindparam("user_id"),
    _ACTIONS.action_code == bindparam("action_code"),
    _ACTIONS.idempotency_key == bindparam("idempotency_key"),
)
ACTION_LINKS = (
    select(_TENANTS.updated_at.label("tenant_version"), MAGIC_LINKS)
    .select_from(
        TENANTS.outerjoin(ACTIONS, _ACTION_MATCH).outerjoin(
            MAGIC_LINKS, _c.action_id == _ACTIONS.id
        )
    )
    .where(_TENANTS.id == bindparam("tenant_id"))
    .order_by(_c.created_at.desc())
)
COUNT_ACTION_LINKS = select(func.count()).where(_c.action_id == bindparam("action_id"))
CONFIRM = (
    update(MAGIC_LINKS)
    .where(_c.id == bindparam("link_id"), _c.state == PENDING, _c.expires_at > _now())
    .values(state=CONFIRMED, confirmed_at=_now())
)
FINALIZE = (
    update(MAGIC_LINKS)
    .where(_c.id == bindparam("link_id"), _c.state == CONFIRMED)
    .values(state=FINALIZED, finalized_at=_now())
)
# A user's email-magic-link authenticator for an address, verified ones first.
FIND_AUTHENTICATOR = (
    select(AUTHENTICATORS)
    .where(
        _a.tenant_id == bindparam("tenant_id"),
        _a.user_id == bindparam("user_id"),
        _a.verification_method == bindparam("method"),
        _a.email == bindparam("email"),
    )
    .order_by(_a.verified_at.is_(None), _a.created_at)
    .limit(1)
)
# The user's verified authenticator of a method that the link goes to (the newest verified).
FIND_VERIFIED = (
    select(AUTHENTICATORS)
    .where(
        _a.tenant_id == bindparam("tenant_id"),
        _a.user_id == bindparam("user_id"),
        _a.verification_method == bindparam("method"),
        _a.verified_at.is_not(None),
        _a.email.is_not(None),
    )
    .order_by(_a.is_default.desc(), _a.verified_at.desc())
    .limit(1)
)
GET_AUTHENTICATOR = select(AUTHENTICATORS).where(_a.id == bindparam("authenticator_id"))
# A link confirmed proves the address: the user's own email, when it is this one, is verified.
MARK_EMAIL_VERIFIED = (
    update(USERS)
    .where(
        _USERS.tenant_id == bindparam("u_tenant_id"),
        _USERS.user_id == bindparam("u_user_id"),
        _USERS.email == bindparam("u_email"),
        _USERS.email_verified.is_(False),
    )
    .values(email_verified=True)
)
MARK_VERIFIED = (
    update(AUTHENTICATORS)
    .where(_a.id == bindparam("authenticator_id"))
    .values(verified_at=func.coalesce(_a.verified_at, _now()), last_verified_at=_now())
    .returning(*AUTHENTICATORS.c)
)


async def insert_link(db: Db, values: Mapping[str, Any]) -> None:
    await db.execute(INSERT_LINK, dict(values))


async def get_link(db: Db, link_id: str) -> MagicLinkRow | None:
    row = await db.first(GET_LINK, {"id": link_id})
    return None if row is None else MagicLinkRow.of(row)


async def action_links(
    db: Db, tenant_id: str, user_id: str, action_code: str, idempotency_key: str
) -> ActionLinks:
    rows = await db.all(
        ACTION_LINKS,
        {
            "tenant_id": tenant_id,
            "user_id": user_id,
            "action_code": action_code,
            "idempotency_key": idempotency_key,
        },
    )
    return ActionLinks(
        tenant_version=rows[0]["tenant_version"] if rows else None,
        links=[MagicLinkRow.of(row) for row in rows if row["id"] is not None],
    )


async def count_action_links(db: Db, action_id: str) -> int:
    return int(await db.scalar(COUNT_ACTION_LINKS, {"action_id": action_id}) or 0)


async def confirm(db: Db, link_id: str, now: datetime) -> bool:
    """Pending and unexpired -> confirmed; False if the link was not (any more)."""
    return await db.rowcount(CONFIRM, {"link_id": link_id, "now": now}) == 1


async def finalize(db: Db, link_id: str, now: datetime) -> bool:
    """Confirmed -> finalized; False if another poll finalized it first."""
    return await db.rowcount(FINALIZE, {"link_id": link_id, "now": now}) == 1


def _authenticator(row: Mapping[str, Any] | None) -> AuthenticatorRow | None:
    return None if row is None else AuthenticatorRow.of(row)


async def find_authenticator(
    db: Db, tenant_id: str, user_id: str, method: str, email: str
) -> AuthenticatorRow | None:
    params = {"tenant_id": tenant_id, "user_id": user_id, "method": method, "email": email}
    return _authenticator(await db.first(FIND_AUTHENTICATOR, params))


async def find_verified(
    db: Db, tenant_id: str, user_id: str, method: str
) -> AuthenticatorRow | None:
    params = {"tenant_id": tenant_id, "user_id": user_id, "method": method}
    return _authenticator(await db.first(FIND_VERIFIED, params))


async def get_authenticator(db: Db, authenticator_id: str) -> AuthenticatorRow | None:
    return _authenticator(await db.first(GET_AUTHENTICATOR, {"authenticator_id": authenticator_id}))


async def mark_email_verified(db: Db, tenant_id: str, user_id: str, email: str) -> None:
    params = {"u_tenant_id": tenant_id, "u_user_id": user_id, "u_email": email}
    await db.rowcount(MARK_EMAIL_VERIFIED, params)


async def mark_verified(db: Db, authenticator_id: str, now: datetime) -> AuthenticatorRow | None:
    """The authenticator verified now (its first verification sets `verified_at`)."""
    params = {"authenticator_id": authenticator_id, "now": now}
    return _authenticator(await db.first(MARK_VERIFIED, params))
