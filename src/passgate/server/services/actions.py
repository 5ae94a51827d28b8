"""Actions: track, read, change state, validate. The state machine lives here, once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.schemas import TrackAttributes
from passgate.server.services import redirects, tenants, tokens, users
from passgate.server.services.enums import ActionState, VerificationMethod
from passgate.server.services.errors import Conflict, Forbidden, NotFound
from passgate.server.services.push import challenges as push_challenges
from passgate.server.services.push.hub import PushHub
from passgate.server.services.push.settings import push_settings
from passgate.server.store import queries
from passgate.server.store.tables import Action, PushChallenge, User, utcnow
from passgate.server.store.tenants import TenantRow

# `Action.origin` of an action a client recorded with no backend-issued token for it.
CLIENT_ORIGIN = "client"
# A result is redeemable by /validate only from these states.
VALID_STATES = frozenset({ActionState.CHALLENGE_SUCCEEDED, ActionState.ALLOW})
# A successful challenge does not override these: the backend (or a reviewer) decided.
BLOCKING_STATES = frozenset(
    {ActionState.BLOCK, ActionState.REVIEW_REQUIRED, ActionState.REVIEW_FAILED}
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Tracked:
    action: Action
    token: str
    enrollment: users.Enrollment
    # Started when the action needs a challenge and the user has a push device.
    push_challenge: PushChallenge | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Validation:
    is_valid: bool
    action: Action | None
    error: str | None = None


async def track(
    session: AsyncSession,
    tenant: TenantRow,
    user_id: str,
    action_code: str,
    attributes: TrackAttributes,
    *,
    push_hub: PushHub | None = None,
) -> Tracked:
    """Record an action and decide its starting state from the tenant's rules.

    With an `idempotencyKey` already used for this user and action, the existing action is
    returned unchanged (with a fresh token), so a retried request never creates a second one.
    A key that a client's action holds (one a passkey sign-in recorded without a backend's
    token, `origin="client"`) is refused with 409: track never inherits an outcome it did not
    ask for, so a client cannot pre-approve an action its backend will track later.
    An action that needs a challenge asks the user's push devices (tenant setting
    `challenge_on_track`); over the push-bombing limit the action is still tracked, unpushed.
    A `redirectUrl` must be on one of the tenant's origins (the hosted page sends the user
    there with a token), else nothing is recorded and `InvalidRequest` names it."""
    if attributes.redirect_url is not None:
        redirects.check_redirect_url(tenant.origins, attributes.redirect_url)
    user = await queries.ensure_user(session, tenant.id, user_id)
    _apply_user_attributes(user, attributes)
    action = None
    if attributes.idempotency_key:
        action = await queries.get_action(
            session, tenant.id, user_id, action_code, attributes.idempotency_key
        )
    if action is None:
        action = await _insert_action(session, tenant, user_id, action_code, attributes)
    if action.origin == CLIENT_ORIGIN:
        raise Conflict(
            f"The idempotency key {action.idempotency_key!r} belongs to an action a client "
            f"recorded for {action_code!r} without your token; track with another key."
        )
    token = action_token(tenant, action, user.username)
    push_challenge = None
    if (
        push_hub is not None
        and action.state == ActionState.CHALLENGE_REQUIRED
        and push_settings(tenant).challenge_on_track
    ):
        started = await push_challenges.start(session, tenant, action, push_hub)
        push_challenge = started.challenge
    return Tracked(
        action=action,
        token=token,
        enrollment=await users.enrollment(session, tenant, user_id),
        push_challenge=push_challenge,
    )


def action_token(tenant: TenantRow, action: Action, username: str | None) -> str:
    """The token for an action: the Client API's Bearer token and what `/validate` redeems."""
    return tokens.issue_token(
        tenant,
        user_id=action.user_id,
        action_code=action.action_code,
        idempotency_key=action.idempotency_key,
        username=username,
        scope=action.scope,
    )


def _apply_user_attributes(user: User, attributes: TrackAttributes) -> None:
    if attributes.username and attributes.username != user.username:
        user.username = attributes.username
    if attributes.email and attributes.email != user.email:
        user.email, user.email_verified = attributes.email, False
    if attributes.phone_number and attributes.phone_number != user.phone_number:
        user.phone_number, user.phone_number_verified = attributes.phone_number, False


