"""Actions: track, read, change state, validate. The state machine lives here, once."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from passgate.server.services import redirects, tenants, tokens, users
from passgate.server.services.delivery import addresses
from passgate.server.services.enums import ActionState, VerificationMethod
from passgate.server.services.errors import (
    UNAUTHORIZED_SECRET_KEY,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthorized,
)
from passgate.server.store import actions as action_store
from passgate.server.store import users as user_store
from passgate.server.store.actions import ActionRow

__all__ = ["ActionRow", "TrackRequest", "Tracked", "Validation"]
from passgate.server.store.db import POSTGRESQL, Db
from passgate.server.store.tables import utcnow
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
class TrackRequest:
    """What a backend's track names besides the user and action code (all optional)."""

    idempotency_key: str | None = None
    redirect_url: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    device_id: str | None = None
    scope: str | None = None
    email: str | None = None
    phone_number: str | None = None
    username: str | None = None
    custom: dict[str, Any] | None = None
    locale: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Tracked:
    action: ActionRow
    token: str
    enrollment: users.Enrollment
    # The tenant as this request decided with, and whether the action is new (so it has no
    # push challenge yet): what the route's push start (services/push/challenges.py) needs.
    tenant: TenantRow
    new_action: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Validation:
    is_valid: bool
    action: ActionRow | None
    error: str | None = None


async def track(
    db: Db,
    key: tenants.SecretKey,
    user_id: str,
    action_code: str,
    request: TrackRequest,
) -> Tracked:
    """Record an action and decide its starting state from the tenant's rules.

    With an `idempotencyKey` already used for this user and action, the existing action is
    returned unchanged (with a fresh token), so a retried request never creates a second one.
    A key that a client's action holds (one a passkey sign-in recorded without a backend's
    token, `origin="client"`) is refused with 409: track never inherits an outcome it did not
    ask for, so a client cannot pre-approve an action its backend will track later.
    Starting a push challenge for it is the caller's next step (services/push/challenges.py
    `start_on_track`, with what this returns).
    A `redirectUrl` must be on one of the tenant's origins (the hosted page sends the user
    there with a token), else nothing is recorded and `InvalidRequest` names it.

    Two statements: the user's upsert (which checks the secret key and returns the tenant's
    version and the user's enrolled methods) and the action's insert; one on PostgreSQL (both
    in one), and one on SQLite for a user this process has tracked before when the request
    changes nothing about the user (`_track_known_user`)."""
    request = checked_contact(request)
    tenant = key.tenant or await tenants.authenticate_hash(db, key.key_hash)
    if request.redirect_url is not None:
        redirects.check_redirect_url(tenant.origins, request.redirect_url)
    tracked_user: user_store.TrackedUser | action_store.TrackedAction
    if db.dialect == POSTGRESQL:
        tracked_user, action, inserted = await _track_in_one(
            db, key, tenant, user_id, action_code, request
        )
    elif known := await _track_known_user(db, key, tenant, user_id, action_code, request):
        tracked_user, action, inserted = known, known.action, True
    else:
        found = await user_store.track_user(
            db,
            tenant.id,
            user_id,
            key_hash=key.key_hash,
            email=request.email,
            phone_number=request.phone_number,
            username=request.username,
            now=utcnow(),
        )
        if found is None:
            raise Unauthorized(UNAUTHORIZED_SECRET_KEY)
        tracked_user = found
        if tracked_user.tenant_version != tenant.updated_at:
            tenant = await _reread(db, tenant, request)
        action, inserted = await _insert_action(db, tenant, user_id, action_code, request)
    if tracked_user.tenant_version != tenant.updated_at:
        # Changed since this process last read it (rare): read it again, and start the
        # action in the state the tenant's rules say now.
        tenant = await _reread(db, tenant, request)
        outcome = tenants.default_outcome(tenant, action_code).value
        if inserted and action.state != outcome:
            changed = await action_store.set_state(
                db,
                tenant.id,
                user_id,
                action_code,
                action.idempotency_key,
                state=outcome,
                now=utcnow(),
            )
            assert changed is not None
            action = changed
    if action.origin == CLIENT_ORIGIN:
        raise Conflict(
            f"The idempotency key {action.idempotency_key!r} belongs to an action a client "
            f"recorded for {action_code!r} without your token; track with another key."
        )
    _remember_user(tenant.id, user_id)
    token = action_token(tenant, action, tracked_user.username)
    enrolled = tracked_user.enrolled_methods
    return Tracked(
        action=action,
        token=token,
        enrollment=users.Enrollment(
            enrolled_methods=enrolled, allowed_methods=users.allowed_methods(tenant)
        ),
        tenant=tenant,
        new_action=inserted,
    )


