"""Push challenges: started by `track` or W1, seen by the device (P5, optionally long-polled),
decided once (P6), and watched by the requester (W2, `get_action`, `/validate`)."""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.services import actions
from passgate.server.services.enums import ActionState, VerificationMethod
from passgate.server.services.errors import InvalidRequest, NotFound
from passgate.server.services.push import devices, keys
from passgate.server.services.push.errors import (
    BadSignature,
    ChallengeAnswered,
    ChallengeExpired,
    NoPushDevice,
)
from passgate.server.services.push.hub import PushHub
from passgate.server.services.push.settings import push_settings
from passgate.server.services.tokens import TokenClaims
from passgate.server.store import push_queries, queries
from passgate.server.store.db import db_of
from passgate.server.store.push_queries import PENDING, REFUSED
from passgate.server.store.tables import Action, PushChallenge, Tenant, utcnow

log = structlog.get_logger("passgate.push")

APPROVED, REJECTED, FAILED = "approved", "rejected", "failed"
MAX_WAIT_SECONDS = 60


@dataclass(frozen=True, kw_only=True, slots=True)
class Started:
    """A pending challenge (new or the action's open one); None with `no_device` or
    `refused` (over the push-bombing limit, recorded)."""

    challenge: PushChallenge | None
    no_device: bool = False
    refused: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Pending:
    device: devices.Device
    challenge: PushChallenge | None = None
    action: Action | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Answer:
    is_verified: bool
    failure_reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Status:
    is_verified: bool
    is_consumed: bool
    access_token: str | None = None


def _new_code(digits: int) -> str:
    return f"{secrets.randbelow(10**digits):0{digits}d}"


async def start(
    session: AsyncSession,
    tenant: Tenant,
    action: Action,
    hub: PushHub,
    *,
    authenticator_id: str | None = None,
) -> Started:
    """Ask the user's devices (or one of them) to approve `action`. An action's open challenge
    is reused, so retries neither spam the device nor change the number shown."""
    settings = push_settings(tenant)
    now = utcnow()
    found = await push_queries.user_devices(session, tenant.id, action.user_id, now)
    targets = [d for d in found if authenticator_id in (None, d.id)]
    if not targets:
        return Started(challenge=None, no_device=True)
    # Atomic across requests and processes: the user's row is held (PostgreSQL) while the open
    # challenge is looked for, and the insert itself checks the push-bombing limit.
    await push_queries.lock_user(session, tenant.id, action.user_id)
    open_challenge = await push_queries.action_challenge(session, action.id, pending_at=now)
    if open_challenge is not None and (
        None in (open_challenge.authenticator_id, authenticator_id)
        or open_challenge.authenticator_id == authenticator_id
    ):
        return Started(challenge=open_challenge)
    values = {
        "id": str(uuid.uuid4()),
        "tenant_id": tenant.id,
        "user_id": action.user_id,
        "action_id": action.id,
        "authenticator_id": authenticator_id,
        "state": PENDING,
        "verification_code": _new_code(settings.code_digits) if settings.number_matching else None,
        "created_at": now,
        "expires_at": now + timedelta(seconds=settings.challenge_expiry_seconds),
    }
    challenge = await push_queries.insert_challenge_within_limit(
        session,
        values,
        since=now - timedelta(seconds=settings.rate_limit_window_seconds),
        limit=settings.rate_limit,
    )
    if challenge is None:
        session.add(PushChallenge(**{**values, "state": REFUSED}))
        await session.flush()
        log.warning("push rate limit", tenant_id=tenant.id, user_id=action.user_id)
        return Started(challenge=None, refused=True)
    planned = (
        hub.deliverer.plan(tenant.id, settings, challenge, action, targets) if hub.deliverer else []
    )
    hub.after_commit(db_of(session), tenant.id, action.user_id, planned)
    return Started(challenge=challenge)


async def start_for_token(
    session: AsyncSession,
    tenant: Tenant,
    claims: TokenClaims,
    hub: PushHub,
    *,
    action_code: str | None,
    authenticator_id: str | None,
) -> Started:
    """W1: the requesting page starts (or re-reads) a challenge for its token's action."""
    if not claims.action_code or not claims.idempotency_key:
        raise InvalidRequest("The token is not bound to an action.")
    if action_code and action_code != claims.action_code:
        raise InvalidRequest(
            f"The token is for action {claims.action_code!r}, not {action_code!r}."
        )
    action = await queries.get_action(
        session, tenant.id, claims.user_id, claims.action_code, claims.idempotency_key
    )
    if action is None:
        raise NotFound("The token's action no longer exists.")
    if action.state != ActionState.CHALLENGE_REQUIRED:
        raise InvalidRequest(f"The action is {action.state}: there is nothing to approve.")
    started = await start(session, tenant, action, hub, authenticator_id=authenticator_id)
    if started.no_device:
        raise NoPushDevice("The user has no push device enrolled (or not this one).")
    return started


