"""Users: rows and statements."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    distinct,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql

from passgate.server.store.db import Db, Statements
from passgate.server.store.tables import Authenticator, Tenant, User, UTCDateTime, utcnow


@dataclass(frozen=True, kw_only=True, slots=True)
class UserRow:
    """A row of `users` (store/tables.py says what each column means)."""

    tenant_id: str
    user_id: str
    handle: str
    email: str | None
    email_verified: bool
    phone_number: str | None
    phone_number_verified: bool
    username: str | None
    display_name: str | None
    custom: dict[str, Any] | None
    locale: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> UserRow:
        """From a result row (extra columns, e.g. of a join, are ignored)."""
        return cls(**{name: row[name] for name in cls.__slots__})


USERS = cast(Table, User.__table__)
_c = USERS.c
_TENANTS = cast(Table, Tenant.__table__)
_AUTHENTICATORS = cast(Table, Authenticator.__table__)
_t = _TENANTS.c

GET_USER = select(USERS).where(
    _c.tenant_id == bindparam("tenant_id"), _c.user_id == bindparam("user_id")
)
_KEY_MATCHES = or_(
    _t.secret_key_hash == bindparam("key_hash"),
    and_(
        _t.previous_secret_key_hash == bindparam("key_hash"),
        _t.previous_secret_key_expires_at > bindparam("now", type_=UTCDateTime()),
    ),
)


def enrolled_methods_of(insert: Any, tenant_id: Any, user_id: Any) -> Any:
    """A scalar subquery of the user's enrolled methods, comma-separated (for a statement's
    RETURNING; `insert` is the dialect's, which says how to aggregate): read it back with
    `parse_enrolled_methods`."""
    method = distinct(_AUTHENTICATORS.c.verification_method)
    joined = (
        func.string_agg(method, ",") if insert is postgresql.insert else func.group_concat(method)
    )
    return (
        select(joined)
        .where(
            _AUTHENTICATORS.c.tenant_id == tenant_id,
            _AUTHENTICATORS.c.user_id == user_id,
            _AUTHENTICATORS.c.verified_at.is_not(None),
        )
        .scalar_subquery()
        .label("enrolled_methods")
    )


def parse_enrolled_methods(joined: str | None) -> list[str]:
    """What `enrolled_methods_of` returned, as a sorted list."""
    return sorted(set((joined or "").split(",")) - {""})


def _upsert_user(insert: Any) -> Any:
    """Track's one statement for its user: create or update the user, but only if the secret
    key still opens the tenant (checked here, not cached), and return with the user the
    tenant's version and the user's enrolled methods (comma-separated)."""
    tenant_version = (
        select(_t.updated_at).where(_t.id == bindparam("p_tenant_id")).scalar_subquery()
    )
    methods = enrolled_methods_of(insert, bindparam("p_tenant_id"), bindparam("p_user_id"))
    source = select(
        bindparam("p_tenant_id", type_=String()),
        bindparam("p_user_id", type_=String()),
        bindparam("p_handle", type_=String()),
        bindparam("p_email", type_=String()),
        literal(False),
        bindparam("p_phone_number", type_=String()),
        literal(False),
        bindparam("p_username", type_=String()),
        bindparam("now", type_=UTCDateTime()),
        bindparam("now", type_=UTCDateTime()),
    ).where(_t.id == bindparam("p_tenant_id"), _KEY_MATCHES)
    statement = insert(USERS).from_select(
        [
            "tenant_id",
            "user_id",
            "handle",
            "email",
            "email_verified",
            "phone_number",
            "phone_number_verified",
            "username",
            "created_at",
            "updated_at",
        ],
        source,
    )
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[_c.tenant_id, _c.user_id],
        set_={
            "username": func.coalesce(excluded.username, _c.username),
            "email": func.coalesce(excluded.email, _c.email),
            "email_verified": case(
                (
                    and_(excluded.email.is_not(None), excluded.email.is_distinct_from(_c.email)),
                    literal(False),
                ),
                else_=_c.email_verified,
            ),
            "phone_number": func.coalesce(excluded.phone_number, _c.phone_number),
            "phone_number_verified": case(
                (
                    and_(
                        excluded.phone_number.is_not(None),
                        excluded.phone_number.is_distinct_from(_c.phone_number),
                    ),
                    literal(False),
                ),
                else_=_c.phone_number_verified,
            ),
        },
    ).returning(
        *USERS.c,
        tenant_version.label("tenant_version"),
        methods,
    )


TRACK_USER = Statements(_upsert_user)


@dataclass(frozen=True, kw_only=True, slots=True)
class TrackedUser:
    user: UserRow
    tenant_version: datetime
    enrolled_methods: list[str]

    @property
    def username(self) -> str | None:
        return self.user.username


async def track_user(
    db: Db,
    tenant_id: str,
    user_id: str,
    *,
    key_hash: str,
    email: str | None,
    phone_number: str | None,
    username: str | None,
    now: datetime,
) -> TrackedUser | None:
    """Create or update the user track names (a changed email or phone number is no longer
    verified), in one statement that also checks the secret key: None when it no longer
    opens the tenant (nothing written)."""
    params = _track_params(tenant_id, user_id, key_hash, email, phone_number, username, now)
    row = await db.first(TRACK_USER[db], params)
    return None if row is None else _tracked(row)


def _track_params(
    tenant_id: str,
    user_id: str,
    key_hash: str,
    email: str | None,
    phone_number: str | None,
    username: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The parameters of track's user upsert (`_upsert_user`), alone or with the action."""
    return {
        "p_tenant_id": tenant_id,
        "p_user_id": user_id,
        "p_handle": str(uuid.uuid4()),
        "p_email": email,
        "p_phone_number": phone_number,
        "p_username": username,
        "key_hash": key_hash,
        "now": now,
    }