def checked_contact(request: TrackRequest) -> TrackRequest:
    """The request with its email and phone number as they are stored: normalised when valid
    (an address's domain lower-cased, a number in E.164), else as given
    (`addresses.tidy_attribute`; a code is only ever sent to a valid one)."""
    if request.email is None and request.phone_number is None:
        return request
    return replace(
        request,
        email=(
            None if request.email is None else addresses.tidy_attribute(request.email, phone=False)
        ),
        phone_number=(
            None
            if request.phone_number is None
            else addresses.tidy_attribute(request.phone_number, phone=True)
        ),
    )


# Users this process has tracked (or seen tracked), a hint and no more: for one of them
# track tries the action's insert alone (`action_store.track_for_user`, which checks the
# secret key and that the user is still there in the same statement) before the user's
# upsert. Bounded; the oldest are forgotten first.
_KNOWN_USERS: OrderedDict[tuple[str, str], None] = OrderedDict()
KNOWN_USERS_MAX = 10_000


def _remember_user(tenant_id: str, user_id: str) -> None:
    _KNOWN_USERS[(tenant_id, user_id)] = None
    _KNOWN_USERS.move_to_end((tenant_id, user_id))
    while len(_KNOWN_USERS) > KNOWN_USERS_MAX:
        _KNOWN_USERS.popitem(last=False)


async def _track_known_user(
    db: Db,
    key: tenants.SecretKey,
    tenant: TenantRow,
    user_id: str,
    action_code: str,
    request: TrackRequest,
) -> action_store.TrackedAction | None:
    """SQLite, where the user's upsert and the action's insert cannot share a statement
    (no writes in a WITH): a track that changes nothing about a user this process has seen
    is one statement, the action's insert. The upsert would have written nothing (its
    attributes are all absent), so skipping it changes nothing. None (nothing written) when
    the user is new to this process, the request sets user attributes, or the statement
    inserted nothing (a wrong key, a deleted user, a retried idempotency key): the caller
    then takes the upsert's way, which tells these apart."""
    if (tenant.id, user_id) not in _KNOWN_USERS or any(
        value is not None for value in (request.email, request.phone_number, request.username)
    ):
        return None
    values = _action_values(tenant, user_id, action_code, request)
    return await action_store.track_for_user(db, values, key_hash=key.key_hash, now=utcnow())


async def _reread(db: Db, tenant: TenantRow, request: TrackRequest) -> TenantRow:
    tenant = await tenants.get_tenant(db, tenant.id)
    if request.redirect_url is not None:
        redirects.check_redirect_url(tenant.origins, request.redirect_url)
    return tenant


