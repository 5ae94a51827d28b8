"""Who may add an authenticator to a user: one rule, for every method (passkeys at C2/C3 and
their /web twins, push devices at P2, and any method added later), docs/wire.md#scopes.

- A user with no authenticator may enrol with any valid token of theirs.
- A user who has one gets another only with a token whose scope has `add:authenticators`, or
  with the token of an action that a challenge verified (CHALLENGE_SUCCEEDED with a
  verification method: a rule's ALLOW or a backend's PATCH verified nothing) within the
  tenant's enrolment window and that `/validate` has not redeemed yet, by a method that gives
  that leave: a strong one (passkey, security key, push) or one of the tenant's recovery
  methods (services/recovery.py; an email code by default). "Enrolled" counts verified
  authenticators only: an email, phone or TOTP whose first code never verified is none.
- An authenticator added on the strength of a recovery method is recorded as a recovery
  (`recovery.record_used`: the audit event and the user's notices by email).
- Either way a token's action adds one authenticator: `use_up` marks it with one conditional
  UPDATE as the authenticator goes in, so the same token (or another token of the same
  action) cannot add a second.

Methods call `check` before they do any work (to refuse early) and again, with `use_up`,
in the request that adds the authenticator; passkeys do the second `check`, `use_up` and
the action's settlement in one conditional UPDATE (`add_and_settle`), whose WHERE is this
rule. Every refusal is 403 `forbidden`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from passgate.server.services import actions, recovery, tenants
from passgate.server.services.delivery import Messenger
from passgate.server.services.enums import ActionState, VerificationMethod
from passgate.server.services.errors import Forbidden, InvalidRequest
from passgate.server.services.tokens import TokenClaims
from passgate.server.store import actions as action_store
from passgate.server.store.actions import ActionRow
from passgate.server.store.db import Db
from passgate.server.store.tables import utcnow
from passgate.server.store.tenants import TenantRow

ADD_SCOPE = "add:authenticators"
# Tenant setting (`tenants.settings`): how long after a challenge verified an action its
# token may add an authenticator without the scope. 0 turns that way off.
WINDOW_SETTING = "enrolmentWindowMinutes"
DEFAULT_WINDOW_MINUTES = 5
MAX_WINDOW_MINUTES = 60


class EnrolmentRefused(Forbidden):
    """The token may not add an authenticator for its user (now, or any more)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Grant:
    """A token's leave to add one authenticator: `use_up` spends it."""

    tenant: TenantRow
    action: ActionRow
    # True when the leave comes from a recent verification, which /validate ends.
    needs_unredeemed: bool

    @property
    def recovery(self) -> bool:
        """Whether the leave comes from a recovery method's verification (not a strong one)."""
        return self.needs_unredeemed and recovery.is_recovery(self.action.verification_method)


def window(tenant: TenantRow) -> timedelta:
    minutes = tenant.settings.get(WINDOW_SETTING, DEFAULT_WINDOW_MINUTES)
    return timedelta(minutes=minutes if isinstance(minutes, int) else DEFAULT_WINDOW_MINUTES)


async def set_window(db: Db, tenant_id: str, minutes: int) -> None:
    """Change a tenant's enrolment window (0 to MAX_WINDOW_MINUTES minutes)."""
    if isinstance(minutes, bool) or not 0 <= minutes <= MAX_WINDOW_MINUTES:
        raise InvalidRequest(
            f"the enrolment window must be 0-{MAX_WINDOW_MINUTES} minutes, not {minutes!r}"
        )
    tenant = await tenants.get_tenant(db, tenant_id)
    await tenants.save_settings(db, tenant_id, {**tenant.settings, WINDOW_SETTING: minutes})


async def check(db: Db, tenant: TenantRow, claims: TokenClaims) -> Grant:
    """The token's leave to add an authenticator for its user now, or `EnrolmentRefused`
    (one statement reads the action and whether its user has an authenticator)."""
    found = None
    if claims.action_code and claims.idempotency_key:
        found = await action_store.get_action_and_enrolled(
            db, tenant.id, claims.user_id, claims.action_code, claims.idempotency_key
        )
    return decide(tenant, claims, found)