def _tracked(row: Mapping[Any, Any]) -> TrackedUser:
    """The user, tenant version and enrolled methods `_upsert_user` returns."""
    methods = parse_enrolled_methods(row["enrolled_methods"])
    return TrackedUser(
        user=UserRow.of(row), tenant_version=row["tenant_version"], enrolled_methods=methods
    )


async def get_user(db: Db, tenant_id: str, user_id: str) -> UserRow | None:
    row = await db.first(GET_USER, {"tenant_id": tenant_id, "user_id": user_id})
    return None if row is None else UserRow.of(row)


ENSURE_USER = Statements(lambda insert: insert(USERS).on_conflict_do_nothing().returning(*USERS.c))
# One statement: the foreign keys cascade to its authenticators (their passkey credentials
# and push devices) and its actions (their push challenges).
DELETE_USER = delete(USERS).where(
    _c.tenant_id == bindparam("tenant_id"), _c.user_id == bindparam("user_id")
)


async def ensure_user(db: Db, tenant_id: str, user_id: str) -> UserRow:
    """The user, created if missing (safe when two requests create it at once)."""
    now = utcnow()
    row = await db.first(
        ENSURE_USER[db],
        {
            "tenant_id": tenant_id,
            "user_id": user_id,
            "handle": str(uuid.uuid4()),
            "email_verified": False,
            "phone_number_verified": False,
            "created_at": now,
            "updated_at": now,
        },
    )
    if row is None:
        row = await db.first(GET_USER, {"tenant_id": tenant_id, "user_id": user_id})
        assert row is not None
    return UserRow.of(row)


async def update_user(db: Db, tenant_id: str, user_id: str, values: Mapping[str, Any]) -> UserRow:
    row = await db.first(
        update(USERS)
        .where(_c.tenant_id == tenant_id, _c.user_id == user_id)
        .values({**values, "updated_at": utcnow()})
        .returning(*USERS.c)
    )
    assert row is not None
    return UserRow.of(row)