async def _track_in_one(
    db: Db,
    key: tenants.SecretKey,
    tenant: TenantRow,
    user_id: str,
    action_code: str,
    request: TrackRequest,
) -> tuple[user_store.TrackedUser, ActionRow, bool]:
    """PostgreSQL: the user's upsert and the action's insert in one statement."""
    values = _action_values(tenant, user_id, action_code, request)
    found = await user_store.track_user_and_action(
        db,
        tenant.id,
        user_id,
        key_hash=key.key_hash,
        email=request.email,
        phone_number=request.phone_number,
        username=request.username,
        now=utcnow(),
        action=values,
    )
    if found is None:
        raise Unauthorized(UNAUTHORIZED_SECRET_KEY)
    if found.action is not None:
        return found.tracked, ActionRow.of(found.action), True
    # The key is taken (a retry, or a concurrent track that won): that action stands.
    action = await action_store.get_action(
        db, tenant.id, user_id, action_code, values["idempotency_key"]
    )
    assert action is not None
    return found.tracked, action, False


def action_token(tenant: TenantRow, action: ActionRow, username: str | None) -> str:
    """The token for an action: the Client API's Bearer token and what `/validate` redeems."""
    return tokens.issue_token(
        tenant,
        user_id=action.user_id,
        action_code=action.action_code,
        idempotency_key=action.idempotency_key,
        username=username,
        scope=action.scope,
    )


async def _insert_action(
    db: Db,
    tenant: TenantRow,
    user_id: str,
    action_code: str,
    request: TrackRequest,
) -> tuple[ActionRow, bool]:
    """The action (and whether this call inserted it)."""
    values = _action_values(tenant, user_id, action_code, request)
    action = await action_store.insert_action(db, values)
    if action is not None:
        return action, True
    # The key is taken (a retry, or a concurrent track that won): that action stands.
    action = await action_store.get_action(
        db, tenant.id, user_id, action_code, values["idempotency_key"]
    )
    assert action is not None
    return action, False


def _action_values(
    tenant: TenantRow, user_id: str, action_code: str, request: TrackRequest
) -> dict[str, Any]:
    return {
        "tenant_id": tenant.id,
        "user_id": user_id,
        "action_code": action_code,
        "idempotency_key": request.idempotency_key or str(uuid.uuid4()),
        "state": tenants.default_outcome(tenant, action_code).value,
        "ip_address": request.ip_address,
        "user_agent": request.user_agent,
        "device_id": request.device_id,
        "custom": request.custom,
        "scope": request.scope,
        "redirect_url": request.redirect_url,
        "locale": request.locale,
        "origin": "server",
    }


async def get_action(
    db: Db,
    tenant: TenantRow,
    user_id: str,
    action_code: str,
    idempotency_key: str,
) -> ActionRow:
    action = await action_store.get_action(db, tenant.id, user_id, action_code, idempotency_key)
    if action is None:
        raise NotFound(
            f"no action {action_code!r} with idempotency key {idempotency_key!r} "
            f"for user {user_id!r}"
        )
    return action


async def token_action(db: Db, tenant: TenantRow, claims: tokens.TokenClaims) -> ActionRow:
    """The action a client token is bound to: 400 for a token bound to none, 404 when the
    action is gone (a code or link is only ever sent for, and settles, a tracked action)."""
    if not claims.action_code or not claims.idempotency_key:
        raise InvalidRequest("The token is not bound to an action.")
    action = await action_store.get_action(
        db, tenant.id, claims.user_id, claims.action_code, claims.idempotency_key
    )
    if action is None:
        raise NotFound("The token's action no longer exists.")
    return action


async def set_state(
    db: Db,
    tenant: TenantRow,
    user_id: str,
    action_code: str,
    idempotency_key: str,
    state: ActionState,
) -> ActionRow:
    """The backend's override of an action's state (for example after a manual review)."""
    action = await action_store.set_state(
        db,
        tenant.id,
        user_id,
        action_code,
        idempotency_key,
        state=state.value,
        now=utcnow(),
    )
    if action is None:
        raise NotFound(
            f"no action {action_code!r} with idempotency key {idempotency_key!r} "
            f"for user {user_id!r}"
        )
    return action


