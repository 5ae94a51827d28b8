"""Push devices, their spent one-time messages, and push challenges: rows and statements
(Core, built once). The challenge's states are `store.states.ChallengeState`, used everywhere."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import ScalarSelect

from passgate.server.store import tables
from passgate.server.store.actions import ActionRow
from passgate.server.store.db import POSTGRESQL, Db, Statements
from passgate.server.store.states import ChallengeState, SpentKind


@dataclass(frozen=True, kw_only=True, slots=True)
class PushDeviceRow:
    """A row of `push_devices` (store/tables.py says what each column means)."""

    id: str
    tenant_id: str
    user_id: str
    public_key: str
    device_name: str | None
    device_platform: str | None
    push_token: str | None
    expires_at: datetime | None

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> PushDeviceRow:
        """From a result row (extra columns, e.g. of a join, are ignored)."""
        return cls(**{name: row[name] for name in cls.__slots__})


@dataclass(frozen=True, kw_only=True, slots=True)
class PushChallengeRow:
    """A row of `push_challenges` (store/tables.py says what each column means)."""

    id: str
    tenant_id: str
    user_id: str
    action_id: str
    authenticator_id: str | None
    state: str
    verification_code: str | None
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    decided_by_authenticator_id: str | None

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> PushChallengeRow:
        """From a result row (extra columns, e.g. of a join, are ignored)."""
        return cls(**{name: row[name] for name in cls.__slots__})


PENDING, APPROVED, REJECTED, FAILED, REFUSED = (
    ChallengeState.PENDING.value,
    ChallengeState.APPROVED.value,
    ChallengeState.REJECTED.value,
    ChallengeState.FAILED.value,
    ChallengeState.REFUSED.value,
)

devices_t = cast(Table, tables.PushDevice.__table__)
challenges_t = cast(Table, tables.PushChallenge.__table__)
spent_t = cast(Table, tables.SpentChallenge.__table__)
tenants_t = cast(Table, tables.Tenant.__table__)
# The kind of push's rows in `spent_challenges` (passkeys' are "passkey").
SPENT_KIND = SpentKind.PUSH.value
actions_t = cast(Table, tables.Action.__table__)
authenticators_t = cast(Table, tables.Authenticator.__table__)
users_t = cast(Table, tables.User.__table__)

_DEVICE_COLUMNS = [devices_t.c[name] for name in PushDeviceRow.__slots__]
_CHALLENGE_COLUMNS = [challenges_t.c[name] for name in PushChallengeRow.__slots__]
_ACTION_COLUMNS = [actions_t.c[name] for name in ActionRow.__slots__]
# What a device's answers show of its authenticator (P1, P2, P8).
_AUTHENTICATOR_COLUMNS = [
    authenticators_t.c.created_at.label("authenticator_created_at"),
    authenticators_t.c.verified_at,
    authenticators_t.c.last_verified_at,
]


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceWithAuthenticator:
    """A device and the dates of its authenticator row."""

    device: PushDeviceRow
    created_at: datetime
    verified_at: datetime | None
    last_verified_at: datetime | None

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> DeviceWithAuthenticator:
        return cls(
            device=PushDeviceRow.of(row),
            created_at=row["authenticator_created_at"],
            verified_at=row["verified_at"],
            last_verified_at=row["last_verified_at"],
        )


def _unprefixed(row: Mapping[Any, Any], prefix: str) -> dict[str, Any]:
    return {key[len(prefix) :]: value for key, value in row.items() if key.startswith(prefix)}


# Devices ---------------------------------------------------------------------------------

_DEVICE_BY_KEY = (
    select(*_DEVICE_COLUMNS, *_AUTHENTICATOR_COLUMNS)
    .join_from(devices_t, authenticators_t, authenticators_t.c.id == devices_t.c.id)
    .where(
        devices_t.c.tenant_id == bindparam("tenant_id"),
        devices_t.c.public_key == bindparam("public_key"),
    )
)


async def get_device_by_key(
    db: Db, tenant_id: str, public_key: str
) -> DeviceWithAuthenticator | None:
    row = await db.first(_DEVICE_BY_KEY, {"tenant_id": tenant_id, "public_key": public_key})
    return DeviceWithAuthenticator.of(row) if row else None


_USER_DEVICES = (
    select(*_DEVICE_COLUMNS)
    .where(
        devices_t.c.tenant_id == bindparam("tenant_id"),
        devices_t.c.user_id == bindparam("user_id"),
        or_(devices_t.c.expires_at.is_(None), devices_t.c.expires_at > bindparam("now")),
    )
    .order_by(devices_t.c.id)
)


async def find_devices(db: Db, tenant_id: str, user_id: str, now: datetime) -> list[PushDeviceRow]:
    """The user's devices whose credential has not expired."""
    rows = await db.all(_USER_DEVICES, {"tenant_id": tenant_id, "user_id": user_id, "now": now})
    return [PushDeviceRow.of(row) for row in rows]


