"""Actions: rows and statements. The state machine is services/actions.py."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    CTE,
    Boolean,
    String,
    Table,
    and_,
    bindparam,
    case,
    exists,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql

from passgate.server.store.db import Db, Statements
from passgate.server.store.tables import Action, Authenticator, Tenant, User, utcnow
from passgate.server.store.tenants import KEY_MATCHES
from passgate.server.store.users import enrolled_methods_of, parse_enrolled_methods


@dataclass(frozen=True, kw_only=True, slots=True)
class ActionRow:
    """A row of `actions` (store/tables.py says what each column means)."""

    id: str
    tenant_id: str
    user_id: str
    action_code: str
    idempotency_key: str
    state: str
    state_updated_at: datetime
    created_at: datetime
    updated_at: datetime
    verification_method: str | None
    verified_by_authenticator_id: str | None
    ip_address: str | None
    user_agent: str | None
    device_id: str | None
    custom: dict[str, Any] | None
    scope: str | None
    redirect_url: str | None
    locale: str | None
    validated_at: datetime | None
    origin: str
    authenticator_added_at: datetime | None

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> ActionRow:
        """From a result row (extra columns, e.g. of a join, are ignored)."""
        return cls(**{name: row[name] for name in cls.__slots__})


ACTIONS = cast(Table, Action.__table__)
_TENANTS = cast(Table, Tenant.__table__)
_c = ACTIONS.c
_KEY = and_(
    _c.tenant_id == bindparam("p_tenant_id"),
    _c.user_id == bindparam("p_user_id"),
    _c.action_code == bindparam("p_action_code"),
    _c.idempotency_key == bindparam("p_idempotency_key"),
)
GET_ACTION = select(ACTIONS).where(_KEY)
INSERT_ACTION = Statements(
    lambda insert: insert(ACTIONS).on_conflict_do_nothing().returning(*ACTIONS.c)
)
# The columns `insert_action` (and track's writable CTE on PostgreSQL, store/users.py) write;
# the others start NULL.
TRACKED_COLUMNS = (
    "id",
    "tenant_id",
    "user_id",
    "action_code",
    "idempotency_key",
    "state",
    "state_updated_at",
    "created_at",
    "updated_at",
    "ip_address",
    "user_agent",
    "device_id",
    "custom",
    "scope",
    "redirect_url",
    "locale",
    "origin",
)


def _track_for_user(insert: Any) -> Any:
    """Track's one statement for a user who exists and whom track does not change: insert
    the action only if the secret key still opens the tenant and the user is there (both
    checked here), and return with it the tenant's version, the user's enrolled methods
    (comma-separated) and username. No row: the key, the user or the idempotency key is
    not as hoped, and the caller takes the upsert's way."""
    users = cast(Table, User.__table__).c
    tenant_id = bindparam("tenant_id", type_=String())
    user_id = bindparam("user_id", type_=String())
    source = select(
        *[bindparam(name, type_=ACTIONS.c[name].type) for name in TRACKED_COLUMNS]
    ).where(
        exists(select(_TENANTS.c.id).where(_TENANTS.c.id == tenant_id, KEY_MATCHES)),
        exists(select(users.user_id).where(users.tenant_id == tenant_id, users.user_id == user_id)),
    )
    return (
        insert(ACTIONS)
        .from_select(list(TRACKED_COLUMNS), source, include_defaults=False)
        .on_conflict_do_nothing()
        .returning(
            *ACTIONS.c,
            select(_TENANTS.c.updated_at)
            .where(_TENANTS.c.id == tenant_id)
            .scalar_subquery()
            .label("tenant_version"),
            enrolled_methods_of(insert, tenant_id, user_id),
            select(users.username)
            .where(users.tenant_id == tenant_id, users.user_id == user_id)
            .scalar_subquery()
            .label("username"),
        )
    )


