"""The hosted challenge page's rules: whose token it is, whether its action still needs a
challenge, and what the page offers (passkey sign-in, passkey enrolment, push) and why not.

The page itself only renders what `open_challenge` decides; its script then calls the Client
API with the same token, so every rule of the ceremonies (single use, expiry, origins, who may
add an authenticator) is still enforced there, once. What is decided here is what to show:

- a token that is missing, malformed, forged or signed by another tenant, and one that has
  expired, is refused (401 `invalid_token` / `expired_token`), as the Client API refuses it;
- an action that no longer exists is refused (404 `action_not_found`), one a challenge, the
  backend or `/validate` already settled is refused as used (410 `token_used`), one the
  tenant's rules block is refused (403 `action_blocked`);
- enrolment is offered when `enrolment`'s rule (the one the Client API applies) lets the
  token add an authenticator; otherwise sign-in with the user's passkeys and approval on the
  user's push devices;
- beside them, behind "Try another way" (and shown when the preferred method fails), the
  fallback methods the tenant allows and the user has enrolled and verified: email and SMS
  codes, an authenticator app, a recovery code, a security key, an email link. After one of
  the tenant's recovery methods the page offers a new passkey and, when the tenant allows
  push and Passgate has a public URL, a push device instead (docs/recovery.md);
- a token tracked with scope `remove:authenticators` also lists the user's authenticators,
  each with a button that removes it (an ALLOW action's token too, as with
  `add:authenticators`);
- passkeys are offered only when the tenant's rp id can be used on Passgate's own origin."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jwt

from passgate.server.services import (
    enrolment,
    origins,
    recovery,
    redirects,
    tenants,
    tokens,
    users,
)
from passgate.server.services.delivery.addresses import mask_email, mask_phone
from passgate.server.services.enums import ActionState, VerificationMethod
from passgate.server.services.errors import ExpiredToken, InvalidToken, PassgateError
from passgate.server.services.passkey_policy import policy as passkey_policy
from passgate.server.services.tokens import TokenClaims
from passgate.server.store import actions as action_store
from passgate.server.store import authenticators as authenticator_store
from passgate.server.store import passkeys as passkey_store
from passgate.server.store import push as push_store
from passgate.server.store import users as user_store
from passgate.server.store.actions import ActionRow
from passgate.server.store.authenticators import AuthenticatorRow
from passgate.server.store.db import Db
from passgate.server.store.push import PushChallengeRow
from passgate.server.store.tables import utcnow
from passgate.server.store.tenants import TenantRow as TenantRow
from passgate.server.store.users import UserRow

MAX_TOKEN_LENGTH = 8192
REFUSED_STATES = frozenset(
    {ActionState.BLOCK, ActionState.REVIEW_REQUIRED, ActionState.REVIEW_FAILED}
)
# Why the page offers no passkey.
NO_PUBLIC_URL, RP_ID_ELSEWHERE = "no_public_url", "rp_id_elsewhere"
# The fallback methods the page can run, in the order it offers them.
FALLBACKS = (
    VerificationMethod.EMAIL_OTP,
    VerificationMethod.SMS,
    VerificationMethod.WHATSAPP,
    VerificationMethod.AUTHENTICATOR_APP,
    VerificationMethod.SECURITY_KEY,
    VerificationMethod.EMAIL_MAGIC_LINK,
    VerificationMethod.RECOVERY_CODE,
)
# Methods that run WebAuthn on the page, so need the rp id usable here.
_WEBAUTHN = frozenset({VerificationMethod.SECURITY_KEY})


class PageUnavailable(PassgateError):
    """Why a challenge page cannot be shown; rendered as a plain message with this status.

    `tenant` is set only when the token was verifiably the tenant's (an expired token's
    signature is checked before its expiry), so the message may carry the tenant's name and
    be shown inside, and reported to, the tenant's own pages."""

    def __init__(
        self,
        description: str,
        *,
        status_code: int,
        error_code: str,
        tenant: TenantRow | None = None,
    ) -> None:
        super().__init__(description, error_code=error_code)
        self.status_code = status_code
        self.tenant = tenant


@dataclass(frozen=True, kw_only=True, slots=True)
class PushWait:
    """A push challenge already waiting for the user's device, started by track or W1."""

    challenge_id: str
    verification_code: str | None
    # Unix seconds, as W1 reports it: the page tells an expired request from a declined one.
    expires_at: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Fallback:
    """A fallback method the page offers, with where its code goes (masked) if it is sent."""

    method: str
    destination: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Removable:
    """One of the user's authenticators, listed for removal."""

    id: str
    method: str
    label: str | None
    created_at: int