_UPDATE_DEVICE = (
    update(devices_t)
    .where(devices_t.c.id == bindparam("device_id"))
    .values(
        push_token=func.coalesce(bindparam("new_push_token", type_=String), devices_t.c.push_token),
        expires_at=case(
            (
                bindparam("renew", type_=Boolean),
                bindparam("new_expires_at", type_=devices_t.c.expires_at.type),
            ),
            else_=devices_t.c.expires_at,
        ),
    )
    .returning(*_DEVICE_COLUMNS)
)
_MARK_VERIFIED = (
    update(authenticators_t)
    .where(authenticators_t.c.id == bindparam("device_id"))
    .values(last_verified_at=bindparam("now"))
)


async def update_device(
    db: Db,
    device_id: str,
    *,
    push_token: str | None,
    expires_at: datetime | None,
    renew: bool,
) -> PushDeviceRow | None:
    """Set the push token (when not None) and, with `renew`, the expiry."""
    row = await db.first(
        _UPDATE_DEVICE,
        {
            "device_id": device_id,
            "new_push_token": push_token,
            "new_expires_at": expires_at,
            "renew": renew,
        },
    )
    return PushDeviceRow.of(row) if row else None


async def mark_verified(db: Db, device_id: str, now: datetime) -> None:
    """Record that the device proved its key now (its authenticator's `last_verified_at`)."""
    await db.execute(_MARK_VERIFIED, {"device_id": device_id, "now": now})


_INSERT_AUTHENTICATOR = insert(authenticators_t)
_INSERT_DEVICE = insert(devices_t)


async def insert_device(
    db: Db,
    *,
    tenant_id: str,
    user_id: str,
    username: str | None,
    public_key: str,
    device_name: str | None,
    device_platform: str | None,
    push_token: str | None,
    expires_at: datetime | None,
    now: datetime,
) -> DeviceWithAuthenticator:
    """Add the device and its authenticator (the user's row must exist). A key enrolled
    concurrently raises IntegrityError (the caller's savepoint undoes both)."""
    device_id = str(uuid.uuid4())
    await db.execute(
        _INSERT_AUTHENTICATOR,
        {
            "id": device_id,
            "tenant_id": tenant_id,
            "user_id": user_id,
            "verification_method": "PUSH",
            "username": username,
            "display_name": device_name,
            "is_default": False,
            "created_at": now,
            "verified_at": now,
        },
    )
    values = {
        "id": device_id,
        "tenant_id": tenant_id,
        "user_id": user_id,
        "public_key": public_key,
        "device_name": device_name,
        "device_platform": device_platform,
        "push_token": push_token,
        "expires_at": expires_at,
    }
    await db.execute(_INSERT_DEVICE, values)
    return DeviceWithAuthenticator(
        device=PushDeviceRow.of(values), created_at=now, verified_at=now, last_verified_at=None
    )


_DELETE_AUTHENTICATOR = delete(authenticators_t).where(
    authenticators_t.c.tenant_id == bindparam("tenant_id"),
    authenticators_t.c.id == bindparam("device_id"),
)
_DELETE_DEVICE = delete(devices_t).where(
    devices_t.c.tenant_id == bindparam("tenant_id"), devices_t.c.id == bindparam("device_id")
)