TRACK_FOR_USER = Statements(_track_for_user)
# Mark the result validated, once, if it is redeemable: the action for exactly one caller.
REDEEM_ACTION = (
    update(ACTIONS)
    .where(
        _KEY,
        _c.state.in_(bindparam("p_states", expanding=True)),
        _c.validated_at.is_(None),
        # The secret key is checked here, in the statement that redeems, not from a cache.
        exists(select(_TENANTS.c.id).where(_TENANTS.c.id == _c.tenant_id, KEY_MATCHES)),
    )
    .values(validated_at=bindparam("p_now"))
    .returning(*ACTIONS.c)
)
SETTLE_ACTION = (
    update(ACTIONS)
    .where(_c.id == bindparam("p_action_id"), _c.state == bindparam("p_from_state"))
    .values(
        state=bindparam("p_state"),
        state_updated_at=bindparam("p_now"),
        updated_at=bindparam("p_now"),
        verification_method=bindparam("p_verification_method"),
        verified_by_authenticator_id=bindparam("p_authenticator_id"),
    )
)
SET_STATE = (
    update(ACTIONS)
    .where(_KEY)
    .values(
        state=bindparam("p_state"),
        state_updated_at=case(
            (_c.state == bindparam("p_state"), _c.state_updated_at), else_=bindparam("p_now")
        ),
        updated_at=bindparam("p_now"),
    )
    .returning(*ACTIONS.c)
)


@dataclass(frozen=True, kw_only=True, slots=True)
class AlongWith:
    """Writes to other tables that ride in the action's statement as data-modifying WITH
    queries (PostgreSQL only), built once by their own store module; every parameter of
    theirs is named `p_*` and none is a name the action's statement uses."""

    ctes: tuple[CTE, ...]
    params: Mapping[str, Any]


# (statement, its WITH queries) -> the statement with them, built once per pair.
_ALONG: dict[tuple[int, tuple[CTE, ...]], Any] = {}


def _along(statement: Any, along: AlongWith | None) -> Any:
    if along is None:
        return statement
    key = (id(statement), along.ctes)
    built = _ALONG.get(key)
    if built is None:
        built = _ALONG[key] = statement.add_cte(*along.ctes)
    return built


def _row(row: Mapping[str, Any] | None) -> ActionRow | None:
    return None if row is None else ActionRow.of(row)


async def get_action(
    db: Db, tenant_id: str, user_id: str, action_code: str, idempotency_key: str
) -> ActionRow | None:
    return _row(
        await db.first(
            GET_ACTION,
            {
                "p_tenant_id": tenant_id,
                "p_user_id": user_id,
                "p_action_code": action_code,
                "p_idempotency_key": idempotency_key,
            },
        )
    )


async def insert_action(db: Db, values: Mapping[str, Any]) -> ActionRow | None:
    """Insert an action (id and timestamps made here unless given); None when one with the
    same idempotency key already exists."""
    now = utcnow()
    row = {
        "id": str(uuid.uuid4()),
        "state_updated_at": now,
        "created_at": now,
        "updated_at": now,
        **values,
    }
    return _row(await db.first(INSERT_ACTION[db], row))


@dataclass(frozen=True, kw_only=True, slots=True)
class TrackedAction:
    action: ActionRow
    tenant_version: datetime
    enrolled_methods: list[str]
    username: str | None


async def track_for_user(
    db: Db, values: Mapping[str, Any], *, key_hash: str, now: datetime
) -> TrackedAction | None:
    """Insert a new action for a user who exists, checking the secret key in the same
    statement (`TRACK_FOR_USER`). None, with nothing written, when the key no longer opens
    the tenant, the user is not there, or the idempotency key is taken."""
    params = {
        "id": str(uuid.uuid4()),
        "state_updated_at": now,
        "created_at": now,
        "updated_at": now,
        **values,
        "key_hash": key_hash,
        "now": now,
    }
    row = await db.first(TRACK_FOR_USER[db], params)
    if row is None:
        return None
    methods = parse_enrolled_methods(row["enrolled_methods"])
    return TrackedAction(
        action=ActionRow.of(row),
        tenant_version=row["tenant_version"],
        enrolled_methods=methods,
        username=row["username"],
    )


async def find_actions(
    db: Db,
    tenant_id: str,
    user_id: str,
    *,
    from_date: datetime | None,
    action_codes: Sequence[str],
    state: str | None,
    limit: int,
) -> list[ActionRow]:
    query = select(ACTIONS).where(_c.tenant_id == tenant_id, _c.user_id == user_id)
    if from_date is not None:
        query = query.where(_c.created_at >= from_date)
    if action_codes:
        query = query.where(_c.action_code.in_(action_codes))
    if state is not None:
        query = query.where(_c.state == state)
    query = query.order_by(_c.created_at.desc(), _c.id).limit(limit)
    return [ActionRow.of(row) for row in await db.all(query)]


