"""Passkeys: credentials, and the spending of single-use challenges, as rows and Core
statements.

Every statement is built once and uses an index: spent challenges by digest, credentials by
(tenant_id, credential_id) or (tenant_id, user_id) or authenticator id. A challenge is a
signed message (services/challenges.py), not a row: a ceremony's answer spends it by
inserting its digest into `spent_challenges` and reads what the check needs (the credential,
its user, the tenant's version) in the same statement, as scalar subqueries in the INSERT's
RETURNING, so one statement works on SQLite and PostgreSQL alike. The old
`passkey_challenges` table is no longer written (a later contract migration drops it)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from passgate.server.store.actions import ACTIONS, ActionRow, AlongWith
from passgate.server.store.authenticators import AuthenticatorRow
from passgate.server.store.db import POSTGRESQL, Db, Statements
from passgate.server.store.states import SpentKind
from passgate.server.store.tables import (
    Authenticator,
    PasskeyCredential,
    SpentChallenge,
    Tenant,
    User,
    utcnow,
)

CREDENTIALS = cast(Table, PasskeyCredential.__table__)
AUTHENTICATORS = cast(Table, Authenticator.__table__)
USERS = cast(Table, User.__table__)
SPENT = cast(Table, SpentChallenge.__table__)
TENANTS = cast(Table, Tenant.__table__)
SPENT_KIND = SpentKind.PASSKEY.value
PASSKEY_METHOD = "PASSKEY"


@dataclass(frozen=True, kw_only=True, slots=True)
class PasskeyCredentialRow:
    """A row of `passkey_credentials` (store/tables.py says what each column means)."""

    authenticator_id: str
    tenant_id: str
    user_id: str
    credential_id: str
    public_key: bytes
    sign_count: int
    aaguid: str
    attestation_format: str
    device_type: str
    backed_up: bool
    transports: list[str]
    authenticator_attachment: str | None
    device_id: str | None
    user_agent: str | None
    flagged_at: datetime | None
    flag_reason: str | None
    name: str | None
    public_key_algorithm: int | None
    attestation_verified: bool

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> PasskeyCredentialRow:
        """From a result row (extra columns, e.g. of a join, are ignored)."""
        return cls(**{name: row[name] for name in cls.__slots__})


@dataclass(frozen=True, kw_only=True, slots=True)
class Registering:
    """The user a registration is for and their passkeys' credential ids (None: no user),
    with the token's action (None: there is none) and whether the user has any
    authenticator: what the enrolment rule decides with."""

    handle: str
    username: str | None
    display_name: str | None
    credential_ids: list[str]
    action: ActionRow | None = None
    enrolled: bool = False


def _credential(column: ColumnElement[Any], name: str) -> Any:
    """A column of the credential the answer names, as a scalar subquery (unique index)."""
    return (
        select(column)
        .where(
            CREDENTIALS.c.tenant_id == bindparam("p_tenant_id"),
            CREDENTIALS.c.credential_id == bindparam("p_credential_id"),
        )
        .scalar_subquery()
        .label(name)
    )


def _credential_column(column: str) -> Any:
    return (
        select(CREDENTIALS.c[column])
        .where(
            CREDENTIALS.c.tenant_id == bindparam("p_tenant_id"),
            CREDENTIALS.c.credential_id == bindparam("p_credential_id"),
        )
        .scalar_subquery()
    )


# Each subquery reads one table (nested, not joined): SQLite renders the columns of a
# RETURNING clause's subqueries unqualified, which a join would make ambiguous.
def _user_of_credential(column: ColumnElement[Any], name: str) -> Any:
    """A column of the named credential's user, as a scalar subquery (primary key)."""
    return (
        select(column)
        .where(
            USERS.c.tenant_id == bindparam("p_tenant_id"),
            USERS.c.user_id == _credential_column("user_id"),
        )
        .scalar_subquery()
        .label(name)
    )


def _authenticator_of_credential(column: ColumnElement[Any], name: str) -> Any:
    """A column of the named credential's authenticator, as a scalar subquery (primary key)."""
    return (
        select(column)
        .where(AUTHENTICATORS.c.id == _credential_column("authenticator_id"))
        .scalar_subquery()
        .label(name)
    )