async def delete_device(db: Db, tenant_id: str, device_id: str) -> None:
    """Remove the device's authenticator and the device (one statement once the foreign keys
    cascade; until then the device row is deleted explicitly too)."""
    params = {"tenant_id": tenant_id, "device_id": device_id}
    await db.execute(_DELETE_DEVICE, params)
    await db.execute(_DELETE_AUTHENTICATOR, params)


# Spent one-time messages (services/push/nonces) -----------------------------------------


def _spent_between(low: str, high: str) -> ScalarSelect[int]:
    return (
        select(func.count())
        .select_from(spent_t)
        .where(spent_t.c.digest >= bindparam(low), spent_t.c.digest <= bindparam(high))
        .scalar_subquery()
    )


_COUNT_SPENT = select(_spent_between("low", "high"))


async def count_spent_nonces(db: Db, low: str, high: str) -> int:
    """How many spent messages have a digest between `low` and `high` (inclusive): one device's
    spent messages of one time slot, whose digests share a prefix and end in a serial number."""
    return int(await db.scalar(_COUNT_SPENT, {"low": low, "high": high}) or 0)


_SPEND_NONCE = Statements(lambda insert: insert(spent_t).on_conflict_do_nothing())


async def spend_nonce(db: Db, digest: str, tenant_id: str, expires_at: datetime) -> bool:
    """Record a message as spent (`spent_challenges`, kind "push"): True for exactly one
    caller, False for a replay."""
    params = {
        "digest": digest,
        "tenant_id": tenant_id,
        "kind": SPENT_KIND,
        "expires_at": expires_at,
    }
    return await db.rowcount(_SPEND_NONCE[db], params) == 1


_PRUNE_SPENT = delete(spent_t).where(
    spent_t.c.kind == SPENT_KIND, spent_t.c.expires_at <= bindparam("now")
)


async def prune_spent_messages(db: Db, now: datetime) -> int:
    """Forget spent push messages that have expired (they are refused for their age anyway)."""
    return await db.rowcount(_PRUNE_SPENT, {"now": now})


def tenant_version(tenant_id: Any) -> ScalarSelect[datetime]:
    """The tenant's `updated_at` now (NULL when it is gone): deciding statements return it, so
    a caller holding a cached tenant row learns in the same statement whether it changed."""
    return (
        select(tenants_t.c.updated_at)
        .where(tenants_t.c.id == tenant_id)
        .correlate(None)
        .scalar_subquery()
    )


# Challenges ------------------------------------------------------------------------------


def _pending_for(
    device_id: Any, user_id: Any, tenant_id: Any = None, now: Any = None
) -> ScalarSelect[str]:
    """The id of the newest unexpired, undecided challenge this device may answer."""
    tenant_id = bindparam("tenant_id") if tenant_id is None else tenant_id
    now = bindparam("now") if now is None else now
    return (
        select(challenges_t.c.id)
        .where(
            challenges_t.c.tenant_id
            == (bindparam("tenant_id") if tenant_id is None else tenant_id),
            challenges_t.c.user_id == user_id,
            challenges_t.c.state == PENDING,
            challenges_t.c.expires_at > now,
            or_(
                challenges_t.c.authenticator_id.is_(None),
                challenges_t.c.authenticator_id == device_id,
            ),
        )
        .order_by(challenges_t.c.created_at.desc())
        .limit(1)
        .correlate_except(challenges_t)
        .scalar_subquery()
    )


_PREFIXED_CHALLENGE = [column.label("c_" + column.name) for column in _CHALLENGE_COLUMNS]
_PREFIXED_ACTION = [column.label("a_" + column.name) for column in _ACTION_COLUMNS]

_PENDING = (
    select(*_PREFIXED_CHALLENGE, *_PREFIXED_ACTION)
    .join_from(challenges_t, actions_t, actions_t.c.id == challenges_t.c.action_id)
    .where(challenges_t.c.id == _pending_for(bindparam("device_id"), bindparam("user_id")))
)