async def query_actions(
    db: Db,
    tenant: TenantRow,
    user_id: str,
    *,
    from_date: datetime | None = None,
    action_codes: Sequence[str] = (),
    state: ActionState | None = None,
    limit: int = 100,
) -> list[ActionRow]:
    return await action_store.find_actions(
        db,
        tenant.id,
        user_id,
        from_date=from_date,
        action_codes=action_codes,
        state=state.value if state else None,
        limit=limit,
    )


async def validate(
    db: Db,
    key: tenants.SecretKey,
    token: str,
    *,
    user_id: str | None = None,
    action_code: str | None = None,
) -> Validation:
    """Redeem a token: valid only for a succeeded (or allowed) action, and only once.

    A token that is forged, tampered with, expired or another tenant's raises; a genuine
    token whose action is not (or no longer) redeemable returns `is_valid=False` and why.
    One statement when it is redeemed: the conditional UPDATE, which also checks the secret
    key; the other answers read the action (and check the key) once more to say why."""
    tenant = key.tenant or await tenants.authenticate_hash(db, key.key_hash)
    try:
        claims = tokens.decode_token(tenant, token)
    except tokens.UnknownSigningKey:
        if key.tenant is None:
            raise
        # Perhaps signed with a key newer than this process's copy of the tenant (a signing
        # key rotation elsewhere): read the tenant again and check once more.
        tenant = await tenants.authenticate_hash(db, key.key_hash)
        claims = tokens.decode_token(tenant, token)
    if not claims.action_code or not claims.idempotency_key:
        await tenants.authenticate_hash(db, key.key_hash)
        return Validation(is_valid=False, action=None, error="The token is not bound to an action.")
    where = (tenant.id, claims.user_id, claims.action_code, claims.idempotency_key)
    if (user_id is None or user_id == claims.user_id) and (
        action_code is None or action_code == claims.action_code
    ):
        redeemed = await action_store.redeem_action(
            db,
            *where,
            states=[state.value for state in VALID_STATES],
            key_hash=key.key_hash,
            now=utcnow(),
        )
        if redeemed is not None:
            return Validation(is_valid=True, action=redeemed)
    # Not redeemed: is the key still good? Then read the action once more to say why.
    await tenants.authenticate_hash(db, key.key_hash)
    action = await action_store.get_action(db, *where)
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
    db: Db,
    action_id: str,
    *,
    succeeded: bool,
    method: VerificationMethod,
    authenticator_id: str,
) -> bool:
    """Record a challenge's result on an action. Only an action waiting for a challenge
    (CHALLENGE_REQUIRED) takes one, once, atomically; any other state was set by the tenant's
    rules, the backend or an earlier challenge, and stands. True when this call settled it."""
    outcome = ActionState.CHALLENGE_SUCCEEDED if succeeded else ActionState.CHALLENGE_FAILED
    return await action_store.settle_action(
        db,
        action_id,
        state=outcome.value,
        from_state=ActionState.CHALLENGE_REQUIRED.value,
        verification_method=method.value,
        authenticator_id=authenticator_id,
        now=utcnow(),
    )