async def redeem_action(
    db: Db,
    tenant_id: str,
    user_id: str,
    action_code: str,
    idempotency_key: str,
    *,
    states: Sequence[str],
    key_hash: str,
    now: datetime,
) -> ActionRow | None:
    """Mark the action validated if it is redeemable and `key_hash` still opens its tenant:
    the action for exactly one caller, ever; None for everyone else."""
    return _row(
        await db.first(
            REDEEM_ACTION,
            {
                "p_tenant_id": tenant_id,
                "p_user_id": user_id,
                "p_action_code": action_code,
                "p_idempotency_key": idempotency_key,
                "p_states": list(states),
                "p_now": now,
                # The tenant's key check (store.tenants.KEY_MATCHES).
                "key_hash": key_hash,
                "now": now,
            },
        )
    )


async def set_state(
    db: Db,
    tenant_id: str,
    user_id: str,
    action_code: str,
    idempotency_key: str,
    *,
    state: str,
    now: datetime,
) -> ActionRow | None:
    """Set an action's state (its `state_updated_at` moves only when the state does)."""
    return _row(
        await db.first(
            SET_STATE,
            {
                "p_tenant_id": tenant_id,
                "p_user_id": user_id,
                "p_action_code": action_code,
                "p_idempotency_key": idempotency_key,
                "p_state": state,
                "p_now": now,
            },
        )
    )


async def settle_action(
    db: Db,
    action_id: str,
    *,
    state: str,
    from_state: str,
    verification_method: str,
    authenticator_id: str,
    now: datetime,
) -> bool:
    """Move an action from `from_state` to `state`: True for exactly one caller."""
    return (
        await db.rowcount(
            SETTLE_ACTION,
            {
                "p_action_id": action_id,
                "p_state": state,
                "p_from_state": from_state,
                "p_verification_method": verification_method,
                "p_authenticator_id": authenticator_id,
                "p_now": now,
            },
        )
        == 1
    )


_AUTHENTICATORS = cast(Table, Authenticator.__table__)
# The token's action and whether its user has any authenticator (the enrolment rule's read).
GET_ACTION_AND_ENROLLED = select(
    ACTIONS,
    exists(
        select(_AUTHENTICATORS.c.id).where(
            _AUTHENTICATORS.c.tenant_id == _c.tenant_id,
            _AUTHENTICATORS.c.user_id == _c.user_id,
            _AUTHENTICATORS.c.verified_at.is_not(None),
        )
    ).label("user_enrolled"),
).where(_KEY)
_MARK_ADDED = (
    update(ACTIONS)
    .where(_c.id == bindparam("p_action_id"), _c.authenticator_added_at.is_(None))
    .values(authenticator_added_at=bindparam("p_now"))
)
MARK_ADDED = _MARK_ADDED
MARK_ADDED_UNREDEEMED = _MARK_ADDED.where(_c.validated_at.is_(None))


async def get_action_and_enrolled(
    db: Db, tenant_id: str, user_id: str, action_code: str, idempotency_key: str
) -> tuple[ActionRow, bool] | None:
    row = await db.first(
        GET_ACTION_AND_ENROLLED,
        {
            "p_tenant_id": tenant_id,
            "p_user_id": user_id,
            "p_action_code": action_code,
            "p_idempotency_key": idempotency_key,
        },
    )
    return None if row is None else (ActionRow.of(row), bool(row["user_enrolled"]))


async def mark_authenticator_added(
    db: Db, action_id: str, now: datetime, *, unredeemed: bool
) -> bool:
    """Record, once, that this action's token added an authenticator: True for exactly one
    caller. With `unredeemed`, only while /validate has not redeemed the action either."""
    statement = MARK_ADDED_UNREDEEMED if unredeemed else MARK_ADDED
    return await db.rowcount(statement, {"p_action_id": action_id, "p_now": now}) == 1