# P5 in one statement: the device (by the id this process remembers for its key, and the key,
# so a removed or re-enrolled device is not found), how many of its one-time messages of the
# current and previous slot are spent, and its pending challenge with the action.
_DEVICE_AND_PENDING = (
    select(
        *_DEVICE_COLUMNS,
        _spent_between("low_current", "high_current").label("spent_current"),
        _spent_between("low_previous", "high_previous").label("spent_previous"),
        *_PREFIXED_CHALLENGE,
        *_PREFIXED_ACTION,
    )
    .select_from(devices_t)
    .outerjoin(challenges_t, challenges_t.c.id == _pending_for(devices_t.c.id, devices_t.c.user_id))
    .outerjoin(actions_t, actions_t.c.id == challenges_t.c.action_id)
    .where(
        devices_t.c.tenant_id == bindparam("tenant_id"),
        devices_t.c.id == bindparam("device_id"),
        devices_t.c.public_key == bindparam("public_key"),
    )
)


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceAndPending:
    device: PushDeviceRow
    spent: tuple[int, int]  # this slot's and the previous slot's spent messages
    challenge: PushChallengeRow | None
    action: ActionRow | None


def _challenge_and_action(
    row: Mapping[Any, Any],
) -> tuple[PushChallengeRow | None, ActionRow | None]:
    if row["c_id"] is None:
        return None, None
    return (
        PushChallengeRow.of(_unprefixed(row, "c_")),
        ActionRow.of(_unprefixed(row, "a_")),
    )


async def get_device_and_pending(
    db: Db,
    tenant_id: str,
    device_id: str,
    public_key: str,
    now: datetime,
    *,
    current: tuple[str, str],
    previous: tuple[str, str],
) -> DeviceAndPending | None:
    """P5's one read (see `_DEVICE_AND_PENDING`); `current`/`previous`: digest ranges."""
    row = await db.first(
        _DEVICE_AND_PENDING,
        {
            "tenant_id": tenant_id,
            "device_id": device_id,
            "public_key": public_key,
            "now": now,
            "low_current": current[0],
            "high_current": current[1],
            "low_previous": previous[0],
            "high_previous": previous[1],
        },
    )
    if row is None:
        return None
    challenge, action = _challenge_and_action(row)
    return DeviceAndPending(
        device=PushDeviceRow.of(row),
        spent=(int(row["spent_current"]), int(row["spent_previous"])),
        challenge=challenge,
        action=action,
    )


async def get_pending(
    db: Db, tenant_id: str, user_id: str, device_id: str, now: datetime
) -> tuple[PushChallengeRow, ActionRow] | None:
    """The newest unexpired, undecided challenge this device may answer, with its action."""
    row = await db.first(
        _PENDING, {"tenant_id": tenant_id, "user_id": user_id, "device_id": device_id, "now": now}
    )
    if row is None:
        return None
    challenge, action = _challenge_and_action(row)
    assert challenge is not None and action is not None
    return challenge, action


_CHALLENGE = (
    select(*_PREFIXED_CHALLENGE, *_PREFIXED_ACTION)
    .join_from(challenges_t, actions_t, actions_t.c.id == challenges_t.c.action_id)
    .where(
        challenges_t.c.id == bindparam("challenge_id"),
        challenges_t.c.tenant_id == bindparam("tenant_id"),
    )
)


async def get_challenge(
    db: Db, tenant_id: str, challenge_id: str
) -> tuple[PushChallengeRow, ActionRow] | None:
    row = await db.first(_CHALLENGE, {"tenant_id": tenant_id, "challenge_id": challenge_id})
    if row is None:
        return None
    challenge, action = _challenge_and_action(row)
    assert challenge is not None and action is not None
    return challenge, action


_ACTION_CHALLENGE = (
    select(*_CHALLENGE_COLUMNS)
    .where(challenges_t.c.action_id == bindparam("action_id"), challenges_t.c.state != REFUSED)
    .order_by(challenges_t.c.created_at.desc())
    .limit(1)
)
_OPEN_ACTION_CHALLENGE = _ACTION_CHALLENGE.where(
    challenges_t.c.state == PENDING, challenges_t.c.expires_at > bindparam("now")
)
# The open challenge a request may reuse: with no device named, any; with a device named, one
# for that device or for all of them, and only while the named device is the action's user's
# (unexpired): naming another user's device reuses nothing (the insert then refuses it).
_named = bindparam("authenticator_id", type_=String)
_REUSABLE_CHALLENGE = _OPEN_ACTION_CHALLENGE.where(
    or_(
        _named.is_(None),
        and_(
            or_(
                challenges_t.c.authenticator_id.is_(None),
                challenges_t.c.authenticator_id == _named,
            ),
            exists().where(
                devices_t.c.id == _named,
                devices_t.c.tenant_id == challenges_t.c.tenant_id,
                devices_t.c.user_id == challenges_t.c.user_id,
                or_(devices_t.c.expires_at.is_(None), devices_t.c.expires_at > bindparam("now")),
            ),
        ),
    )
)


