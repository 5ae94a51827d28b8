"""Account recovery: which methods may recover an account, and what happens when one does
(docs/recovery.md).

A user who lost every device proves who they are with a weaker method (an email code by
default) and, with the token that verification answers, adds a new authenticator. The one
enrolment rule (services/enrolment.py) decides whether a fresh verification gives that leave:
a strong method always does, a fallback method only when it is one of the tenant's recovery
methods (`recoveryMethods` in the tenant's settings, `["EMAIL_OTP"]` when unset).

When an authenticator is added on the strength of a recovery method, `record_used` writes the
audit event `user.recovery.used` beside the authenticator's own event, and tells the user by
email (the `recovery_used` and `authenticator_added` notices), so a recovery by someone else
does not go unnoticed. Notices are best effort: a tenant without SMTP sends none.

Removing the lost devices is an ordinary authenticator removal: the Server API's DELETE, or the
user with a token tracked with scope `remove:authenticators` (`remove_authenticator`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import structlog

from passgate.server.services import audit, tenants
from passgate.server.services.delivery import Messenger
from passgate.server.services.enums import ActionState, VerificationMethod
from passgate.server.services.errors import Forbidden, InvalidRequest, NotFound
from passgate.server.services.tokens import TokenClaims
from passgate.server.store import actions as action_store
from passgate.server.store import authenticators as authenticator_store
from passgate.server.store import users as user_store
from passgate.server.store.actions import ActionRow
from passgate.server.store.db import Db
from passgate.server.store.tenants import TenantRow

log = structlog.get_logger("passgate.recovery")

# Tenant setting (`tenants.settings`): the methods whose fresh verification lets an enrolled
# user add an authenticator, besides the strong ones.
SETTING = "recoveryMethods"
DEFAULT = (VerificationMethod.EMAIL_OTP,)
# A verification by one of these always counts: they prove possession of a device the user
# enrolled with a credential ceremony.
STRONG = frozenset(
    {VerificationMethod.PASSKEY, VerificationMethod.SECURITY_KEY, VerificationMethod.PUSH}
)
# The methods a tenant may name: the fallback methods Passgate verifies itself.
ELIGIBLE = (
    VerificationMethod.EMAIL_OTP,
    VerificationMethod.EMAIL_MAGIC_LINK,
    VerificationMethod.SMS,
    VerificationMethod.WHATSAPP,
    VerificationMethod.AUTHENTICATOR_APP,
    VerificationMethod.RECOVERY_CODE,
)
_ELIGIBLE_NAMES = frozenset(method.value for method in ELIGIBLE)
_ELIGIBLE_ORDER = ", ".join(method.value for method in ELIGIBLE)
_STRONG_NAMES = frozenset(method.value for method in STRONG)
# The states of a token's action in which its `remove:authenticators` scope may be used.
REMOVING_STATES = frozenset(
    {ActionState.ALLOW, ActionState.CHALLENGE_SUCCEEDED, ActionState.REVIEW_SUCCEEDED}
)
USED = "user.recovery.used"
REMOVE_SCOPE = "remove:authenticators"
CHANGED = "tenant.recovery_methods.changed"
_EMAIL_METHODS = (VerificationMethod.EMAIL_OTP.value, VerificationMethod.EMAIL_MAGIC_LINK.value)


def methods(tenant: TenantRow) -> tuple[VerificationMethod, ...]:
    """The tenant's recovery methods (a stored name Passgate no longer knows is skipped)."""
    stored = tenant.settings.get(SETTING)
    if not isinstance(stored, list):
        return DEFAULT
    return tuple(VerificationMethod(name) for name in stored if name in _ELIGIBLE_NAMES)


def leave_methods(tenant: TenantRow) -> frozenset[str]:
    """The verification methods whose fresh verification lets a token add an authenticator."""
    return _STRONG_NAMES | {method.value for method in methods(tenant)}


def is_recovery(method: str | None) -> bool:
    """Whether a verification by `method` that gave leave was a recovery (not a strong one)."""
    return method is not None and method not in _STRONG_NAMES


def parse(names: Iterable[str]) -> tuple[VerificationMethod, ...]:
    """Recovery method names, checked, without repeats, in the order given."""
    chosen: list[VerificationMethod] = []
    for name in names:
        cleaned = name.strip().upper()
        if cleaned in _STRONG_NAMES:
            raise InvalidRequest(
                f"{cleaned} always lets a user add an authenticator: list only the fallback "
                f"methods that may recover an account ({_ELIGIBLE_ORDER})"
            )
        if cleaned not in _ELIGIBLE_NAMES:
            raise InvalidRequest(
                f"{name!r} is not a recovery method: choose from {_ELIGIBLE_ORDER}"
            )
        method = VerificationMethod(cleaned)
        if method not in chosen:
            chosen.append(method)
    return tuple(chosen)