def _user(column: ColumnElement[Any], name: str) -> Any:
    return (
        select(column)
        .where(
            USERS.c.tenant_id == bindparam("p_tenant_id"), USERS.c.user_id == bindparam("p_user_id")
        )
        .scalar_subquery()
        .label(name)
    )


# Spending a stateless challenge (services/challenges.py) ------------------------------------

# The tenant's version as of the spend: the caller compares it with the row it decided with.
_TENANT_VERSION = (
    select(TENANTS.c.updated_at)
    .where(TENANTS.c.id == bindparam("p_tenant_id"))
    .scalar_subquery()
    .label("tenant_version")
)


def _spend(insert: Any, *reads: Any) -> Any:
    """INSERT the challenge's digest; nothing (no row) when it was spent before."""
    return (
        insert(SPENT)
        .values(
            digest=bindparam("p_digest"),
            tenant_id=bindparam("p_tenant_id"),
            kind=SPENT_KIND,
            expires_at=bindparam("p_expires_at"),
        )
        .on_conflict_do_nothing(index_elements=[SPENT.c.digest])
        .returning(SPENT.c.digest, _TENANT_VERSION, *reads)
    )


_ASSERTION_READS = (
    _credential(CREDENTIALS.c.authenticator_id, "cred_authenticator_id"),
    _credential(CREDENTIALS.c.user_id, "cred_user_id"),
    _credential(CREDENTIALS.c.public_key, "cred_public_key"),
    _credential(CREDENTIALS.c.sign_count, "cred_sign_count"),
    _credential(CREDENTIALS.c.backed_up, "cred_backed_up"),
    _credential(CREDENTIALS.c.public_key_algorithm, "cred_public_key_algorithm"),
    _user_of_credential(USERS.c.handle, "user_handle"),
    _user_of_credential(USERS.c.username, "user_username"),
    _user_of_credential(USERS.c.display_name, "user_display_name"),
    _authenticator_of_credential(AUTHENTICATORS.c.username, "authenticator_username"),
    _authenticator_of_credential(AUTHENTICATORS.c.display_name, "authenticator_display_name"),
    _authenticator_of_credential(AUTHENTICATORS.c.verification_method, "authenticator_method"),
)
SPEND_FOR_ASSERTION = Statements(lambda insert: _spend(insert, *_ASSERTION_READS))
SPEND_FOR_REGISTRATION = Statements(
    lambda insert: _spend(
        insert,
        _user(USERS.c.handle, "user_handle"),
        _user(USERS.c.username, "user_username"),
        _user(USERS.c.display_name, "user_display_name"),
        select(func.count())
        .select_from(CREDENTIALS)
        .where(
            CREDENTIALS.c.tenant_id == bindparam("p_tenant_id"),
            CREDENTIALS.c.user_id == bindparam("p_user_id"),
        )
        .scalar_subquery()
        .label("passkey_count"),
    )
)
SPEND = Statements(lambda insert: _spend(insert))


@dataclass(frozen=True, kw_only=True, slots=True)
class SpentForAssertion:
    """A sign-in challenge just spent, with the credential the answer names (None when the
    tenant has no such credential), its user, and the tenant's version (None: no tenant)."""

    tenant_version: datetime | None
    authenticator_id: str | None
    user_id: str | None
    public_key: bytes | None
    sign_count: int
    backed_up: bool
    public_key_algorithm: int | None
    user_handle: str | None
    username: str | None
    display_name: str | None
    # The credential's authenticator's method: PASSKEY, or SECURITY_KEY (None: no credential).
    verification_method: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SpentForRegistration:
    """A registration challenge just spent, with what its user has (None names: no user)."""

    tenant_version: datetime | None
    user_exists: bool
    username: str | None
    display_name: str | None
    passkey_count: int


def _spend_params(tenant_id: str, digest: str, expires_at: datetime) -> dict[str, Any]:
    return {"p_digest": digest, "p_tenant_id": tenant_id, "p_expires_at": expires_at}