async def get_reusable_challenge(
    db: Db, action_id: str, authenticator_id: str | None, now: datetime
) -> PushChallengeRow | None:
    """The action's open challenge a start naming `authenticator_id` (or none) may reuse."""
    row = await db.first(
        _REUSABLE_CHALLENGE,
        {"action_id": action_id, "authenticator_id": authenticator_id, "now": now},
    )
    return PushChallengeRow.of(row) if row else None


async def get_action_challenge(
    db: Db, action_id: str, *, pending_at: datetime | None = None
) -> PushChallengeRow | None:
    """The newest challenge of an action; with `pending_at`, only one still open then."""
    if pending_at is None:
        row = await db.first(_ACTION_CHALLENGE, {"action_id": action_id})
    else:
        row = await db.first(_OPEN_ACTION_CHALLENGE, {"action_id": action_id, "now": pending_at})
    return PushChallengeRow.of(row) if row else None


_LOCK_USER = (
    select(users_t.c.user_id)
    .where(users_t.c.tenant_id == bindparam("tenant_id"), users_t.c.user_id == bindparam("user_id"))
    .with_for_update(key_share=True)
)


async def lock_user(db: Db, tenant_id: str, user_id: str) -> None:
    """On PostgreSQL, hold the user's row until the transaction ends, so that transactions that
    count the user's challenges and then add one take turns (READ COMMITTED would let each
    count without seeing the others' uncommitted rows). `FOR NO KEY UPDATE` does not conflict
    with the key-share locks foreign keys take. SQLite needs nothing: it runs one writer at a
    time, and `insert_challenge` is a single statement. A transaction that already wrote the
    user's row (track's upsert) holds it already and need not call this."""
    if db.dialect == POSTGRESQL:
        await db.execute(_LOCK_USER, {"tenant_id": tenant_id, "user_id": user_id})


_CHALLENGE_NAMES = list(PushChallengeRow.__slots__)
_RECENT = (
    select(func.count())
    .select_from(challenges_t)
    .where(
        challenges_t.c.tenant_id == bindparam("tenant_id"),
        challenges_t.c.user_id == bindparam("user_id"),
        challenges_t.c.created_at >= bindparam("since"),
        challenges_t.c.state != REFUSED,
    )
    .correlate(None)
    .scalar_subquery()
)
_HAS_DEVICE = exists().where(
    devices_t.c.tenant_id == bindparam("tenant_id"),
    devices_t.c.user_id == bindparam("user_id"),
    or_(devices_t.c.expires_at.is_(None), devices_t.c.expires_at > bindparam("created_at")),
    or_(
        bindparam("authenticator_id", type_=String).is_(None),
        devices_t.c.id == bindparam("authenticator_id", type_=String),
    ),
)
# Insert a pending challenge (state `pending`), or a `refused` one when the user already had
# `limit` challenges (refused ones do not count) since `since`: the count and the insert are
# one statement, so another writer cannot come between them. Nothing is inserted when the user
# has no (matching, unexpired) device. RETURNING says which.
# The state column is selected last: reorder the names to match.
_INSERT_CHALLENGE = (
    insert(challenges_t)
    .from_select(
        [name for name in _CHALLENGE_NAMES if name != "state"] + ["state"],
        select(
            *(
                bindparam(name, type_=challenges_t.c[name].type)
                for name in _CHALLENGE_NAMES
                if name != "state"
            ),
            case((bindparam("limit") > _RECENT, PENDING), else_=REFUSED),
        ).where(_HAS_DEVICE),
    )
    .returning(challenges_t.c.state)
)