_USERS = cast(Table, User.__table__)
_USERNAME = (
    select(_USERS.c.username)
    .where(
        _USERS.c.tenant_id == bindparam("p_tenant_id"), _USERS.c.user_id == bindparam("p_user_id")
    )
    .scalar_subquery()
    .label("username")
)
# A challenge's success settles the action it answers, by the action's key, returning it
# with its user's username (for the token): one statement where three were.
SETTLE_BY_KEY = (
    update(ACTIONS)
    .where(
        _KEY,
        _c.state == bindparam("p_from_state"),
        or_(_c.origin == bindparam("p_client_origin"), bindparam("p_any_origin")),
    )
    .values(
        state=bindparam("p_state"),
        state_updated_at=bindparam("p_now"),
        updated_at=bindparam("p_now"),
        verification_method=bindparam("p_verification_method"),
        verified_by_authenticator_id=bindparam("p_authenticator_id"),
    )
    .returning(*ACTIONS.c, _USERNAME)
)
GET_ACTION_AND_USERNAME = select(ACTIONS, _USERNAME).where(_KEY)


async def settle_by_key(
    db: Db,
    tenant_id: str,
    user_id: str,
    action_code: str,
    idempotency_key: str,
    *,
    state: str,
    from_state: str,
    client_origin: str | None,
    verification_method: str,
    authenticator_id: str,
    now: datetime,
    along: AlongWith | None = None,
) -> tuple[ActionRow, str | None] | None:
    """Settle the action if it is in `from_state` (and, with `client_origin`, only if a client
    recorded it): the action and its user's username, or None when nothing was settled.
    `along`'s writes run in the same statement, settled or not."""
    row = await db.first(
        _along(SETTLE_BY_KEY, along),
        {
            **(along.params if along else {}),
            "p_tenant_id": tenant_id,
            "p_user_id": user_id,
            "p_action_code": action_code,
            "p_idempotency_key": idempotency_key,
            "p_from_state": from_state,
            "p_client_origin": client_origin or "",
            "p_any_origin": client_origin is None,
            "p_state": state,
            "p_now": now,
            "p_verification_method": verification_method,
            "p_authenticator_id": authenticator_id,
        },
    )
    return None if row is None else (ActionRow.of(row), row["username"])


async def get_action_and_username(
    db: Db, tenant_id: str, user_id: str, action_code: str, idempotency_key: str
) -> tuple[ActionRow, str | None] | None:
    row = await db.first(
        GET_ACTION_AND_USERNAME,
        {
            "p_tenant_id": tenant_id,
            "p_user_id": user_id,
            "p_action_code": action_code,
            "p_idempotency_key": idempotency_key,
        },
    )
    return None if row is None else (ActionRow.of(row), row["username"])


# An action a verified challenge records (no backend tracked it), returned with its user's
# username for the token: one statement where an insert and a read were.
INSERT_ACTION_WITH_USERNAME = Statements(
    lambda insert: insert(ACTIONS).on_conflict_do_nothing().returning(*ACTIONS.c, _USERNAME)
)


# The same with `p_*` parameters named in the statement (so WITH queries may ride along).
_RECORDED_COLUMNS = (
    "id",
    "tenant_id",
    "user_id",
    "action_code",
    "idempotency_key",
    "state",
    "state_updated_at",
    "created_at",
    "updated_at",
    "verification_method",
    "verified_by_authenticator_id",
    "device_id",
    "origin",
)
RECORD_WITH_USERNAME = (
    postgresql.insert(ACTIONS)
    .values({name: bindparam(f"p_{name}", type_=_c[name].type) for name in _RECORDED_COLUMNS})
    .on_conflict_do_nothing()
    .returning(*ACTIONS.c, _USERNAME)
)


async def insert_action_with_username(
    db: Db, values: Mapping[str, Any], *, along: AlongWith | None = None
) -> tuple[ActionRow, str | None] | None:
    """`insert_action`, returning the user's username with the action; None when one with
    the same idempotency key already exists. `along` (PostgreSQL): writes that run in the
    same statement, inserted or not (`values` then names only `_RECORDED_COLUMNS`)."""
    now = utcnow()
    if along is not None:
        recorded = {
            "id": str(uuid.uuid4()),
            "state_updated_at": now,
            "created_at": now,
            "updated_at": now,
            **values,
        }
        params = {f"p_{name}": recorded[name] for name in _RECORDED_COLUMNS}
        row = await db.first(_along(RECORD_WITH_USERNAME, along), {**along.params, **params})
        return None if row is None else (ActionRow.of(row), row["username"])
    row = await db.first(
        INSERT_ACTION_WITH_USERNAME[db],
        {
            "id": str(uuid.uuid4()),
            "state_updated_at": now,
            "created_at": now,
            "updated_at": now,
            **values,
            "p_tenant_id": values["tenant_id"],
            "p_user_id": values["user_id"],
        },
    )
    return None if row is None else (ActionRow.of(row), row["username"])