async def spend_for_assertion(
    db: Db, tenant_id: str, digest: str, expires_at: datetime, credential_id: str
) -> SpentForAssertion | None:
    """Spend a challenge (for exactly one caller, ever) and read the credential
    `credential_id` names, in one statement. None: it was spent before."""
    params = _spend_params(tenant_id, digest, expires_at)
    row = await db.first(SPEND_FOR_ASSERTION[db], {**params, "p_credential_id": credential_id})
    if row is None:
        return None
    return SpentForAssertion(
        tenant_version=row["tenant_version"],
        authenticator_id=row["cred_authenticator_id"],
        user_id=row["cred_user_id"],
        public_key=row["cred_public_key"],
        sign_count=int(row["cred_sign_count"] or 0),
        backed_up=bool(row["cred_backed_up"]),
        public_key_algorithm=row["cred_public_key_algorithm"],
        user_handle=row["user_handle"],
        username=row["user_username"] or row["authenticator_username"],
        display_name=row["user_display_name"] or row["authenticator_display_name"],
        verification_method=row["authenticator_method"],
    )


async def spend_for_registration(
    db: Db, tenant_id: str, digest: str, expires_at: datetime, user_id: str
) -> SpentForRegistration | None:
    """Spend a challenge and read `user_id`'s names and passkey count, in one statement."""
    params = _spend_params(tenant_id, digest, expires_at)
    row = await db.first(SPEND_FOR_REGISTRATION[db], {**params, "p_user_id": user_id})
    if row is None:
        return None
    return SpentForRegistration(
        tenant_version=row["tenant_version"],
        user_exists=row["user_handle"] is not None,
        username=row["user_username"],
        display_name=row["user_display_name"],
        passkey_count=int(row["passkey_count"] or 0),
    )


async def spend(db: Db, tenant_id: str, digest: str, expires_at: datetime) -> bool:
    """Spend a challenge without reading anything (True when this call did)."""
    return await db.first(SPEND[db], _spend_params(tenant_id, digest, expires_at)) is not None


# Credentials ------------------------------------------------------------------------------