async def insert_challenge(
    db: Db, values: dict[str, Any], *, since: datetime, limit: int
) -> PushChallengeRow | None:
    """Insert the challenge `values` describe (without `state`): `pending`, or `refused` over
    the push-bombing limit; None when the user has no device it could go to. On PostgreSQL
    the user's row must be held first (`lock_user`, or the transaction wrote it)."""
    params = {**values, "since": since, "limit": limit, "state": PENDING}
    params.setdefault("decided_at", None)
    params.setdefault("decided_by_authenticator_id", None)
    row = await db.first(_INSERT_CHALLENGE, params)
    if row is None:
        return None
    return PushChallengeRow.of({**params, "state": row["state"]})


# Inline constants (no bound parameter): the writable CTE below keeps its parameters named.
_APPROVED: ColumnElement[str] = literal_column(f"'{APPROVED}'")
_FAILED: ColumnElement[str] = literal_column(f"'{FAILED}'")
_REJECTED: ColumnElement[str] = literal_column(f"'{REJECTED}'")


def _decision() -> Any:
    approved = bindparam("p_approved", type_=Boolean)
    code_ok = or_(
        challenges_t.c.verification_code.is_(None),
        challenges_t.c.verification_code == bindparam("p_code", type_=String),
    )
    return case((and_(approved, code_ok), _APPROVED), (approved, _FAILED), else_=_REJECTED)


# Every parameter is named `p_*`: no name may equal a column of a table an UPDATE below
# writes (actions has a `device_id`), or SQLAlchemy reserves it for that column's SET value
# and the driver is left without a value for it.
_D = {
    "device_id": bindparam("p_device_id", type_=String),
    "tenant_id": bindparam("p_tenant_id", type_=String),
    "now": bindparam("p_now", type_=challenges_t.c.expires_at.type),
}

# P6: take the challenge's one decision, in time, only for the device that may answer it and
# only while the device still exists with this key (a removed device cannot answer). The
# number check is part of the decision (`failed` when approved with the wrong number).
_DECIDE = (
    update(challenges_t)
    .where(
        challenges_t.c.id == bindparam("p_challenge_id", type_=String),
        challenges_t.c.tenant_id == _D["tenant_id"],
        challenges_t.c.user_id == bindparam("p_user_id", type_=String),
        challenges_t.c.state == literal_column(f"'{PENDING}'"),
        challenges_t.c.expires_at > _D["now"],
        or_(
            challenges_t.c.authenticator_id.is_(None),
            challenges_t.c.authenticator_id == _D["device_id"],
        ),
        exists().where(
            devices_t.c.id == _D["device_id"],
            devices_t.c.tenant_id == _D["tenant_id"],
            devices_t.c.public_key == bindparam("p_public_key", type_=String),
            or_(devices_t.c.expires_at.is_(None), devices_t.c.expires_at > _D["now"]),
        ),
    )
    .values(
        state=_decision(),
        decided_at=_D["now"],
        decided_by_authenticator_id=_D["device_id"],
    )
)
_DECIDE_RETURNING = _DECIDE.returning(
    challenges_t.c.action_id,
    challenges_t.c.state,
    tenant_version(_D["tenant_id"]).label("tenant_version"),
)


def _decide_all() -> Any:
    """PostgreSQL's P6 in one statement: the decision, the action's settlement and (approved)
    the device's `last_verified_at`, as a writable CTE."""
    decided = _DECIDE.returning(
        challenges_t.c.id, challenges_t.c.action_id, challenges_t.c.state
    ).cte("decided")
    settled = (
        update(actions_t)
        .where(
            actions_t.c.id == decided.c.action_id,
            actions_t.c.state == bindparam("p_settle_from", type_=String),
        )
        .values(
            state=case(
                (decided.c.state == _APPROVED, bindparam("p_succeeded_state", type_=String)),
                else_=bindparam("p_failed_state", type_=String),
            ),
            state_updated_at=_D["now"],
            updated_at=_D["now"],
            verification_method=bindparam("p_method", type_=String),
            verified_by_authenticator_id=_D["device_id"],
        )
        .returning(actions_t.c.id)
        .cte("settled")
    )
    verified = (
        update(authenticators_t)
        .where(
            authenticators_t.c.id == _D["device_id"],
            exists(select(decided.c.id).where(decided.c.state == _APPROVED)),
        )
        .values(last_verified_at=_D["now"])
        .returning(authenticators_t.c.id)
        .cte("verified")
    )
    return select(
        decided.c.action_id,
        decided.c.state,
        exists(select(settled.c.id)).label("settled"),
        exists(select(verified.c.id)).label("verified"),
        tenant_version(_D["tenant_id"]).label("tenant_version"),
    ).select_from(decided)