@dataclass(frozen=True, kw_only=True, slots=True)
class HostedChallenge:
    """What the page for one token shows."""

    tenant: TenantRow
    action: ActionRow
    enrol: bool
    sign_in: bool
    push: bool
    # Set when passkeys cannot be used on Passgate's origin for this tenant (then neither
    # `enrol` nor `sign_in` can happen): NO_PUBLIC_URL or RP_ID_ELSEWHERE.
    passkey_unavailable: str | None
    # The user's passkeys, so the page can tell whether one was used in this browser before.
    credential_ids: tuple[str, ...]
    pending_push: PushWait | None
    # `Action.redirect_url` while it is still on one of the tenant's origins, else None.
    redirect_url: str | None
    locale: str | None
    fallbacks: tuple[Fallback, ...] = ()
    # The tenant's recovery methods: after one of them the page offers a new passkey.
    recovery_methods: tuple[str, ...] = ()
    # After a recovery, a push device too (a QR code on the push enrolment page): the tenant
    # allows PUSH and Passgate has a public URL for the link to point at.
    push_enrolment: bool = False
    # Set when the token may remove authenticators: the user's, to list.
    removable: tuple[Removable, ...] | None = None

    @property
    def web_origins(self) -> tuple[str, ...]:
        return web_origins(self.tenant)


def web_origins(tenant: TenantRow) -> tuple[str, ...]:
    """The tenant's http(s) origins: the pages that may frame the page and hear from it."""
    return origins.web_origins(tenant.origins)


async def open_challenge(
    db: Db, token: str | None, *, public_origin: str | None
) -> HostedChallenge:
    """Decide the page for `token`, or raise `PageUnavailable` saying why there is none."""
    tenant, claims = await _authenticate(db, token)
    action = await _pending_action(db, tenant, claims)
    credentials = await passkey_store.user_credentials(db, tenant.id, claims.user_id)
    enrolled = await authenticator_store.enrolled_methods(db, tenant.id, claims.user_id)
    now = utcnow()
    devices = await push_store.find_devices(db, tenant.id, claims.user_id, now)
    unavailable = _passkey_unavailable(tenant, public_origin)
    enrol = enrolment.leave(tenant, claims, action, enrolled=bool(enrolled)) is not None
    waiting = None
    if not enrol and devices:
        challenge = await push_store.get_action_challenge(db, action.id, pending_at=now)
        waiting = _push_wait(challenge) if challenge else None
    user = await user_store.get_user(db, tenant.id, claims.user_id)
    redirect_url = action.redirect_url
    if redirect_url and not redirects.is_allowed(tenant.origins, redirect_url):
        redirect_url = None
    listed = await authenticator_store.find_authenticators(db, tenant.id, claims.user_id)
    challenging = not enrol and action.state == ActionState.CHALLENGE_REQUIRED
    push_allowed = VerificationMethod.PUSH.value in users.allowed_methods(tenant)
    return HostedChallenge(
        tenant=tenant,
        action=action,
        enrol=enrol and unavailable is None,
        sign_in=challenging and bool(credentials) and unavailable is None,
        push=not enrol and bool(devices) and action.state == ActionState.CHALLENGE_REQUIRED,
        passkey_unavailable=unavailable,
        credential_ids=tuple(credential.credential_id for credential in credentials),
        pending_push=waiting,
        redirect_url=redirect_url,
        locale=_locale(action, user),
        fallbacks=_fallbacks(tenant, listed, webauthn=unavailable is None) if challenging else (),
        recovery_methods=tuple(method.value for method in recovery.methods(tenant)),
        push_enrolment=push_allowed and public_origin is not None,
        removable=tuple(_removable(a) for a in listed if a.verified_at is not None)
        if recovery.REMOVE_SCOPE in claims.scope.split()
        else None,
    )


async def preferred_locale(db: Db, tenant: TenantRow, claims: TokenClaims) -> str | None:
    """The locale the app gave for the token's action, else the user's (None: neither)."""
    action = None
    if claims.action_code and claims.idempotency_key:
        action = await action_store.get_action(
            db, tenant.id, claims.user_id, claims.action_code, claims.idempotency_key
        )
    return _locale(action, await user_store.get_user(db, tenant.id, claims.user_id))


def _locale(action: ActionRow | None, user: UserRow | None) -> str | None:
    return (action.locale if action else None) or (user.locale if user else None)