# The enrolment rule (services/enrolment.py) and the action's settlement in one conditional
# UPDATE: mark that the token's action added an authenticator, and settle it when it waits for
# a challenge, only if the rule lets this token add one now. The rule, as a WHERE: nothing
# added yet under this action, the action in a state a challenge may settle or has settled,
# and either the token's scope allows it, or the user has no authenticator yet, or a
# challenge verified the action within the window by one of the methods that give leave (a
# strong method or one of the tenant's recovery methods) and /validate has not redeemed it.
# RETURNING says whether the user had a (verified) authenticator before this one, so the
# caller can tell a recovery from a first enrolment.
_SETTLING = _c.state == bindparam("p_from_state", type_=String())
# By the key's parameters, not correlated with the updated row: SQLite plans a correlated
# subquery in RETURNING as a scan of every authenticator.
_HAS_AUTHENTICATOR = exists(
    select(_AUTHENTICATORS.c.id).where(
        _AUTHENTICATORS.c.tenant_id == bindparam("p_tenant_id"),
        _AUTHENTICATORS.c.user_id == bindparam("p_user_id"),
        _AUTHENTICATORS.c.verified_at.is_not(None),
    )
)
ADD_AUTHENTICATOR_AND_SETTLE = (
    update(ACTIONS)
    .where(
        _KEY,
        _c.authenticator_added_at.is_(None),
        _c.state.in_(bindparam("p_states", expanding=True)),
        or_(
            bindparam("p_scoped", type_=Boolean()),
            ~_HAS_AUTHENTICATOR,
            and_(
                _c.state == bindparam("p_verified_state", type_=String()),
                _c.verification_method.in_(bindparam("p_leave_methods", expanding=True)),
                _c.validated_at.is_(None),
                _c.state_updated_at > bindparam("p_since", type_=_c.state_updated_at.type),
            ),
        ),
    )
    .values(
        authenticator_added_at=bindparam("p_now", type_=_c.state_updated_at.type),
        state=case((_SETTLING, bindparam("p_state", type_=String())), else_=_c.state),
        state_updated_at=case((_SETTLING, bindparam("p_now")), else_=_c.state_updated_at),
        updated_at=case((_SETTLING, bindparam("p_now")), else_=_c.updated_at),
        verification_method=case(
            (_SETTLING, bindparam("p_verification_method", type_=String())),
            else_=_c.verification_method,
        ),
        verified_by_authenticator_id=case(
            (_SETTLING, bindparam("p_authenticator_id", type_=String())),
            else_=_c.verified_by_authenticator_id,
        ),
    )
    .returning(*ACTIONS.c, _USERNAME, _HAS_AUTHENTICATOR.label("had_authenticator"))
)


async def add_authenticator_and_settle(
    db: Db,
    tenant_id: str,
    user_id: str,
    action_code: str,
    idempotency_key: str,
    *,
    scoped: bool,
    since: datetime,
    verified_state: str,
    leave_methods: Sequence[str],
    states: Sequence[str],
    from_state: str,
    state: str,
    verification_method: str,
    authenticator_id: str,
    now: datetime,
) -> tuple[ActionRow, str | None, bool] | None:
    """`ADD_AUTHENTICATOR_AND_SETTLE`: the action (after), its user's username and whether
    the user had an authenticator before, or None when the rule refused (nothing written)."""
    row = await db.first(
        ADD_AUTHENTICATOR_AND_SETTLE,
        {
            "p_tenant_id": tenant_id,
            "p_user_id": user_id,
            "p_action_code": action_code,
            "p_idempotency_key": idempotency_key,
            "p_scoped": scoped,
            "p_since": since,
            "p_verified_state": verified_state,
            "p_leave_methods": list(leave_methods),
            "p_states": list(states),
            "p_from_state": from_state,
            "p_state": state,
            "p_verification_method": verification_method,
            "p_authenticator_id": authenticator_id,
            "p_now": now,
        },
    )
    if row is None:
        return None
    return ActionRow.of(row), row["username"], bool(row["had_authenticator"])