_DECIDE_ALL = _decide_all()


@dataclass(frozen=True, kw_only=True, slots=True)
class Decided:
    action_id: str
    state: str
    settled: bool | None  # None: not settled yet (the caller settles the action)
    tenant_version: datetime | None


async def decide(
    db: Db,
    *,
    tenant_id: str,
    challenge_id: str,
    user_id: str,
    device_id: str,
    public_key: str,
    approved: bool,
    code: str | None,
    now: datetime,
    settle: Mapping[str, str],
) -> Decided | None:
    """Decide the challenge (see `_DECIDE`): None unless this call took the decision. On
    PostgreSQL the same statement settles the action from `settle["settle_from"]` and, when
    approved, records the device's `last_verified_at`; on SQLite (no writes inside a WITH)
    the caller does both next (`settle_action`, `mark_verified`)."""
    params: dict[str, Any] = {
        "p_tenant_id": tenant_id,
        "p_challenge_id": challenge_id,
        "p_user_id": user_id,
        "p_device_id": device_id,
        "p_public_key": public_key,
        "p_approved": approved,
        "p_code": code,
        "p_now": now,
    }
    if db.dialect == POSTGRESQL:
        params.update({"p_" + name: value for name, value in settle.items()})
        row = await db.first(_DECIDE_ALL, params)
        settled: bool | None = None if row is None else bool(row["settled"])
    else:
        row = await db.first(_DECIDE_RETURNING, params)
        settled = None
    if row is None:
        return None
    return Decided(
        action_id=row["action_id"],
        state=row["state"],
        settled=settled,
        tenant_version=row["tenant_version"],
    )


# P4 in one statement: the device (by the id this process remembers for its key, and the key)
# and how many of its messages of the current slot are spent.
_DEVICE_SPENT = select(
    *_DEVICE_COLUMNS,
    _spent_between("low", "high").label("spent"),
    tenant_version(bindparam("tenant_id")).label("tenant_version"),
).where(
    devices_t.c.tenant_id == bindparam("tenant_id"),
    devices_t.c.id == bindparam("device_id"),
    devices_t.c.public_key == bindparam("public_key"),
)


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceSpent:
    device: PushDeviceRow
    spent: int
    tenant_version: datetime | None


async def get_device_spent(
    db: Db, tenant_id: str, device_id: str, public_key: str, digests: tuple[str, str]
) -> DeviceSpent | None:
    """P4's one read: the device (by id and key), how many of its messages in the digest
    range are spent, and the tenant's version."""
    row = await db.first(
        _DEVICE_SPENT,
        {
            "tenant_id": tenant_id,
            "device_id": device_id,
            "public_key": public_key,
            "low": digests[0],
            "high": digests[1],
        },
    )
    if row is None:
        return None
    return DeviceSpent(
        device=PushDeviceRow.of(row), spent=int(row["spent"]), tenant_version=row["tenant_version"]
    )


_SETTLE_ACTION = (
    update(actions_t)
    .where(
        actions_t.c.id == bindparam("action_id"),
        actions_t.c.state == bindparam("settle_from"),
    )
    .values(
        state=case(
            (bindparam("approved_state", type_=String) == APPROVED, bindparam("succeeded_state")),
            else_=bindparam("failed_state"),
        ),
        state_updated_at=bindparam("now"),
        updated_at=bindparam("now"),
        verification_method=bindparam("method"),
        verified_by_authenticator_id=bindparam("decided_by"),
    )
)