USER_CREDENTIAL_IDS = select(CREDENTIALS.c.credential_id).where(
    CREDENTIALS.c.tenant_id == bindparam("p_tenant_id"),
    CREDENTIALS.c.user_id == bindparam("p_user_id"),
)
# Those of one method only (SECURITY_KEY: the security keys' allowCredentials).
USER_CREDENTIAL_IDS_OF_METHOD = USER_CREDENTIAL_IDS.join_from(
    CREDENTIALS, AUTHENTICATORS, AUTHENTICATORS.c.id == CREDENTIALS.c.authenticator_id
).where(AUTHENTICATORS.c.verification_method == bindparam("p_method"))
# The user, their passkeys' credential ids, the token's action (columns `a_<name>`) and
# whether the user has any authenticator, in one statement (one row per passkey).
REGISTERING = (
    select(
        USERS.c.handle,
        USERS.c.username,
        USERS.c.display_name,
        CREDENTIALS.c.credential_id,
        *(column.label(f"a_{column.name}") for column in ACTIONS.c),
        exists(
            select(AUTHENTICATORS.c.id).where(
                AUTHENTICATORS.c.tenant_id == USERS.c.tenant_id,
                AUTHENTICATORS.c.user_id == USERS.c.user_id,
                AUTHENTICATORS.c.verified_at.is_not(None),
            )
        ).label("user_enrolled"),
    )
    .select_from(
        USERS.outerjoin(
            CREDENTIALS,
            and_(
                CREDENTIALS.c.tenant_id == USERS.c.tenant_id,
                CREDENTIALS.c.user_id == USERS.c.user_id,
            ),
        ).outerjoin(
            ACTIONS,
            and_(
                ACTIONS.c.tenant_id == USERS.c.tenant_id,
                ACTIONS.c.user_id == USERS.c.user_id,
                ACTIONS.c.action_code == bindparam("p_action_code", type_=String()),
                ACTIONS.c.idempotency_key == bindparam("p_idempotency_key", type_=String()),
            ),
        )
    )
    .where(USERS.c.tenant_id == bindparam("p_tenant_id"), USERS.c.user_id == bindparam("p_user_id"))
)
USER_CREDENTIALS = select(CREDENTIALS).where(
    CREDENTIALS.c.tenant_id == bindparam("p_tenant_id"),
    CREDENTIALS.c.user_id == bindparam("p_user_id"),
)
CREDENTIAL_WITH_AUTHENTICATOR = (
    select(CREDENTIALS, *(column.label(f"a_{column.name}") for column in AUTHENTICATORS.c))
    .join(AUTHENTICATORS, AUTHENTICATORS.c.id == CREDENTIALS.c.authenticator_id)
    .where(
        CREDENTIALS.c.tenant_id == bindparam("p_tenant_id"),
        CREDENTIALS.c.credential_id.in_(bindparam("p_credential_ids", expanding=True)),
    )
    .limit(1)
)
CREDENTIALS_BY_AUTHENTICATOR = select(CREDENTIALS).where(
    CREDENTIALS.c.tenant_id == bindparam("p_tenant_id"),
    CREDENTIALS.c.authenticator_id.in_(bindparam("p_authenticator_ids", expanding=True)),
)
FLAG_CREDENTIAL = (
    update(CREDENTIALS)
    .where(
        CREDENTIALS.c.tenant_id == bindparam("p_tenant_id"),
        CREDENTIALS.c.credential_id == bindparam("p_credential_id"),
    )
    .values(flagged_at=bindparam("p_now"), flag_reason=bindparam("p_reason"))
    .returning(CREDENTIALS.c.user_id)
)
TOUCH_AUTHENTICATOR = (
    update(AUTHENTICATORS)
    .where(AUTHENTICATORS.c.id == bindparam("p_authenticator_id"))
    .values(last_verified_at=bindparam("p_now"))
)
SET_SIGN_COUNT = (
    update(CREDENTIALS)
    .where(CREDENTIALS.c.authenticator_id == bindparam("p_authenticator_id"))
    .values(sign_count=bindparam("p_sign_count"), backed_up=bindparam("p_backed_up"))
)
# PostgreSQL: a sign-in's writes as data-modifying WITH queries that ride in the action's
# statement (store/actions.py `AlongWith`): last_verified_at, and the sign count and backup
# state only where they changed. Parameters are `p_*` and none is a name the action's
# statements use.
_P_AUTHENTICATOR = bindparam("p_asserted_authenticator_id", type_=String())
_P_SIGN_COUNT = bindparam("p_asserted_sign_count", type_=CREDENTIALS.c.sign_count.type)
_P_BACKED_UP = bindparam("p_asserted_backed_up", type_=CREDENTIALS.c.backed_up.type)
ASSERTION_WRITES = (
    update(AUTHENTICATORS)
    .where(AUTHENTICATORS.c.id == _P_AUTHENTICATOR)
    .values(
        last_verified_at=bindparam("p_asserted_at", type_=AUTHENTICATORS.c.last_verified_at.type)
    )
    .returning(AUTHENTICATORS.c.id)
    .cte("asserted_authenticator"),
    update(CREDENTIALS)
    .where(
        CREDENTIALS.c.authenticator_id == _P_AUTHENTICATOR,
        or_(CREDENTIALS.c.sign_count != _P_SIGN_COUNT, CREDENTIALS.c.backed_up != _P_BACKED_UP),
    )
    .values(sign_count=_P_SIGN_COUNT, backed_up=_P_BACKED_UP)
    .returning(CREDENTIALS.c.authenticator_id)
    .cte("asserted_credential"),
)
INSERT_AUTHENTICATOR = insert(AUTHENTICATORS)
_CREDENTIAL_CONFLICT = [CREDENTIALS.c.tenant_id, CREDENTIALS.c.credential_id]
INSERT_CREDENTIAL = Statements(
    lambda insert: (
        insert(CREDENTIALS)
        .on_conflict_do_nothing(index_elements=_CREDENTIAL_CONFLICT)
        .returning(CREDENTIALS.c.authenticator_id)
    )
)


