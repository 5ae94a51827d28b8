"""Push challenges: started by `track` or W1, seen by the device (P5, optionally long-polled),
decided once (P6), and watched by the requester (W2, `get_action`, `/validate`). Their states
are `store.states.ChallengeState` (docs/push.md)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from passgate.server.services import metrics
from passgate.server.services.enums import ActionState, VerificationMethod
from passgate.server.services.errors import InvalidRequest, NotFound
from passgate.server.services.push import devices, keys, nonces
from passgate.server.services.push.devices import Recheck
from passgate.server.services.push.errors import (
    BadSignature,
    ChallengeAnswered,
    ChallengeExpired,
    NoPushDevice,
    UnknownCredential,
)
from passgate.server.services.push.hub import PushHub
from passgate.server.services.push.settings import push_settings
from passgate.server.services.tokens import TokenClaims
from passgate.server.store import actions as action_store
from passgate.server.store import push as push_store
from passgate.server.store.actions import ActionRow
from passgate.server.store.db import Db
from passgate.server.store.push import PushChallengeRow
from passgate.server.store.states import ChallengeState
from passgate.server.store.tables import utcnow
from passgate.server.store.tenants import TenantRow

log = structlog.get_logger("passgate.push")

MAX_WAIT_SECONDS = 60
# How a push decision settles its action (services/actions.settle's rule, in the statement).
_SETTLE = {
    "settle_from": ActionState.CHALLENGE_REQUIRED.value,
    "succeeded_state": ActionState.CHALLENGE_SUCCEEDED.value,
    "failed_state": ActionState.CHALLENGE_FAILED.value,
    "method": VerificationMethod.PUSH.value,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Started:
    """A pending challenge (new or the action's open one); None with `no_device` or
    `refused` (over the push-bombing limit, recorded)."""

    challenge: PushChallengeRow | None
    no_device: bool = False
    refused: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Pending:
    device_id: str
    challenge: PushChallengeRow | None = None
    action: ActionRow | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Answer:
    is_verified: bool
    failure_reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Status:
    is_verified: bool
    is_consumed: bool
    # Once approved, the action whose token the page gets (services/actions.py
    # `action_token`, which the route calls: this module does not import actions).
    action: ActionRow | None = None


def _new_code(digits: int) -> str:
    return f"{secrets.randbelow(10**digits):0{digits}d}"


async def start(
    db: Db,
    tenant: TenantRow,
    action: ActionRow,
    hub: PushHub,
    *,
    authenticator_id: str | None = None,
    new_action: bool = False,
    user_locked: bool = False,
) -> Started:
    """Ask the user's devices (or one of them) to approve `action`. An action's open challenge
    is reused, so retries neither spam the device nor change the number shown.

    One statement when the caller knows more: `new_action` (just inserted: it has no open
    challenge to reuse) and `user_locked` (this transaction already wrote the user's row, which
    on PostgreSQL holds it, as `push_store.lock_user` would). The insert itself checks that the
    user has a (matching, unexpired) device and the push-bombing limit."""
    settings = push_settings(tenant)
    now = utcnow()
    if not new_action:
        open_challenge = await push_store.get_reusable_challenge(
            db, action.id, authenticator_id, now
        )
        if open_challenge is not None:
            return Started(challenge=open_challenge)
    # Atomic across requests and processes: the user's row is held (PostgreSQL) while the
    # insert counts the user's recent challenges.
    if not user_locked:
        await push_store.lock_user(db, tenant.id, action.user_id)
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "tenant_id": tenant.id,
        "user_id": action.user_id,
        "action_id": action.id,
        "authenticator_id": authenticator_id,
        "verification_code": _new_code(settings.code_digits) if settings.number_matching else None,
        "created_at": now,
        "expires_at": now + timedelta(seconds=settings.challenge_expiry_seconds),
    }
    challenge = await push_store.insert_challenge(
        db,
        values,
        since=now - timedelta(seconds=settings.rate_limit_window_seconds),
        limit=settings.rate_limit,
    )
    if challenge is None:
        return Started(challenge=None, no_device=True)
    if challenge.state == ChallengeState.REFUSED:
        log.warning("push rate limit", tenant_id=tenant.id, user_id=action.user_id)
        return Started(challenge=None, refused=True)
    metrics.challenge(metrics.PUSH, "started", db)
    planned = []
    if hub.deliverer is not None and (settings.webhook_url or settings.apns or settings.fcm):
        # Only a tenant that delivers anywhere reads the devices (their push tokens).
        found = await push_store.find_devices(db, tenant.id, action.user_id, now)
        targets = [d for d in found if authenticator_id in (None, d.id)]
        planned = await hub.deliverer.plan(db, tenant.id, settings, challenge, action, targets)
    hub.after_commit(db, tenant.id, action.user_id, planned)
    return Started(challenge=challenge)


class TrackedAction(Protocol):
    """What track hands over (services/actions.py `Tracked`)."""

    @property
    def action(self) -> ActionRow: ...
    @property
    def tenant(self) -> TenantRow: ...
    @property
    def new_action(self) -> bool: ...
    @property
    def enrollment(self) -> Enrolled: ...


class Enrolled(Protocol):
    @property
    def enrolled_methods(self) -> Sequence[str]: ...


async def start_on_track(db: Db, tracked: TrackedAction, hub: PushHub) -> PushChallengeRow | None:
    """Track's push challenge: when the action needs a challenge, the user has a push device
    (track's upsert read the user's enrolled methods) and the tenant asks on track. One
    statement: track's upsert already wrote (so holds) the user's row, and a new action has
    no open challenge to reuse. Over the push-bombing limit the action stays unpushed."""
    tenant, action = tracked.tenant, tracked.action
    if (
        VerificationMethod.PUSH.value not in tracked.enrollment.enrolled_methods
        or action.state != ActionState.CHALLENGE_REQUIRED
        or not push_settings(tenant).challenge_on_track
    ):
        return None
    started = await start(db, tenant, action, hub, new_action=tracked.new_action, user_locked=True)
    return started.challenge


async def start_for_token(
    db: Db,
    tenant: TenantRow,
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
    action = await action_store.get_action(
        db, tenant.id, claims.user_id, claims.action_code, claims.idempotency_key
    )
    if action is None:
        raise NotFound("The token's action no longer exists.")
    if action.state != ActionState.CHALLENGE_REQUIRED:
        raise InvalidRequest(f"The action is {action.state}: there is nothing to approve.")
    started = await start(db, tenant, action, hub, authenticator_id=authenticator_id)
    if started.no_device:
        raise NoPushDevice("The user has no push device enrolled (or not this one).")
    return started


async def _device_ids(db: Db, tenant: TenantRow, public_key: str) -> tuple[str, str, bool]:
    """(device id, user id, from this process's memory) for a canonical key."""
    ids = devices.known_ids(tenant.id, public_key)
    if ids is not None:
        return ids[0], ids[1], True
    device = await devices.find(db, tenant, public_key)
    return device.device.id, device.device.user_id, False


async def pending_for_device(
    db: Db,
    tenant: TenantRow,
    hub: PushHub,
    *,
    public_key: str,
    signature: str | None,
    wait: float = 0,
    recheck: Recheck | None = None,
) -> Pending:
    """P5: the challenge the device should show now. With `wait`, return as soon as one is
    created, up to `wait` seconds, without keeping a database connection meanwhile.

    The signature is checked first, against the messages this process expects the device to
    hold (services/push/nonces.py `guesses`); then one statement spends the message (only
    while the device exists with this key, unexpired) and returns the device's pending
    challenge with its action and the tenant's version. Without a fitting guess, one read
    first counts the spent messages (docs/wire.md#push-device-keys, docs/push.md)."""
    key = keys.canonical_public_key(public_key)
    now = utcnow()
    device_id, user_id, remembered = await _device_ids(db, tenant, key)
    signed = next(
        (
            n
            for n in nonces.guesses(tenant, device_id, nonces.CHALLENGE, now)
            if keys.verify(key, signature, n.message)
        ),
        None,
    )
    if signed is None:
        outstanding = nonces.outstanding(tenant, device_id, nonces.CHALLENGE, now)
        current, previous = outstanding.ranges
        found = await push_store.get_device_and_pending(
            db, tenant.id, device_id, key, now, current=current, previous=previous
        )
        if found is None and remembered:
            # Removed (and maybe enrolled again under a new id): look the key up afresh.
            devices.forget(tenant.id, key)
            return await pending_for_device(
                db, tenant, hub, public_key=key, signature=signature, wait=wait, recheck=recheck
            )
        if found is None:
            raise UnknownCredential("No push credential with this public key.")
        devices.check_expiry(found.device, now)
        signed = next(
            (
                n
                for n in outstanding.candidates(found.spent)
                if keys.verify(key, signature, n.message)
            ),
            None,
        )
        if signed is None:
            raise BadSignature(
                "The signature does not sign this device's current message; request a new one."
            )
    spent = await push_store.spend_and_read_pending(
        db,
        tenant_id=tenant.id,
        device_id=device_id,
        user_id=user_id,
        public_key=key,
        digest=signed.digest,
        expires_at=signed.expires_at,
        now=now,
    )
    if spent is None:
        # A replay, or the device is gone or expired (`find` says which, and raises).
        device = await devices.find(db, tenant, key)
        if device.device.id != device_id:  # enrolled again under a new id
            return await pending_for_device(
                db, tenant, hub, public_key=key, signature=signature, wait=wait, recheck=recheck
            )
        raise BadSignature("This message was already used; request a new one.")
    if recheck is not None:
        tenant = (await recheck(spent.tenant_version))[0]
    nonces.note_spent(
        tenant.id, device_id, nonces.CHALLENGE, signed.expiry, nonces.serial_of(signed) + 1
    )
    if spent.challenge is not None or wait <= 0:
        return Pending(device_id=device_id, challenge=spent.challenge, action=spent.action)

    async def look() -> tuple[PushChallengeRow, ActionRow] | None:
        return await push_store.get_pending(db, tenant.id, user_id, device_id, utcnow())

    # While it waits, the request holds no connection; its used-up message is committed first.
    waited = await hub.wait_for(db, tenant.id, user_id, look, min(wait, MAX_WAIT_SECONDS))
    if waited is None:
        return Pending(device_id=device_id)
    return Pending(device_id=device_id, challenge=waited[0], action=waited[1])


async def answer(
    db: Db,
    tenant: TenantRow,
    *,
    public_key: str,
    challenge_id: str,
    signature: str,
    approved: bool,
    verification_code: str | None,
    recheck: Recheck | None = None,
    hub: PushHub | None = None,
) -> Answer:
    """P6: the device's one decision. Approving needs the number the requester shows; a wrong
    number fails the challenge. Of concurrent answers exactly one is taken, and only while the
    device exists (checked in the deciding statement); then the action is settled and, when
    approved, the device's last_verified_at recorded."""
    key = keys.canonical_public_key(public_key)
    if not keys.verify(key, signature, challenge_id):
        await devices.find(db, tenant, key)  # an unknown or expired device says so first
        raise BadSignature("The signature does not sign this challengeId with this device's key.")
    device_id, user_id, _ = await _device_ids(db, tenant, key)
    now = utcnow()
    decided = await push_store.decide(
        db,
        tenant_id=tenant.id,
        challenge_id=challenge_id,
        user_id=user_id,
        device_id=device_id,
        public_key=key,
        approved=approved,
        code=(verification_code or "").strip(),
        now=now,
        settle=_SETTLE,
    )
    if decided is None:
        raise await _why_not_decided(db, tenant, key, challenge_id)
    if recheck is not None:
        await recheck(decided.tenant_version)  # a tenant gone meanwhile is refused
    if hub is not None:  # the requesting page may be waiting (W2 with `wait`), in any process
        hub.after_commit(db, tenant.id, user_id, [])
    settled = decided.settled
    if settled is None:
        # The backend may have settled the action meanwhile (update_action); its word stands.
        settled = await push_store.settle_action(
            db, decided, device_id=device_id, now=now, settle=_SETTLE
        )
        if decided.state == ChallengeState.APPROVED:
            await push_store.mark_verified(db, device_id, now)
    if not approved:
        metrics.challenge(metrics.PUSH, "rejected", db)
        return Answer(is_verified=False, failure_reason="REJECTED")
    if decided.state == ChallengeState.FAILED:
        metrics.challenge(metrics.PUSH, "failed", db)
        return Answer(is_verified=False, failure_reason="VERIFICATION_CODE_MISMATCH")
    metrics.challenge(metrics.PUSH, "approved", db)
    if not settled:
        return Answer(is_verified=False, failure_reason="ACTION_ALREADY_SETTLED")
    return Answer(is_verified=True)


async def _why_not_decided(db: Db, tenant: TenantRow, key: str, challenge_id: str) -> Exception:
    """The refusal for an answer the decision did not take (the failure path reads again)."""
    device = await devices.find(db, tenant, key)  # unknown or expired: raises
    found = await push_store.get_challenge(db, tenant.id, challenge_id)
    challenge = found[0] if found else None
    if (
        challenge is None
        or challenge.user_id != device.device.user_id
        or challenge.authenticator_id not in (None, device.device.id)
        or challenge.state == ChallengeState.REFUSED
    ):
        devices.forget(tenant.id, key)  # a re-enrolled key may have had a stale id here
        return NotFound("No such push challenge for this device.", error_code="challenge_not_found")
    if challenge.state != ChallengeState.PENDING:
        return ChallengeAnswered("This challenge has already been answered.")
    if challenge.expires_at <= utcnow():
        metrics.challenge(metrics.PUSH, "expired")
        return ChallengeExpired("This challenge has expired.")
    return ChallengeAnswered("This challenge has already been answered (or just expired).")


async def status(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims,
    challenge_id: str,
    *,
    hub: PushHub | None = None,
    wait: float = 0,
) -> Status:
    """W2: what became of the token's challenge; once approved, a token for `/validate`. With
    `wait` (and the hub), return as soon as the challenge is consumed (answered, or expired),
    up to `wait` seconds, holding no database connection meanwhile: the device's answer wakes
    the waiting page in whichever process it waits (`answer`, docs/push.md)."""
    current, expires_at = await _status(db, tenant, claims, challenge_id)
    if current.is_consumed or wait <= 0 or hub is None:
        return current

    async def look() -> Status | None:
        found, _ = await _status(db, tenant, claims, challenge_id)
        return found if found.is_consumed else None

    # Past its expiry the challenge is consumed: no need to wait longer than that.
    until_expiry = (expires_at - utcnow()).total_seconds() + 0.01
    waited = await hub.wait_for(
        db, tenant.id, claims.user_id, look, min(wait, MAX_WAIT_SECONDS, until_expiry)
    )
    return waited or (await _status(db, tenant, claims, challenge_id))[0]


async def _status(
    db: Db, tenant: TenantRow, claims: TokenClaims, challenge_id: str
) -> tuple[Status, datetime]:
    found = await push_store.get_challenge(db, tenant.id, challenge_id)
    if (
        found is None
        or found[0].state == ChallengeState.REFUSED
        or found[1].user_id != claims.user_id
        or found[1].action_code != claims.action_code
        or found[1].idempotency_key != claims.idempotency_key
    ):
        raise NotFound("No such push challenge for this token.", error_code="challenge_not_found")
    challenge, action = found
    verified = challenge.state == ChallengeState.APPROVED
    consumed = challenge.state != ChallengeState.PENDING or challenge.expires_at <= utcnow()
    status = Status(is_verified=verified, is_consumed=consumed, action=action if verified else None)
    return status, challenge.expires_at


async def verification_code(db: Db, action: ActionRow) -> str | None:
    """The number the requester shows for the action's newest challenge (never the device)."""
    challenge = await push_store.get_action_challenge(db, action.id)
    return challenge.verification_code if challenge else None