async def settle_action(
    db: Db, decided: Decided, *, device_id: str, now: datetime, settle: Mapping[str, str]
) -> bool:
    """SQLite's second step of P6 (PostgreSQL's `decide` did it): settle the action from
    `settle_from` only, as `_settled` does; True when this call settled it."""
    params = {
        "action_id": decided.action_id,
        "approved_state": decided.state,
        "decided_by": device_id,
        "now": now,
        **settle,
    }
    return await db.rowcount(_SETTLE_ACTION, params) == 1


# P5 in one statement: spend the signed message (only while the device exists with this key
# and has not expired) and return, from the same statement, the tenant's version and the
# device's pending challenge with its action (scalar subqueries in RETURNING: SQLite >= 3.35
# and PostgreSQL both run them). Nothing returned: a replay, or no such (unexpired) device.
_P = {
    "device_id": bindparam("p_device_id", type_=String),
    "user_id": bindparam("p_user_id", type_=String),
    "tenant_id": bindparam("p_tenant_id", type_=String),
    "now": bindparam("p_now", type_=challenges_t.c.expires_at.type),
}
_PENDING_ID = _pending_for(_P["device_id"], _P["user_id"], _P["tenant_id"], _P["now"])


_PENDING_ACTION_ID = (
    select(challenges_t.c.action_id)
    .where(challenges_t.c.id == _PENDING_ID)
    .correlate(None)
    .scalar_subquery()
)


def _pending_value(column: Any, label: str) -> Any:
    """One column of the pending challenge or of its action. One table per scope: SQLite
    renders RETURNING's columns unqualified, so a join inside would make `id` ambiguous."""
    key = _PENDING_ID if column.table is challenges_t else _PENDING_ACTION_ID
    return (
        select(column)
        .where(column.table.c.id == key)
        .correlate(None)
        .scalar_subquery()
        .label(label)
    )


_SPEND_AND_READ = Statements(
    lambda insert: (
        insert(spent_t)
        .from_select(
            ["digest", "tenant_id", "kind", "expires_at"],
            select(
                bindparam("p_digest", type_=String),
                _P["tenant_id"],
                bindparam("p_kind", type_=String),
                bindparam("p_expires_at", type_=spent_t.c.expires_at.type),
            ).where(
                exists().where(
                    devices_t.c.id == _P["device_id"],
                    devices_t.c.tenant_id == _P["tenant_id"],
                    devices_t.c.public_key == bindparam("p_public_key", type_=String),
                    or_(devices_t.c.expires_at.is_(None), devices_t.c.expires_at > _P["now"]),
                )
            ),
        )
        .on_conflict_do_nothing(index_elements=[spent_t.c.digest])
        .returning(
            spent_t.c.digest,
            tenant_version(_P["tenant_id"]).label("tenant_version"),
            *(_pending_value(column, "c_" + column.name) for column in _CHALLENGE_COLUMNS),
            *(_pending_value(column, "a_" + column.name) for column in _ACTION_COLUMNS),
        )
    )
)


@dataclass(frozen=True, kw_only=True, slots=True)
class SpentAndPending:
    tenant_version: datetime | None
    challenge: PushChallengeRow | None
    action: ActionRow | None


async def spend_and_read_pending(
    db: Db,
    *,
    tenant_id: str,
    device_id: str,
    user_id: str,
    public_key: str,
    digest: str,
    expires_at: datetime,
    now: datetime,
) -> SpentAndPending | None:
    """P5's one statement (see `_SPEND_AND_READ`); None when nothing was spent."""
    row = await db.first(
        _SPEND_AND_READ[db],
        {
            "p_digest": digest,
            "p_tenant_id": tenant_id,
            "p_kind": SPENT_KIND,
            "p_expires_at": expires_at,
            "p_device_id": device_id,
            "p_user_id": user_id,
            "p_public_key": public_key,
            "p_now": now,
        },
    )
    if row is None:
        return None
    challenge, action = _challenge_and_action(row)
    return SpentAndPending(tenant_version=row["tenant_version"], challenge=challenge, action=action)


_TENANT_VERSION = select(tenant_version(bindparam("tenant_id")))


async def get_tenant_version(db: Db, tenant_id: str) -> datetime | None:
    """The tenant's `updated_at` now (None when it is gone)."""
    version: datetime | None = await db.scalar(_TENANT_VERSION, {"tenant_id": tenant_id})
    return version