async def pending_for_device(
    session: AsyncSession,
    tenant: Tenant,
    hub: PushHub,
    *,
    public_key: str,
    signature: str | None,
    wait: float = 0,
) -> Pending:
    """P5: the challenge the device should show now. With `wait`, return as soon as one is
    created, up to `wait` seconds, without keeping a database connection meanwhile."""
    device = await devices.find(session, tenant, public_key)
    await devices.prove(session, tenant, device, signature)
    user_id, device_id = device.device.user_id, device.device.id

    db = db_of(session)

    async def look() -> tuple[PushChallenge, Action] | None:
        current = await db.session()
        return await push_queries.pending_challenge(
            current, tenant.id, user_id, device_id, utcnow()
        )

    # While it waits, the request holds no connection; its used-up message is committed first.
    found = await hub.wait_for(db, tenant.id, user_id, look, min(wait, MAX_WAIT_SECONDS))
    if found is None:
        return Pending(device=device)
    return Pending(device=device, challenge=found[0], action=found[1])


async def answer(
    session: AsyncSession,
    tenant: Tenant,
    *,
    public_key: str,
    challenge_id: str,
    signature: str,
    approved: bool,
    verification_code: str | None,
) -> Answer:
    """P6: the device's one decision. Approving needs the number the requester shows; a wrong
    number fails the challenge. Of concurrent answers exactly one is taken."""
    device = await devices.find(session, tenant, public_key)
    if not keys.verify(device.device.public_key, signature, challenge_id):
        raise BadSignature("The signature does not sign this challengeId with this device's key.")
    found = await push_queries.get_challenge(session, tenant.id, challenge_id)
    challenge, action = found if found else (None, None)
    if (
        challenge is None
        or action is None
        or challenge.user_id != device.device.user_id
        or challenge.authenticator_id not in (None, device.device.id)
        or challenge.state == REFUSED
    ):
        raise NotFound("No such push challenge for this device.", error_code="challenge_not_found")
    now = utcnow()
    if challenge.state != PENDING:
        raise ChallengeAnswered("This challenge has already been answered.")
    if challenge.expires_at <= now:
        raise ChallengeExpired("This challenge has expired.")
    code_ok = challenge.verification_code is None or hmac.compare_digest(
        (verification_code or "").strip().encode(), challenge.verification_code.encode()
    )
    verified = approved and code_ok
    state = APPROVED if verified else (FAILED if approved else REJECTED)
    if not await push_queries.decide(
        session, challenge.id, state=state, device_id=device.device.id, now=now
    ):
        raise ChallengeAnswered("This challenge has already been answered (or just expired).")
    # The backend may have settled the action meanwhile (update_action); its word stands.
    settled = await actions.settle(
        session,
        action,
        succeeded=verified,
        method=VerificationMethod.PUSH,
        authenticator_id=device.device.id,
    )
    if verified:
        device.authenticator.last_verified_at = now
        await session.flush()
    if not approved:
        return Answer(is_verified=False, failure_reason="REJECTED")
    if not code_ok:
        return Answer(is_verified=False, failure_reason="VERIFICATION_CODE_MISMATCH")
    if not settled:
        return Answer(is_verified=False, failure_reason="ACTION_ALREADY_SETTLED")
    return Answer(is_verified=True)


async def status(
    session: AsyncSession, tenant: Tenant, claims: TokenClaims, challenge_id: str
) -> Status:
    """W2: what became of the token's challenge; once approved, a token for `/validate`."""
    found = await push_queries.get_challenge(session, tenant.id, challenge_id)
    if (
        found is None
        or found[0].state == REFUSED
        or found[1].user_id != claims.user_id
        or found[1].action_code != claims.action_code
        or found[1].idempotency_key != claims.idempotency_key
    ):
        raise NotFound("No such push challenge for this token.", error_code="challenge_not_found")
    challenge, action = found
    verified = challenge.state == APPROVED
    consumed = challenge.state != PENDING or challenge.expires_at <= utcnow()
    token = actions.action_token(tenant, action, claims.username) if verified else None
    return Status(is_verified=verified, is_consumed=consumed, access_token=token)


async def verification_code(session: AsyncSession, action: Action) -> str | None:
    """The number the requester shows for the action's newest challenge (never the device)."""
    challenge = await push_queries.action_challenge(session, action.id)
    return challenge.verification_code if challenge else None