async def _insert_action(
    session: AsyncSession,
    tenant: TenantRow,
    user_id: str,
    action_code: str,
    attributes: TrackAttributes,
) -> Action:
    now = utcnow()
    idempotency_key = attributes.idempotency_key or str(uuid.uuid4())
    values = {
        "id": str(uuid.uuid4()),
        "tenant_id": tenant.id,
        "user_id": user_id,
        "action_code": action_code,
        "idempotency_key": idempotency_key,
        "state": tenants.default_outcome(tenant, action_code).value,
        "state_updated_at": now,
        "created_at": now,
        "updated_at": now,
        "ip_address": attributes.ip_address,
        "user_agent": attributes.user_agent,
        "device_id": attributes.device_id,
        "custom": attributes.custom,
        "scope": attributes.scope,
        "redirect_url": attributes.redirect_url,
        "locale": attributes.locale,
    }
    action = await queries.insert_action(session, values)
    if action is None:
        # A concurrent track with the same idempotency key won: return its action.
        action = await queries.get_action(session, tenant.id, user_id, action_code, idempotency_key)
        assert action is not None
    return action


async def get_action(
    session: AsyncSession, tenant: TenantRow, user_id: str, action_code: str, idempotency_key: str
) -> Action:
    action = await queries.get_action(session, tenant.id, user_id, action_code, idempotency_key)
    if action is None:
        raise NotFound(
            f"no action {action_code!r} with idempotency key {idempotency_key!r} "
            f"for user {user_id!r}"
        )
    return action


async def set_state(
    session: AsyncSession,
    tenant: TenantRow,
    user_id: str,
    action_code: str,
    idempotency_key: str,
    state: ActionState,
) -> Action:
    """The backend's override of an action's state (for example after a manual review)."""
    action = await get_action(session, tenant, user_id, action_code, idempotency_key)
    now = utcnow()
    if action.state != state.value:
        action.state, action.state_updated_at = state.value, now
    action.updated_at = now
    await session.flush()
    return action


async def query_actions(
    session: AsyncSession,
    tenant: TenantRow,
    user_id: str,
    *,
    from_date: datetime | None = None,
    action_codes: Sequence[str] = (),
    state: ActionState | None = None,
    limit: int = 100,
) -> Sequence[Action]:
    return await queries.find_actions(
        session,
        tenant.id,
        user_id,
        from_date=from_date,
        action_codes=action_codes,
        state=state.value if state else None,
        limit=limit,
    )


async def validate(
    session: AsyncSession,
    tenant: TenantRow,
    token: str,
    *,
    user_id: str | None = None,
    action_code: str | None = None,
) -> Validation:
    """Redeem a token: valid only for a succeeded (or allowed) action, and only once.

    A token that is forged, tampered with, expired or another tenant's raises; a genuine
    token whose action is not (or no longer) redeemable returns `is_valid=False` and why."""
    claims = tokens.decode_token(tenant, token)
    if not claims.action_code or not claims.idempotency_key:
        return Validation(is_valid=False, action=None, error="The token is not bound to an action.")
    key = (tenant.id, claims.user_id, claims.action_code, claims.idempotency_key)
    if (user_id is None or user_id == claims.user_id) and (
        action_code is None or action_code == claims.action_code
    ):
        redeemed = await queries.redeem_action(
            session, *key, states=[state.value for state in VALID_STATES], now=utcnow()
        )
        if redeemed is not None:
            return Validation(is_valid=True, action=redeemed)
    # Not redeemed: read the action once more to say why.
    action = await queries.get_action(session, *key)
    if action is None:
        return Validation(is_valid=False, action=None, error="The token's action no longer exists.")
    if user_id is not None and user_id != claims.user_id:
        return Validation(is_valid=False, action=action, error="The token belongs to another user.")
    if action_code is not None and action_code != claims.action_code:
        return Validation(is_valid=False, action=action, error="The token is for another action.")
    if action.state not in VALID_STATES:
        return Validation(is_valid=False, action=action)
    return Validation(is_valid=False, action=action, error="The token has already been validated.")


