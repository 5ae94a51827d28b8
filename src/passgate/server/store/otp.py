"""One-time code challenges (`otp_challenges`): rows and the conditional UPDATEs that spend
them. Every change of a challenge's state is one statement whose WHERE is the rule, so two
answers racing for one challenge never both win, and two wrong answers both count."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, insert, select, update

from passgate.server.store.db import Db
from passgate.server.store.tables import Authenticator, OtpChallenge, User, UTCDateTime

PENDING, VERIFIED, BURNT, CLAIMED = "pending", "verified", "burnt", "claimed"

CHALLENGES = cast(Table, OtpChallenge.__table__)
_c = CHALLENGES.c
AUTHENTICATORS = cast(Table, Authenticator.__table__)
_a = AUTHENTICATORS.c
USERS = cast(Table, User.__table__)
_u = USERS.c


@dataclass(frozen=True, kw_only=True, slots=True)
class OtpChallengeRow:
    """A row of `otp_challenges` (store/tables.py says what each column means)."""

    id: str
    tenant_id: str
    user_id: str | None
    action_id: str | None
    authenticator_id: str | None
    action_code: str | None
    idempotency_key: str | None
    method: str
    destination: str
    code_mac: str
    attempts: int
    state: str
    created_at: datetime
    expires_at: datetime
    verified_at: datetime | None

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> OtpChallengeRow:
        return cls(**{name: row[name] for name in cls.__slots__})


INSERT = insert(CHALLENGES).returning(*CHALLENGES.c)
GET = select(CHALLENGES).where(_c.id == bindparam("id"), _c.tenant_id == bindparam("tenant_id"))
# The action's newest challenge by this method: only it may be answered (a resend replaces
# the code the user is waiting for).
LATEST_FOR_ACTION = (
    select(CHALLENGES)
    .where(_c.action_id == bindparam("action_id"), _c.method == bindparam("method"))
    .order_by(_c.created_at.desc(), _c.id.desc())
    .limit(1)
)
# A wrong answer: counted (whatever the row holds now, so racing wrong answers all count),
# and the challenge burnt at the limit.
COUNT_WRONG = (
    update(CHALLENGES)
    .where(_c.id == bindparam("p_id"), _c.state == PENDING)
    .values(
        attempts=_c.attempts + 1,
        state=case((_c.attempts + 1 >= bindparam("max_attempts"), BURNT), else_=_c.state),
    )
    .returning(_c.attempts, _c.state)
)
# The right answer: only a pending, unexpired challenge below the limit is verified, once.
# Its expiry moves on, for a backend that claims it next.
VERIFY = (
    update(CHALLENGES)
    .where(
        _c.id == bindparam("p_id"),
        _c.state == PENDING,
        _c.attempts < bindparam("max_attempts"),
        _c.expires_at > bindparam("now", type_=UTCDateTime()),
    )
    .values(
        state=VERIFIED,
        verified_at=bindparam("now", type_=UTCDateTime()),
        expires_at=bindparam("claim_until", type_=UTCDateTime()),
    )
    .returning(*CHALLENGES.c)
)
CLAIM = (
    update(CHALLENGES)
    .where(
        _c.id == bindparam("p_id"),
        _c.tenant_id == bindparam("p_tenant_id"),
        _c.state.in_(bindparam("states", expanding=True)),
        _c.expires_at > bindparam("now", type_=UTCDateTime()),
        _c.user_id.is_(None) | (_c.user_id == bindparam("p_user_id")),
    )
    .values(state=CLAIMED, user_id=bindparam("p_user_id"))
    .returning(*CHALLENGES.c)
)
# The user's newest backend challenge for an action code and method (GET /challenges).
LATEST_FOR_USER = (
    select(CHALLENGES)
    .where(
        _c.tenant_id == bindparam("tenant_id"),
        _c.user_id == bindparam("user_id"),
        _c.action_id.is_(None),
        _c.expires_at > bindparam("now", type_=UTCDateTime()),
    )
    .order_by(_c.created_at.desc(), _c.id.desc())
)
# A user's email or phone authenticators of some methods, verified ones first, newest first.
CONTACT_AUTHENTICATORS = (
    select(AUTHENTICATORS)
    .where(
        _a.tenant_id == bindparam("tenant_id"),
        _a.user_id == bindparam("user_id"),
        _a.verification_method.in_(bindparam("methods", expanding=True)),
    )
    .order_by(_a.verified_at.is_(None), _a.created_at.desc(), _a.id)
)
MARK_VERIFIED = (
    update(AUTHENTICATORS)
    .where(_a.id == bindparam("p_id"))
    .values(
        verified_at=case(
            (_a.verified_at.is_(None), bindparam("now", type_=UTCDateTime())), else_=_a.verified_at
        ),
        last_verified_at=bindparam("now", type_=UTCDateTime()),
    )
    .returning(*AUTHENTICATORS.c)
)
CHANGE_DESTINATION = (
    update(AUTHENTICATORS)
    .where(_a.id == bindparam("p_id"), _a.verified_at.is_(None))
    .values(email=bindparam("p_email"), phone_number=bindparam("p_phone_number"))
)


async def insert_challenge(db: Db, values: Mapping[str, Any]) -> OtpChallengeRow:
    row = await db.first(
        INSERT, {"id": str(uuid.uuid4()), "attempts": 0, "state": PENDING, **values}
    )
    assert row is not None
    return OtpChallengeRow.of(row)


async def get_challenge(db: Db, tenant_id: str, challenge_id: str) -> OtpChallengeRow | None:
    row = await db.first(GET, {"id": challenge_id, "tenant_id": tenant_id})
    return None if row is None else OtpChallengeRow.of(row)


async def latest_for_action(db: Db, action_id: str, method: str) -> OtpChallengeRow | None:
    row = await db.first(LATEST_FOR_ACTION, {"action_id": action_id, "method": method})
    return None if row is None else OtpChallengeRow.of(row)


async def latest_for_user(
    db: Db,
    tenant_id: str,
    user_id: str,
    now: datetime,
    *,
    action_code: str | None,
    method: str | None,
) -> OtpChallengeRow | None:
    statement = LATEST_FOR_USER
    if action_code is not None:
        statement = statement.where(_c.action_code == action_code)
    if method is not None:
        statement = statement.where(_c.method == method)
    row = await db.first(
        statement.limit(1), {"tenant_id": tenant_id, "user_id": user_id, "now": now}
    )
    return None if row is None else OtpChallengeRow.of(row)


async def count_wrong(db: Db, challenge_id: str, max_attempts: int) -> tuple[int, str] | None:
    """Count a wrong answer: (attempts so far, state now), or None if it was not pending."""
    row = await db.first(COUNT_WRONG, {"p_id": challenge_id, "max_attempts": max_attempts})
    return None if row is None else (int(row["attempts"]), str(row["state"]))


async def verify(
    db: Db, challenge_id: str, *, max_attempts: int, now: datetime, claim_until: datetime
) -> OtpChallengeRow | None:
    """Mark the challenge verified, if it still may be; None when another answer (or the
    clock, or the attempt limit) got there first."""
    row = await db.first(
        VERIFY,
        {
            "p_id": challenge_id,
            "max_attempts": max_attempts,
            "now": now,
            "claim_until": claim_until,
        },
    )
    return None if row is None else OtpChallengeRow.of(row)


async def claim(
    db: Db, tenant_id: str, challenge_id: str, user_id: str, *, states: list[str], now: datetime
) -> OtpChallengeRow | None:
    row = await db.first(
        CLAIM,
        {
            "p_id": challenge_id,
            "p_tenant_id": tenant_id,
            "p_user_id": user_id,
            "states": states,
            "now": now,
        },
    )
    return None if row is None else OtpChallengeRow.of(row)


async def contact_authenticators(
    db: Db, tenant_id: str, user_id: str, methods: list[str]
) -> list[Mapping[str, Any]]:
    params = {"tenant_id": tenant_id, "user_id": user_id, "methods": methods}
    return list(await db.all(CONTACT_AUTHENTICATORS, params))


async def mark_authenticator_verified(
    db: Db, authenticator_id: str, now: datetime
) -> Mapping[str, Any]:
    row = await db.first(MARK_VERIFIED, {"p_id": authenticator_id, "now": now})
    assert row is not None
    return row


async def change_destination(
    db: Db, authenticator_id: str, *, email: str | None, phone_number: str | None
) -> None:
    """A new address or number for an authenticator not verified yet (enrolling again)."""
    await db.execute(
        CHANGE_DESTINATION,
        {"p_id": authenticator_id, "p_email": email, "p_phone_number": phone_number},
    )


async def mark_contact_verified(
    db: Db,
    tenant_id: str,
    user_id: str,
    *,
    email: str | None,
    phone_number: str | None,
    now: datetime,
) -> None:
    """The user's email (or phone number) is the one a code just verified: set it if the user
    has none, and mark it verified when it is theirs. A different address the backend set
    stays, unverified as it was."""
    if email is not None:
        column, flag, value = _u.email, "email_verified", email
    else:
        assert phone_number is not None
        column, flag, value = _u.phone_number, "phone_number_verified", phone_number
    await db.execute(
        update(USERS)
        .where(
            _u.tenant_id == tenant_id,
            _u.user_id == user_id,
            column.is_(None) | (column == value),
        )
        .values({column.name: value, flag: True, "updated_at": now})
    )