async def set_methods(
    db: Db, actor: audit.Actor, tenant_id: str, names: Sequence[str]
) -> tuple[VerificationMethod, ...]:
    """Set the tenant's recovery methods (none: only a strong method or the scope adds an
    authenticator to an enrolled user), recorded in the audit log when they change."""
    chosen = parse(names)
    tenant = await tenants.get_tenant(db, tenant_id)
    before = [method.value for method in methods(tenant)]
    after = [method.value for method in chosen]
    await tenants.save_settings(db, tenant_id, {**tenant.settings, SETTING: after})
    if before != after:
        await audit.record(
            db,
            actor,
            CHANGED,
            target_type="tenant",
            target_id=tenant_id,
            tenant_id=tenant_id,
            details={SETTING: {"from": before, "to": after}},
        )
    return chosen


async def record_used(
    db: Db,
    tenant: TenantRow,
    action: ActionRow,
    *,
    authenticator_id: str | None,
    added_method: VerificationMethod | None,
    messenger: Messenger | None = None,
) -> None:
    """An authenticator (`authenticator_id`, of `added_method`) was added on the strength of
    the recovery method that verified `action`: the audit event, and the user's notices."""
    recovered_with = action.verification_method
    await audit.record(
        db,
        audit.user_actor(action.user_id),
        USED,
        target_type="user",
        target_id=action.user_id,
        tenant_id=tenant.id,
        details={
            "verificationMethod": recovered_with,
            "actionCode": action.action_code,
            "idempotencyKey": action.idempotency_key,
            "authenticatorId": authenticator_id,
            "addedVerificationMethod": added_method.value if added_method else None,
        },
    )
    email = await notice_address(db, tenant.id, action.user_id)
    if email is None:
        return
    try:
        await _send_notices(db, tenant, action, email, authenticator_id, added_method, messenger)
    except InvalidRequest as exc:  # e.g. an address the app gave that is not one
        log.warning("recovery notice not sent", reason=exc.description, user_id=action.user_id)


async def _send_notices(
    db: Db,
    tenant: TenantRow,
    action: ActionRow,
    email: str,
    authenticator_id: str | None,
    added_method: VerificationMethod | None,
    messenger: Messenger | None,
) -> None:
    recovered_with = action.verification_method
    # Without the app's messenger the notices leave at the outbox's next poll.
    sender = messenger or Messenger()
    when = action.state_updated_at.isoformat()
    common = {"time": when, "ip": action.ip_address or "", "userId": action.user_id}
    user = await user_store.get_user(db, tenant.id, action.user_id)
    locale = action.locale or (user.locale if user else None)
    await sender.send_notice(
        db,
        tenant,
        email=email,
        notice="recovery_used",
        details={**common, "method": recovered_with or ""},
        locale=locale,
    )
    await sender.send_notice(
        db,
        tenant,
        email=email,
        notice="authenticator_added",
        details={
            **common,
            "method": added_method.value if added_method else "",
            "authenticatorId": authenticator_id or "",
        },
        locale=locale,
    )


async def notice_address(db: Db, tenant_id: str, user_id: str) -> str | None:
    """Where a user's notices go: their verified email authenticator's address, else the
    email their app gave Passgate, else nowhere."""
    for authenticator in await authenticator_store.find_authenticators(db, tenant_id, user_id):
        if (
            authenticator.verification_method in _EMAIL_METHODS
            and authenticator.verified_at is not None
            and authenticator.email
        ):
            return authenticator.email
    user = await user_store.get_user(db, tenant_id, user_id)
    return user.email if user and user.email else None


def check_remove_scope(claims: TokenClaims) -> None:
    """A user removes their own authenticators only with a token their backend tracked with
    scope `remove:authenticators`."""
    if REMOVE_SCOPE not in claims.scope.split():
        raise Forbidden(
            f"Removing an authenticator needs a token tracked with scope {REMOVE_SCOPE!r}."
        )


async def remove_authenticator(
    db: Db, tenant: TenantRow, claims: TokenClaims, authenticator_id: str
) -> str:
    """Remove one of the token's user's authenticators (recorded as the user's change): its
    verification method. `Forbidden` without the scope or while the token's action still
    waits for its challenge (the user confirms first; the backend's ALLOW needs nothing),
    `NotFound` for another's."""
    check_remove_scope(claims)
    action = None
    if claims.action_code and claims.idempotency_key:
        action = await action_store.get_action(
            db, tenant.id, claims.user_id, claims.action_code, claims.idempotency_key
        )
    if action is None:
        raise Forbidden("The token's action no longer exists: track a new one.")
    if action.state == ActionState.CHALLENGE_REQUIRED:
        raise Forbidden(
            "The token's action still needs a challenge: the user confirms it's them first, "
            "then removes with the token the challenge answered."
        )
    if action.state not in REMOVING_STATES:
        raise Forbidden(f"The token's action is {action.state}: it removes nothing.")
    listed = await authenticator_store.find_authenticators(db, tenant.id, claims.user_id)
    found = next((a for a in listed if a.id == authenticator_id), None)
    if found is None or not await authenticator_store.delete_authenticator(
        db, tenant.id, claims.user_id, authenticator_id
    ):
        raise NotFound(f"The user has no authenticator {authenticator_id!r}.")
    await audit.authenticator_changed(
        db,
        audit.user_actor(claims.user_id),
        added=False,
        tenant_id=tenant.id,
        user_id=claims.user_id,
        authenticator_id=authenticator_id,
        verification_method=found.verification_method,
    )
    return found.verification_method