def _insert_both(insert: Any) -> Any:
    """PostgreSQL: the authenticator row in a data-modifying WITH, the credential row from it,
    in one statement (parameters `a_<column>` and `c_<column>`)."""
    new = (
        insert(AUTHENTICATORS)
        .values({column.name: bindparam(f"a_{column.name}") for column in AUTHENTICATORS.c})
        .returning(AUTHENTICATORS.c.id)
        .cte("new_authenticator")
    )
    columns = [column for column in CREDENTIALS.c if column.name != "authenticator_id"]
    source = select(
        new.c.id, *(bindparam(f"c_{column.name}", type_=column.type) for column in columns)
    )
    return (
        insert(CREDENTIALS)
        .from_select(["authenticator_id", *(column.name for column in columns)], source)
        .on_conflict_do_nothing(index_elements=_CREDENTIAL_CONFLICT)
        .returning(CREDENTIALS.c.authenticator_id)
    )


INSERT_AUTHENTICATOR_AND_CREDENTIAL = Statements(_insert_both)


async def registering(
    db: Db,
    tenant_id: str,
    user_id: str,
    action_code: str | None = None,
    idempotency_key: str | None = None,
) -> Registering | None:
    """The user's handle and names, their passkeys' credential ids, and the action under
    (`action_code`, `idempotency_key`) with whether the user has an authenticator, in one
    statement."""
    rows = await db.all(
        REGISTERING,
        {
            "p_tenant_id": tenant_id,
            "p_user_id": user_id,
            "p_action_code": action_code,
            "p_idempotency_key": idempotency_key,
        },
    )
    if not rows:
        return None
    first = rows[0]
    action = None
    if first["a_id"] is not None:
        action = ActionRow.of({name: first[f"a_{name}"] for name in ActionRow.__slots__})
    return Registering(
        handle=first["handle"],
        username=first["username"],
        display_name=first["display_name"],
        credential_ids=[row["credential_id"] for row in rows if row["credential_id"] is not None],
        action=action,
        enrolled=bool(first["user_enrolled"]),
    )


async def user_credential_ids(
    db: Db, tenant_id: str, user_id: str, verification_method: str | None = None
) -> list[str]:
    """The user's WebAuthn credential ids: all, or those of one method's authenticators."""
    params = {"p_tenant_id": tenant_id, "p_user_id": user_id}
    if verification_method is None:
        result = await db.execute(USER_CREDENTIAL_IDS, params)
    else:
        params["p_method"] = verification_method
        result = await db.execute(USER_CREDENTIAL_IDS_OF_METHOD, params)
    return list(result.scalars().all())


async def user_credentials(db: Db, tenant_id: str, user_id: str) -> Sequence[PasskeyCredentialRow]:
    rows = await db.all(USER_CREDENTIALS, {"p_tenant_id": tenant_id, "p_user_id": user_id})
    return [PasskeyCredentialRow.of(row) for row in rows]


async def credential_with_authenticator(
    db: Db, tenant_id: str, credential_ids: Sequence[str]
) -> tuple[PasskeyCredentialRow, AuthenticatorRow] | None:
    """The first of `credential_ids` this tenant knows, with its authenticator row."""
    row = await db.first(
        CREDENTIAL_WITH_AUTHENTICATOR,
        {"p_tenant_id": tenant_id, "p_credential_ids": list(credential_ids)},
    )
    if row is None:
        return None
    authenticator = {name: row[f"a_{name}"] for name in AuthenticatorRow.__slots__}
    return PasskeyCredentialRow.of(row), AuthenticatorRow.of(authenticator)


async def credentials_by_authenticator(
    db: Db, tenant_id: str, authenticator_ids: Sequence[str]
) -> dict[str, PasskeyCredentialRow]:
    if not authenticator_ids:
        return {}
    rows = await db.all(
        CREDENTIALS_BY_AUTHENTICATOR,
        {"p_tenant_id": tenant_id, "p_authenticator_ids": list(authenticator_ids)},
    )
    return {row["authenticator_id"]: PasskeyCredentialRow.of(row) for row in rows}


