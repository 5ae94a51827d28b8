"""Recovery codes (RECOVERY_CODE): ten single-use codes a user keeps on paper, for the day
every device is lost (docs/totp-and-recovery-codes.md#recovery-codes).

A set is made by the tenant's backend (POST /users/{id}/authenticators) or by the user's app
with a token the one enrolment rule allows (services/enrolment.py). The codes are shown once,
in that answer, and stored only as keyed MACs (services/code_macs.py, purpose "recovery"):
a copy of the database without the master key cannot test a guess. Making a set again
replaces the user's codes: the old ones stop working; the authenticator stays the same.

Each code is ten characters from an alphabet without look-alikes (no 0/o, 1/l/i), shown as
two groups of five; what the user types is compared in lower case with spaces and dashes
dropped. A code is found by its MAC and used up by the same conditional UPDATE, so two
requests with one code cannot both pass. Wrong codes are limited per action and per user
like authenticator app codes (services/guessable_codes.py), though fifty bits are not
guessable; a right one settles the token's action with method RECOVERY_CODE."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from passgate.server.services import (
    actions,
    audit,
    code_macs,
    enrolment,
    guessable_codes,
    users,
)
from passgate.server.services.enums import VerificationMethod
from passgate.server.services.errors import Forbidden, InvalidRequest
from passgate.server.services.guessable_codes import CodeVerification, GuessLimits
from passgate.server.services.tokens import TokenClaims
from passgate.server.store import actions as action_store
from passgate.server.store import recovery_codes as store
from passgate.server.store import totp as totp_store
from passgate.server.store import users as user_store
from passgate.server.store.authenticators import AuthenticatorRow
from passgate.server.store.db import Db
from passgate.server.store.tables import utcnow
from passgate.server.store.tenants import TenantRow

COUNT = 10
GROUP = 5
GROUPS = 2
ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
PURPOSE = "recovery"
LIMITS = GuessLimits(purpose="recovery", per_action=5, per_user=10, user_window_seconds=3600)
USED = "user.recovery_code.used"
REPLACED = "user.recovery_codes.replaced"


@dataclass(frozen=True, kw_only=True, slots=True)
class Issued:
    """A user's recovery code authenticator and its new codes, as shown (once)."""

    authenticator: AuthenticatorRow
    codes: list[str]


def new_code() -> str:
    groups = ["".join(secrets.choice(ALPHABET) for _ in range(GROUP)) for _ in range(GROUPS)]
    return "-".join(groups)


def normalise(code: str) -> str:
    """What is MACed: lower case, without the dash and any spaces."""
    return "".join(code.split()).replace("-", "").lower()


def _well_formed(normalised: str) -> bool:
    return len(normalised) == GROUP * GROUPS and all(c in ALPHABET for c in normalised)


async def issue(db: Db, tenant: TenantRow, user_id: str, *, actor: audit.Actor) -> Issued:
    """Make the user a new set of codes (replacing any they had), in the audit log as
    `actor`'s."""
    await user_store.ensure_user(db, tenant.id, user_id)
    # Two enrolments of one user take turns, so one set stands, not two.
    user = await totp_store.lock_user(db, tenant.id, user_id)
    codes = [new_code() for _ in range(COUNT)]
    key = await code_macs.tenant_key(db, tenant)
    macs = [code_macs.mac(key, PURPOSE, normalise(code)) for code in codes]
    existing = await store.find_sets(db, tenant.id, user_id)
    if existing:
        authenticator = existing[0]
        await audit.record(
            db,
            actor,
            REPLACED,
            target_type="user",
            target_id=user_id,
            tenant_id=tenant.id,
            details={"authenticatorId": authenticator.id},
        )
    else:
        authenticator = await users.add_verified_authenticator(
            db, tenant, user, method=VerificationMethod.RECOVERY_CODE, actor=actor
        )
    await store.replace_codes(
        db,
        authenticator_id=authenticator.id,
        tenant_id=tenant.id,
        user_id=user_id,
        code_macs=macs,
    )
    return Issued(authenticator=authenticator, codes=codes)


async def enroll(db: Db, tenant: TenantRow, claims: TokenClaims) -> Issued:
    """A new set for the token's user, made through the Client API: the one enrolment rule
    decides, and the token's leave to add an authenticator is used up (replacing a set
    spends it too: new codes are as good as a new authenticator)."""
    grant = await enrolment.check(db, tenant, claims)
    issued = await issue(db, tenant, claims.user_id, actor=audit.user_actor(claims.user_id))
    await enrolment.use_up(db, grant)
    return issued


async def verify(db: Db, tenant: TenantRow, claims: TokenClaims, code: str) -> CodeVerification:
    """Use one of the user's recovery codes and settle the token's action."""
    if not claims.action_code or not claims.idempotency_key:
        raise Forbidden("The token is not bound to an action: track one to verify a code.")
    action = await action_store.get_action(
        db, tenant.id, claims.user_id, claims.action_code, claims.idempotency_key
    )
    if action is None:
        raise Forbidden("The token's action no longer exists: track a new one.")
    if not await store.find_sets(db, tenant.id, claims.user_id):
        raise InvalidRequest(
            "The user has no recovery codes: make a set first.", error_code="not_enrolled"
        )
    counted = await guessable_codes.attempt(
        db, LIMITS, tenant_id=tenant.id, user_id=claims.user_id, action_id=action.id
    )
    if counted.refused:
        return guessable_codes.refused(guessable_codes.MAX_ATTEMPTS)
    typed = normalise(code)
    if not _well_formed(typed):
        return guessable_codes.refused(guessable_codes.CODE_INVALID)
    key = await code_macs.tenant_key(db, tenant)
    now = utcnow()
    authenticator_id = await store.use_code(
        db, tenant.id, claims.user_id, code_macs.mac(key, PURPOSE, typed), now
    )
    if authenticator_id is None:
        return guessable_codes.refused(guessable_codes.CODE_INVALID)
    await guessable_codes.succeeded(db, counted)
    await totp_store.note_verified(db, authenticator_id, now)
    await audit.record(
        db,
        audit.user_actor(claims.user_id),
        USED,
        target_type="user",
        target_id=claims.user_id,
        tenant_id=tenant.id,
        details={
            "authenticatorId": authenticator_id,
            "codesLeft": await store.count_unused(db, authenticator_id),
        },
    )
    _action, token = await actions.complete_challenge(
        db,
        tenant,
        user_id=claims.user_id,
        action_code=claims.action_code,
        idempotency_key=claims.idempotency_key,
        method=VerificationMethod.RECOVERY_CODE,
        authenticator_id=authenticator_id,
    )
    return CodeVerification(is_verified=True, token=token)