def _fallbacks(
    tenant: TenantRow, listed: Sequence[AuthenticatorRow], *, webauthn: bool
) -> tuple[Fallback, ...]:
    """The fallback methods the tenant allows that the user has enrolled and verified."""
    allowed = set(users.allowed_methods(tenant))
    verified = {a.verification_method: a for a in reversed(listed) if a.verified_at is not None}
    offered = []
    for method in FALLBACKS:
        found = verified.get(method.value)
        if found is None or method.value not in allowed or (method in _WEBAUTHN and not webauthn):
            continue
        destination = None
        if found.email:
            destination = mask_email(found.email)
        elif found.phone_number:
            destination = mask_phone(found.phone_number)
        offered.append(Fallback(method=method.value, destination=destination))
    return tuple(offered)


def _removable(authenticator: AuthenticatorRow) -> Removable:
    label = authenticator.display_name or authenticator.username
    if authenticator.email:
        label = mask_email(authenticator.email)
    elif authenticator.phone_number:
        label = mask_phone(authenticator.phone_number)
    return Removable(
        id=authenticator.id,
        method=authenticator.verification_method,
        label=label,
        created_at=int(authenticator.created_at.timestamp()),
    )


async def _authenticate(db: Db, token: str | None) -> tuple[TenantRow, TokenClaims]:
    """The token's tenant and claims, its signature checked against that tenant's key."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise PageUnavailable("The link has no token.", status_code=401, error_code="invalid_token")
    tenant_id = claimed_tenant_id(token)
    tenant = await tenants.find_tenant(db, tenant_id) if tenant_id else None
    if tenant is None:
        raise PageUnavailable(
            "The token is not valid.", status_code=401, error_code="invalid_token"
        )
    try:
        return tenant, tokens.decode_token(tenant, token)
    except ExpiredToken as exc:
        raise PageUnavailable(
            exc.description, status_code=401, error_code="expired_token", tenant=tenant
        ) from exc
    except InvalidToken as exc:
        raise PageUnavailable(exc.description, status_code=401, error_code="invalid_token") from exc


def claimed_tenant_id(token: str) -> str | None:
    """The tenant a token says it is from (unverified: only to pick the key that checks it)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    other = claims.get("other")
    tenant_id = other.get("tenantId") if isinstance(other, dict) else None
    return tenant_id if isinstance(tenant_id, str) and 0 < len(tenant_id) <= 36 else None


async def _pending_action(db: Db, tenant: TenantRow, claims: TokenClaims) -> ActionRow:
    """The token's action, if a challenge can still change it."""
    action = None
    if claims.action_code and claims.idempotency_key:
        action = await action_store.get_action(
            db, tenant.id, claims.user_id, claims.action_code, claims.idempotency_key
        )
    if action is None:
        raise PageUnavailable(
            "The token's action no longer exists.",
            status_code=404,
            error_code="action_not_found",
            tenant=tenant,
        )
    if action.state in REFUSED_STATES:
        raise PageUnavailable(
            f"The action is {action.state}.",
            status_code=403,
            error_code="action_blocked",
            tenant=tenant,
        )
    scopes = claims.scope.split()
    enrolling_allowed = action.state == ActionState.ALLOW and (
        (enrolment.ADD_SCOPE in scopes and action.authenticator_added_at is None)
        or recovery.REMOVE_SCOPE in scopes
    )
    if action.validated_at is not None or not (
        action.state == ActionState.CHALLENGE_REQUIRED or enrolling_allowed
    ):
        raise PageUnavailable(
            f"The action is already {action.state}: this link has been used.",
            status_code=410,
            error_code="token_used",
            tenant=tenant,
        )
    return action


def _passkey_unavailable(tenant: TenantRow, public_origin: str | None) -> str | None:
    if public_origin is None:
        return NO_PUBLIC_URL
    if passkey_policy(tenant, public_origin).hosted_origin is None:
        return RP_ID_ELSEWHERE
    return None


def _push_wait(challenge: PushChallengeRow) -> PushWait:
    return PushWait(
        challenge_id=challenge.id,
        verification_code=challenge.verification_code,
        expires_at=int(challenge.expires_at.timestamp()),
    )


def origins_for_messages(tenant: TenantRow | None, popup: bool) -> Sequence[str]:
    """Where a page in popup (or window) mode may be framed from and post its result to."""
    return web_origins(tenant) if tenant is not None and popup else ()