async def settle(
    session: AsyncSession,
    action: Action,
    *,
    succeeded: bool,
    method: VerificationMethod,
    authenticator_id: str,
) -> bool:
    """Record a challenge's result on an action. Only an action waiting for a challenge
    (CHALLENGE_REQUIRED) takes one, once, atomically; any other state was set by the tenant's
    rules, the backend or an earlier challenge, and stands. True when this call settled it."""
    outcome = ActionState.CHALLENGE_SUCCEEDED if succeeded else ActionState.CHALLENGE_FAILED
    return await queries.settle_action(
        session,
        action.id,
        state=outcome.value,
        from_state=ActionState.CHALLENGE_REQUIRED.value,
        verification_method=method.value,
        authenticator_id=authenticator_id,
        now=utcnow(),
    )


async def complete_challenge(
    session: AsyncSession,
    tenant: TenantRow,
    *,
    user_id: str,
    action_code: str,
    idempotency_key: str | None,
    method: VerificationMethod,
    authenticator_id: str,
    device_id: str | None = None,
    client_made: bool = False,
) -> tuple[Action, str]:
    """A challenge for this action succeeded: settle it (see `settle`) and return it with a
    token `/validate` accepts. Without an idempotency key (a sign-in that started with no
    tracked action) the action is recorded now, already succeeded, unless the tenant's rule
    for it blocks. An action already decided otherwise is refused.

    `client_made`: the challenge was started with nothing but the tenant id (no token of the
    backend's). Such a challenge never settles an action a backend tracked, even under that
    action's key: only the action's own token may answer it (409, nothing settled)."""
    action = None
    if idempotency_key:
        action = await queries.get_action(session, tenant.id, user_id, action_code, idempotency_key)
    if action is not None and client_made:
        _refuse_backend_action(action)
    if action is None:
        action = await _record_verified_action(
            session,
            tenant,
            user_id,
            action_code,
            idempotency_key,
            method=method,
            authenticator_id=authenticator_id,
            device_id=device_id,
        )
    if action.state == ActionState.CHALLENGE_REQUIRED:
        await settle(
            session, action, succeeded=True, method=method, authenticator_id=authenticator_id
        )
    if action.state not in VALID_STATES:
        raise Forbidden(f"The action is {action.state}; a challenge cannot change that.")
    user = await queries.get_user(session, tenant.id, user_id)
    return action, action_token(tenant, action, user.username if user else None)


async def refuse_backend_key(
    session: AsyncSession, tenant: TenantRow, user_id: str, action_code: str, idempotency_key: str
) -> None:
    """Refuse (409) a challenge a client starts under the key of an action a backend tracked."""
    action = await queries.get_action(session, tenant.id, user_id, action_code, idempotency_key)
    if action is not None:
        _refuse_backend_action(action)


def _refuse_backend_action(action: Action) -> None:
    if action.origin != CLIENT_ORIGIN:
        raise Conflict(
            f"The idempotency key {action.idempotency_key!r} belongs to an action your backend "
            f"tracked for {action.action_code!r}; answer it with that action's token."
        )


async def _record_verified_action(
    session: AsyncSession,
    tenant: TenantRow,
    user_id: str,
    action_code: str,
    idempotency_key: str | None,
    *,
    method: VerificationMethod,
    authenticator_id: str,
    device_id: str | None,
) -> Action:
    """An action that starts verified (a usernameless sign-in, or one under an action code a
    client chose), unless the tenant's rule for its code blocks it. No backend tracked it, so
    it is the client's (`origin`): track refuses its key rather than inherit its outcome.
    When a track took the key meanwhile, that action is returned instead."""
    now = utcnow()
    outcome = ActionState(tenants.default_outcome(tenant, action_code).value)
    state = outcome if outcome in BLOCKING_STATES else ActionState.CHALLENGE_SUCCEEDED
    key = idempotency_key or str(uuid.uuid4())
    values = {
        "id": str(uuid.uuid4()),
        "tenant_id": tenant.id,
        "user_id": user_id,
        "action_code": action_code,
        "idempotency_key": key,
        "state": state.value,
        "state_updated_at": now,
        "created_at": now,
        "updated_at": now,
        "verification_method": method.value,
        "verified_by_authenticator_id": authenticator_id,
        "device_id": device_id,
        "origin": CLIENT_ORIGIN,
    }
    action = await queries.insert_action(session, values)
    if action is None:
        action = await queries.get_action(session, tenant.id, user_id, action_code, key)
        assert action is not None
    return action