async def complete_challenge(
    db: Db,
    tenant: TenantRow,
    *,
    user_id: str,
    action_code: str,
    idempotency_key: str | None,
    method: VerificationMethod,
    authenticator_id: str,
    device_id: str | None = None,
    client_made: bool = False,
    along: action_store.AlongWith | None = None,
) -> tuple[ActionRow, str]:
    """A challenge for this action succeeded: settle it (see `settle`) and return it with a
    token `/validate` accepts. Without an idempotency key (a sign-in that started with no
    tracked action) the action is recorded now, already succeeded, unless the tenant's rule
    for it blocks. An action already decided otherwise is refused.

    `client_made`: the challenge was started with nothing but the tenant id (no token of the
    backend's). Such a challenge never settles an action a backend tracked, even under that
    action's key: only the action's own token may answer it (409, nothing settled)."""
    if idempotency_key:
        # Usually one statement: settle the waiting action and read its user's username.
        settled = await action_store.settle_by_key(
            db,
            tenant.id,
            user_id,
            action_code,
            idempotency_key,
            state=ActionState.CHALLENGE_SUCCEEDED.value,
            from_state=ActionState.CHALLENGE_REQUIRED.value,
            client_origin=CLIENT_ORIGIN if client_made else None,
            verification_method=method.value,
            authenticator_id=authenticator_id,
            now=utcnow(),
            along=along,
        )
        along = None
        if settled is None:
            settled = await action_store.get_action_and_username(
                db, tenant.id, user_id, action_code, idempotency_key
            )
            if settled is not None and client_made:
                _refuse_backend_action(settled[0])
        if settled is not None:
            action, username = settled
            if action.state not in VALID_STATES:
                raise Forbidden(f"The action is {action.state}; a challenge cannot change that.")
            return action, action_token(tenant, action, username)
    action, username = await _record_verified_action(
        db,
        tenant,
        user_id,
        action_code,
        idempotency_key,
        method=method,
        authenticator_id=authenticator_id,
        device_id=device_id,
        along=along,
    )
    if action.state == ActionState.CHALLENGE_REQUIRED and await settle(
        db, action.id, succeeded=True, method=method, authenticator_id=authenticator_id
    ):
        # A track took the key meanwhile: its action is the one this challenge answers.
        action = replace(
            action,
            state=ActionState.CHALLENGE_SUCCEEDED.value,
            verification_method=method.value,
            verified_by_authenticator_id=authenticator_id,
        )
    if action.state not in VALID_STATES:
        raise Forbidden(f"The action is {action.state}; a challenge cannot change that.")
    return action, action_token(tenant, action, username)


async def refuse_backend_key(
    db: Db,
    tenant: TenantRow,
    user_id: str,
    action_code: str,
    idempotency_key: str,
) -> None:
    """Refuse (409) a challenge a client starts under the key of an action a backend tracked."""
    action = await action_store.get_action(db, tenant.id, user_id, action_code, idempotency_key)
    if action is not None:
        _refuse_backend_action(action)


def _refuse_backend_action(action: ActionRow) -> None:
    if action.origin != CLIENT_ORIGIN:
        raise Conflict(
            f"The idempotency key {action.idempotency_key!r} belongs to an action your backend "
            f"tracked for {action.action_code!r}; answer it with that action's token."
        )


async def _record_verified_action(
    db: Db,
    tenant: TenantRow,
    user_id: str,
    action_code: str,
    idempotency_key: str | None,
    *,
    method: VerificationMethod,
    authenticator_id: str,
    device_id: str | None,
    along: action_store.AlongWith | None = None,
) -> tuple[ActionRow, str | None]:
    """An action that starts verified (a usernameless sign-in, or one under an action code a
    client chose), unless the tenant's rule for its code blocks it. No backend tracked it, so
    it is the client's (`origin`): track refuses its key rather than inherit its outcome.
    When a track took the key meanwhile, that action is returned instead. With it, its
    user's username (for the token), from the same statement."""
    outcome = ActionState(tenants.default_outcome(tenant, action_code).value)
    state = outcome if outcome in BLOCKING_STATES else ActionState.CHALLENGE_SUCCEEDED
    key = idempotency_key or str(uuid.uuid4())
    values = {
        "tenant_id": tenant.id,
        "user_id": user_id,
        "action_code": action_code,
        "idempotency_key": key,
        "state": state.value,
        "verification_method": method.value,
        "verified_by_authenticator_id": authenticator_id,
        "device_id": device_id,
        "origin": CLIENT_ORIGIN,
    }
    recorded = await action_store.insert_action_with_username(db, values, along=along)
    if recorded is None:
        recorded = await action_store.get_action_and_username(
            db, tenant.id, user_id, action_code, key
        )
        assert recorded is not None
    return recorded