async def flag_credential(
    db: Db, tenant_id: str, credential_id: str, reason: str, now: datetime
) -> str | None:
    """Flag a credential (by its credential id); its user's id, or None when there is none."""
    params = {
        "p_tenant_id": tenant_id,
        "p_credential_id": credential_id,
        "p_now": now,
        "p_reason": reason,
    }
    user_id = await db.scalar(FLAG_CREDENTIAL, params)
    return None if user_id is None else str(user_id)


async def record_assertion(
    db: Db,
    authenticator_id: str,
    *,
    sign_count: int,
    backed_up: bool,
    changed: bool,
    now: datetime,
) -> AlongWith | None:
    """Note a sign-in: the authenticator's last_verified_at and, when `changed`, the
    credential's sign count and backup state. On PostgreSQL nothing runs here: the writes
    are returned, to ride in the action's statement (`actions.complete_challenge(along=)`).
    On SQLite (no writes inside WITH) they run now, one statement per table written: one,
    or two when the counter or backup state changed (synced passkeys report 0: one)."""
    if db.dialect == POSTGRESQL:
        return AlongWith(
            ctes=ASSERTION_WRITES,
            params={
                "p_asserted_authenticator_id": authenticator_id,
                "p_asserted_at": now,
                "p_asserted_sign_count": sign_count,
                "p_asserted_backed_up": backed_up,
            },
        )
    params = {
        "p_authenticator_id": authenticator_id,
        "p_now": now,
        "p_sign_count": sign_count,
        "p_backed_up": backed_up,
    }
    if changed:
        await db.execute(SET_SIGN_COUNT, params)
    await db.execute(TOUCH_AUTHENTICATOR, params)
    return None


async def insert_passkey(
    db: Db,
    *,
    authenticator_id: str | None = None,
    tenant_id: str,
    user_id: str,
    username: str | None,
    display_name: str | None,
    credential: Mapping[str, Any],
    verification_method: str = PASSKEY_METHOD,
) -> tuple[AuthenticatorRow, PasskeyCredentialRow] | None:
    """Insert a passkey's authenticator and credential rows (PostgreSQL: one statement;
    SQLite: two); None when the tenant already has this credential id (the authenticator row
    is then left for the caller's savepoint to undo). A security key is the same two rows
    with `verification_method` SECURITY_KEY."""
    now = utcnow()
    authenticator: dict[str, Any] = {
        "id": authenticator_id or str(uuid.uuid4()),
        "tenant_id": tenant_id,
        "user_id": user_id,
        "verification_method": verification_method,
        "email": None,
        "phone_number": None,
        "username": username,
        "display_name": display_name,
        "is_default": False,
        "created_at": now,
        "verified_at": now,
        "last_verified_at": None,
    }
    row: dict[str, Any] = {
        "authenticator_id": authenticator["id"],
        "tenant_id": tenant_id,
        "user_id": user_id,
        "flagged_at": None,
        "flag_reason": None,
        "name": None,
        **credential,
    }
    if db.dialect == POSTGRESQL:
        params = {f"a_{name}": value for name, value in authenticator.items()}
        params.update(
            (f"c_{name}", value) for name, value in row.items() if name != "authenticator_id"
        )
        inserted = await db.first(INSERT_AUTHENTICATOR_AND_CREDENTIAL[db], params)
    else:
        await db.execute(INSERT_AUTHENTICATOR, authenticator)
        inserted = await db.first(INSERT_CREDENTIAL[db], row)
    if inserted is None:
        return None
    return AuthenticatorRow.of(authenticator), PasskeyCredentialRow.of(row)


async def delete_credentials(
    db: Db, tenant_id: str, user_id: str, authenticator_id: str | None = None
) -> None:
    """A user's passkey rows (all, or one authenticator's), when those authenticators go."""
    statement = delete(CREDENTIALS).where(
        CREDENTIALS.c.tenant_id == tenant_id, CREDENTIALS.c.user_id == user_id
    )
    if authenticator_id is not None:
        statement = statement.where(CREDENTIALS.c.authenticator_id == authenticator_id)
    await db.execute(statement)