def decide(tenant: TenantRow, claims: TokenClaims, found: tuple[ActionRow, bool] | None) -> Grant:
    """`check` for a caller that has read the token's action and whether its user has an
    authenticator (None: no such action) in a statement of its own."""
    if found is None:
        raise _gone()
    action, enrolled = found
    if action.authenticator_added_at is not None:
        raise _used_up()
    grant = leave(tenant, claims, action, enrolled=enrolled)
    if grant is None:
        minutes = int(window(tenant).total_seconds() // 60)
        raise EnrolmentRefused(
            f"The user already has an authenticator: adding another needs a token tracked "
            f"with scope {ADD_SCOPE!r}, or the token of an action a challenge verified in the "
            f"last {minutes} minutes by a strong method or one of the tenant's recovery "
            f"methods, and not yet validated."
        )
    return grant


async def add_and_settle(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims,
    *,
    method: VerificationMethod,
    authenticator_id: str,
    messenger: Messenger | None = None,
) -> tuple[ActionRow, str]:
    """The rule, its `use_up` and the action's settlement (`actions.complete_challenge` for
    an action a backend tracked) in one conditional UPDATE, run before the authenticator
    `authenticator_id` goes in: the action, settled if it waited for a challenge, and its
    token. Every refusal is `EnrolmentRefused` (or the action's own `Forbidden` when a
    challenge cannot change its state): nothing is written, and a second read says why.
    A leave from a recovery method is recorded (`recovery.record_used`); `messenger` sends
    its notices at once (without it they leave with the outbox's next poll)."""
    if not claims.action_code or not claims.idempotency_key:
        raise _gone()
    now = utcnow()
    scoped = ADD_SCOPE in claims.scope.split()
    done = await action_store.add_authenticator_and_settle(
        db,
        tenant.id,
        claims.user_id,
        claims.action_code,
        claims.idempotency_key,
        scoped=scoped,
        since=now - window(tenant),
        verified_state=ActionState.CHALLENGE_SUCCEEDED.value,
        leave_methods=sorted(recovery.leave_methods(tenant)),
        states=[ActionState.CHALLENGE_REQUIRED.value, *(s.value for s in actions.VALID_STATES)],
        from_state=ActionState.CHALLENGE_REQUIRED.value,
        state=ActionState.CHALLENGE_SUCCEEDED.value,
        verification_method=method.value,
        authenticator_id=authenticator_id,
        now=now,
    )
    if done is None:
        # Refused: say why (the rule's own words, else the action's state, else used up).
        await check(db, tenant, claims)
        action = await action_store.get_action(
            db, tenant.id, claims.user_id, claims.action_code, claims.idempotency_key
        )
        if action is not None and action.state not in (
            ActionState.CHALLENGE_REQUIRED,
            *actions.VALID_STATES,
        ):
            raise Forbidden(f"The action is {action.state}; a challenge cannot change that.")
        raise _used_up()
    action, username, had_authenticator = done
    # The leave was an earlier verification's when neither the scope nor a first enrolment
    # gave it and this request did not settle the action itself.
    settled_now = action.verified_by_authenticator_id == authenticator_id
    if (
        not scoped
        and had_authenticator
        and not settled_now
        and recovery.is_recovery(action.verification_method)
    ):
        await recovery.record_used(
            db,
            tenant,
            action,
            authenticator_id=authenticator_id,
            added_method=method,
            messenger=messenger,
        )
    return action, actions.action_token(tenant, action, username)


def _gone() -> EnrolmentRefused:
    return EnrolmentRefused(
        "The token's action no longer exists: track a new one to add an authenticator."
    )


def leave(
    tenant: TenantRow, claims: TokenClaims, action: ActionRow, *, enrolled: bool
) -> Grant | None:
    """The rule itself, for callers that have read the token's action and whether its user
    has an authenticator (the hosted page decides with it whether to offer enrolment)."""
    if action.authenticator_added_at is not None:
        return None
    if ADD_SCOPE in claims.scope.split() or not enrolled:
        return Grant(tenant=tenant, action=action, needs_unredeemed=False)
    if _freshly_verified(action, window(tenant), recovery.leave_methods(tenant)):
        return Grant(tenant=tenant, action=action, needs_unredeemed=True)
    return None


async def use_up(
    db: Db,
    grant: Grant,
    *,
    method: VerificationMethod | None = None,
    authenticator_id: str | None = None,
    messenger: Messenger | None = None,
) -> None:
    """Spend the grant as its authenticator (`authenticator_id`, of `method`: both named in
    the record of a recovery) is added: exactly one caller wins, atomically; the others (the
    same token racing, or /validate first for a verification's leave) are refused and their
    request rolls back. A grant from a recovery method is recorded, as in `add_and_settle`."""
    if not await action_store.mark_authenticator_added(
        db, grant.action.id, utcnow(), unredeemed=grant.needs_unredeemed
    ):
        raise _used_up()
    if grant.recovery:
        await recovery.record_used(
            db,
            grant.tenant,
            grant.action,
            authenticator_id=authenticator_id,
            added_method=method,
            messenger=messenger,
        )


def _freshly_verified(action: ActionRow, span: timedelta, methods: frozenset[str]) -> bool:
    return (
        action.state == ActionState.CHALLENGE_SUCCEEDED
        and action.verification_method in methods
        and action.validated_at is None
        and action.state_updated_at > utcnow() - span
    )


def _used_up() -> EnrolmentRefused:
    return EnrolmentRefused(
        "This token has already added an authenticator (or its action was validated): track "
        "a new action to add another."
    )