async def delete_user(db: Db, tenant_id: str, user_id: str) -> bool:
    """True if the user existed."""
    return await db.rowcount(DELETE_USER, {"tenant_id": tenant_id, "user_id": user_id}) > 0


async def find_users(
    db: Db,
    tenant_id: str,
    *,
    username: str | None,
    email: str | None,
    phone_number: str | None,
    after_user_id: str | None,
    limit: int,
) -> list[UserRow]:
    query = select(USERS).where(_c.tenant_id == tenant_id)
    if username is not None:
        query = query.where(_c.username == username)
    if email is not None:
        query = query.where(_c.email == email)
    if phone_number is not None:
        query = query.where(_c.phone_number == phone_number)
    if after_user_id is not None:
        query = query.where(_c.user_id > after_user_id)
    rows = await db.all(query.order_by(_c.user_id).limit(limit))
    return [UserRow.of(row) for row in rows]


async def search_users(db: Db, tenant_id: str, text: str, limit: int) -> list[UserRow]:
    """Users whose id starts with `text`, or whose email, username or phone number is it
    (the tenant's indexes on each), for the console."""
    query = (
        select(USERS)
        .where(
            _c.tenant_id == tenant_id,
            or_(
                _c.user_id.startswith(text, autoescape=True),
                _c.email == text,
                _c.username == text,
                _c.phone_number == text,
            ),
        )
        .order_by(_c.user_id)
        .limit(limit)
    )
    return [UserRow.of(row) for row in await db.all(query)]


def _track_in_one(insert: Any) -> Any:
    """PostgreSQL only: track's user upsert and its action's insert in one statement (a
    writable CTE). The action is inserted only when the upsert wrote the user, that is when
    the secret key still opens the tenant; the result is one row with the user's columns and
    the inserted action's (prefixed `a_`, NULL when its idempotency key was taken)."""
    from passgate.server.store.actions import TRACKED_COLUMNS
    from passgate.server.store.tables import Action

    actions = cast(Table, Action.__table__)
    upsert = _upsert_user(insert).cte("tracked_user")
    names = list(TRACKED_COLUMNS)
    values = [
        bindparam(f"a_{name}", type_=actions.c[name].type)
        if name not in ("tenant_id", "user_id")
        else upsert.c[name]
        for name in names
    ]
    inserted = (
        insert(actions)
        .from_select(names, select(*values).select_from(upsert))
        .on_conflict_do_nothing()
        .returning(*[column.label(f"a_{column.name}") for column in actions.c])
        .cte("tracked_action")
    )
    return select(upsert, inserted).select_from(upsert.outerjoin(inserted, literal(True)))


TRACK_IN_ONE = Statements(_track_in_one)


@dataclass(frozen=True, kw_only=True, slots=True)
class TrackedUserAndAction:
    tracked: TrackedUser
    # None when the action's idempotency key was already taken (nothing inserted).
    action: Mapping[str, Any] | None


async def track_user_and_action(
    db: Db,
    tenant_id: str,
    user_id: str,
    *,
    key_hash: str,
    email: str | None,
    phone_number: str | None,
    username: str | None,
    now: datetime,
    action: Mapping[str, Any],
) -> TrackedUserAndAction | None:
    """`track_user` and the action's insert in one statement (PostgreSQL): None when the key
    no longer opens the tenant (nothing written)."""
    params = _track_params(tenant_id, user_id, key_hash, email, phone_number, username, now)
    values = {
        "id": str(uuid.uuid4()),
        "state_updated_at": now,
        "created_at": now,
        "updated_at": now,
        **action,
    }
    params.update({f"a_{name}": value for name, value in values.items()})
    row = await db.first(TRACK_IN_ONE[db], params)
    if row is None:
        return None
    tracked = _tracked(row)
    inserted = None
    if row["a_id"] is not None:
        inserted = {key[2:]: value for key, value in row.items() if key.startswith("a_")}
    return TrackedUserAndAction(tracked=tracked, action=inserted)
