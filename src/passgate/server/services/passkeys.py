"""Passkey ceremonies (docs/wire.md#passkey-routes): challenges, registration, sign-in, lookups.

Challenges are signed messages (services/challenges.py), not rows: issuing one writes nothing.
Each is single-use, expires after five minutes, is bound to its tenant and, when the caller
presented a token, to that token's user and action. The answer first checks what the message
says (its browser, its user: a request the challenge was not meant for leaves it alone), then
spends it by inserting its digest, in the same statement that reads the credential or user the
check needs and the tenant's version; two racing answers never both win, and a refused answer
spends it too (`single_use`). Who may add a passkey is the rule of `enrolment`, shared with
every other kind of authenticator."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from passgate.server.services import (
    actions,
    audit,
    challenges,
    enrolment,
    metrics,
    relying_party,
    single_use,
)
from passgate.server.services.challenges import Challenge, ChallengeRefused, Purpose, Refusal
from passgate.server.services.delivery import Messenger
from passgate.server.services.enums import VerificationMethod
from passgate.server.services.errors import Conflict, Forbidden, InvalidRequest
from passgate.server.services.passkey_policy import policy as passkey_policy
from passgate.server.services.relying_party import CeremonyRefused, SignCountRegressed
from passgate.server.services.tokens import TokenClaims
from passgate.server.store import passkeys as store
from passgate.server.store import users as user_store
from passgate.server.store.actions import AlongWith
from passgate.server.store.authenticators import AuthenticatorRow
from passgate.server.store.db import Db
from passgate.server.store.passkeys import PasskeyCredentialRow
from passgate.server.store.tables import utcnow
from passgate.server.store.tenants import TenantRow

CHALLENGE_LIFETIME = timedelta(minutes=5)
# The action recorded for a sign-in that started without one. [inferred: Authsignal's name]
DEFAULT_SIGN_IN_ACTION = "signInWithPasskey"
REGISTRATION, AUTHENTICATION = Purpose.REGISTRATION, Purpose.AUTHENTICATION
# Given the tenant's version as the deciding statement read it (None: the tenant is gone), the
# tenant and token claims to decide with: the caller's own when the version is the one they
# were read at, else read afresh (the route's auth knows how; see client_api/auth.py).
Recheck = Callable[[datetime | None], Awaitable[tuple[TenantRow, TokenClaims | None]]]


@dataclass(frozen=True, kw_only=True, slots=True)
class Options:
    challenge_id: str
    options: dict[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class Verified:
    """A passkey was registered or asserted; `token` is the new access token. `username` and
    `display_name` are the user's, else the authenticator's. A registration also carries the
    rows it added (C3 answers with them)."""

    token: str
    user_id: str
    username: str | None
    display_name: str | None
    authenticator_id: str
    credential_id: str
    authenticator: AuthenticatorRow | None = None
    credential: PasskeyCredentialRow | None = None


# C1 ---------------------------------------------------------------------------------------


async def create_challenge(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims | None,
    *,
    action_code: str | None,
    idempotency_key: str | None = None,
    binding_hash: str | None = None,
) -> Challenge:
    """An authentication challenge to use later in authentication-options and verify.
    `binding_hash` ties it to the browser holding a cookie (the `/web` routes). It is a
    signed message: nothing is written."""
    if claims is not None:
        same_action = action_code in (None, claims.action_code)
        if not same_action and idempotency_key and action_code:
            # The token is for another action: this key must not be one the backend tracked
            # (only that action's own token answers it; see actions.complete_challenge).
            await actions.refuse_backend_key(
                db,
                tenant,
                claims.user_id,
                action_code,
                idempotency_key,
            )
        return _issue(
            tenant,
            AUTHENTICATION,
            user_id=claims.user_id,
            action_code=claims.action_code if same_action else action_code,
            idempotency_key=claims.idempotency_key if same_action else idempotency_key,
            binding_hash=binding_hash,
        )
    return _issue(
        tenant,
        AUTHENTICATION,
        action_code=action_code,
        idempotency_key=idempotency_key,
        binding_hash=binding_hash,
    )


def _issue(tenant: TenantRow, purpose: Purpose, **bound: str | None) -> Challenge:
    metrics.challenge(metrics.PASSKEY, "started")
    return challenges.issue(tenant, purpose, CHALLENGE_LIFETIME, utcnow(), **bound)


def _parse(tenant: TenantRow, purpose: Purpose, challenge_id: str) -> Challenge:
    """The challenge a request names, if this tenant issued it for this purpose and it has not
    expired; whether it was spent is found when the answer spends it."""
    try:
        return challenges.parse(tenant, purpose, challenge_id, utcnow())
    except ChallengeRefused as exc:
        if exc.reason == Refusal.EXPIRED:
            metrics.challenge(metrics.PASSKEY, "expired")
            raise InvalidRequest(
                "The challenge has expired.", error_code="challenge_expired"
            ) from None
        raise InvalidRequest("Unknown challenge.", error_code="challenge_not_found") from None


def already_used() -> InvalidRequest:
    return InvalidRequest(
        "The challenge has already been used.", error_code="challenge_already_used"
    )


def _check_binding(challenge: Challenge, binding_hash: str | None) -> None:
    """A challenge a `/web` route started is answered only by the browser holding its cookie.
    [inferred: Authsignal's cookie sessions are not documented; this is Passgate's rule]"""
    if challenge.binding_hash is None:
        return
    if binding_hash is None or not hmac.compare_digest(challenge.binding_hash, binding_hash):
        raise Forbidden(
            "The challenge was started with a cookie this request does not carry; answer it "
            "from the same browser, with credentials included.",
            error_code="challenge_cookie_mismatch",
        )


# C2 / C3: registration --------------------------------------------------------------------


async def _ensure_user(db: Db, tenant: TenantRow, claims: TokenClaims) -> store.Registering:
    """The token's user (created if missing: a token can name a user the tenant never
    tracked) with their passkeys' credential ids, and the token's action with whether the
    user has an authenticator (the enrolment rule's read), in one statement."""
    key = (claims.action_code, claims.idempotency_key)
    found = await store.registering(db, tenant.id, claims.user_id, *key)
    if found is not None:
        return found
    await user_store.ensure_user(db, tenant.id, claims.user_id)
    found = await store.registering(db, tenant.id, claims.user_id, *key)
    assert found is not None
    return found


async def registration_options(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims,
    *,
    username: str | None,
    display_name: str | None,
    hosted_origin: str | None = None,
    binding_hash: str | None = None,
) -> Options:
    policy = passkey_policy(tenant, hosted_origin)
    user = await _ensure_user(db, tenant, claims)
    _check_cap(len(user.credential_ids), policy.max_passkeys_per_user)
    enrolment.decide(tenant, claims, None if user.action is None else (user.action, user.enrolled))
    name = username or user.username or claims.username or claims.user_id
    display = display_name or user.display_name or name
    challenge = _issue(
        tenant,
        REGISTRATION,
        user_id=claims.user_id,
        action_code=claims.action_code,
        idempotency_key=claims.idempotency_key,
        username=name,
        display_name=display,
        binding_hash=binding_hash,
    )
    options = relying_party.registration_options(
        policy,
        challenge=challenge.challenge,
        user_handle=user.handle,
        username=name,
        display_name=display,
        exclude_credential_ids=user.credential_ids,
    )
    return Options(challenge_id=challenge.id, options=options)


def _check_cap(passkey_count: int, cap: int) -> None:
    if passkey_count >= cap:
        raise Forbidden(
            f"The user already has {passkey_count} passkeys, the most this tenant allows.",
            error_code="passkey_limit_reached",
        )


def stored_credential(
    verified: relying_party.VerifiedPasskey, *, device_id: str | None, user_agent: str | None
) -> dict[str, Any]:
    """A verified registration as `store.insert_passkey` keeps it (a passkey's or a security
    key's: one credential row for both)."""
    return {
        "credential_id": verified.credential_id,
        "public_key": verified.public_key,
        "sign_count": verified.sign_count,
        "aaguid": verified.aaguid,
        "attestation_format": verified.attestation_format,
        "public_key_algorithm": verified.public_key_algorithm,
        "attestation_verified": verified.attestation_verified,
        "device_type": verified.device_type,
        "backed_up": verified.backed_up,
        "transports": verified.transports,
        "authenticator_attachment": verified.authenticator_attachment,
        "device_id": device_id,
        "user_agent": user_agent,
    }


async def add_passkey(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims,
    *,
    challenge_id: str,
    credential: dict[str, Any],
    device_id: str | None,
    user_agent: str | None,
    hosted_origin: str | None = None,
    binding_hash: str | None = None,
    recheck: Recheck | None = None,
    messenger: Messenger | None = None,
) -> Verified:
    """C3. `messenger` sends the notices of a recovery (services/recovery.py) as soon as the
    request commits; without it they leave with the outbox's next poll."""
    challenge = _parse(tenant, REGISTRATION, challenge_id)
    # Checked before the spend: a request the challenge was not meant for leaves it unspent.
    _check_binding(challenge, binding_hash)
    if challenge.user_id != claims.user_id or challenge.action_code != claims.action_code:
        raise InvalidRequest(
            "The challenge was issued for another user or action.",
            error_code="challenge_not_found",
        )
    spent, tenant, claims = await spend_registration(db, tenant, claims, challenge, recheck)
    async with single_use.refusal_burns_challenge(db, challenge.id, tenant.id):
        policy = passkey_policy(tenant, hosted_origin)
        verified = relying_party.verify_registration(
            policy, credential, expected_challenge=challenge.challenge
        )
        username, display_name = spent.username, spent.display_name
        if not spent.user_exists:
            await user_store.ensure_user(db, tenant.id, claims.user_id)
        _check_cap(spent.passkey_count, policy.max_passkeys_per_user)
        # The enrolment rule, its use-up and the action's settlement: one conditional UPDATE,
        # before the passkey goes in (a refusal writes nothing; the savepoint undoes it all
        # when the insert then finds the passkey registered already).
        authenticator_id = str(uuid.uuid4())
        _action, token = await enrolment.add_and_settle(
            db,
            tenant,
            claims,
            method=VerificationMethod.PASSKEY,
            authenticator_id=authenticator_id,
            messenger=messenger,
        )
        added = await store.insert_passkey(
            db,
            authenticator_id=authenticator_id,
            tenant_id=tenant.id,
            user_id=claims.user_id,
            username=challenge.username,
            display_name=challenge.display_name,
            credential=stored_credential(verified, device_id=device_id, user_agent=user_agent),
        )
        if added is None:
            raise Conflict(
                "This passkey is already registered.", error_code="credential_already_registered"
            )
        authenticator, row = added
        await audit.authenticator_changed(
            db,
            audit.user_actor(claims.user_id),
            added=True,
            tenant_id=tenant.id,
            user_id=claims.user_id,
            authenticator_id=authenticator.id,
            verification_method=VerificationMethod.PASSKEY.value,
        )
    return Verified(
        token=token,
        user_id=claims.user_id,
        username=username or authenticator.username,
        display_name=display_name or authenticator.display_name,
        authenticator_id=authenticator.id,
        credential_id=row.credential_id,
        authenticator=authenticator,
        credential=row,
    )


async def spend_registration(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims,
    challenge: Challenge,
    recheck: Recheck | None,
) -> tuple[store.SpentForRegistration, TenantRow, TokenClaims]:
    """Spend a registration challenge (a passkey's or a security key's): refused when it was
    spent before. With `recheck`, a tenant changed since the token was checked is read again,
    and the token checked against it, before the registration is verified."""
    spent = await store.spend_for_registration(
        db, tenant.id, challenge.digest, challenge.expires_at, claims.user_id
    )
    if spent is None:
        raise already_used()
    if recheck is not None and spent.tenant_version != tenant.updated_at:
        tenant, fresh = await recheck(spent.tenant_version)
        assert fresh is not None
        claims = fresh
    return spent, tenant, claims


# C4 / C5: sign-in -------------------------------------------------------------------------


async def authentication_options(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims | None,
    challenge_id: str | None,
    *,
    hosted_origin: str | None = None,
    binding_hash: str | None = None,
) -> Options:
    """Options for a challenge from C1, or a new one. Bound to a user (a token's, or C1's),
    they list that user's passkeys; otherwise the sign-in is discoverable (usernameless).
    Nothing is written (a spent challenge of C1 is refused when it is answered)."""
    if challenge_id:
        challenge = _parse(tenant, AUTHENTICATION, challenge_id)
    else:
        challenge = await create_challenge(
            db, tenant, claims, action_code=None, binding_hash=binding_hash
        )
    allowed: list[str] = []
    if challenge.user_id:
        allowed = await store.user_credential_ids(db, tenant.id, challenge.user_id)
    options = relying_party.authentication_options(
        passkey_policy(tenant, hosted_origin),
        challenge=challenge.challenge,
        allow_credential_ids=allowed,
    )
    return Options(challenge_id=challenge.id, options=options)


async def verify(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims | None,
    *,
    challenge_id: str,
    credential: dict[str, Any],
    device_id: str | None,
    hosted_origin: str | None = None,
    binding_hash: str | None = None,
    recheck: Recheck | None = None,
) -> Verified:
    challenge = _parse(tenant, AUTHENTICATION, challenge_id)
    # Checked before the spend: a request the challenge was not meant for leaves it unspent.
    _check_binding(challenge, binding_hash)
    if claims is not None and challenge.user_id not in (None, claims.user_id):
        raise InvalidRequest(
            "The challenge was issued for another user.", error_code="challenge_not_found"
        )
    try:
        credential_id: str | None = relying_party.credential_id_of(credential)
    except CeremonyRefused:
        credential_id = None  # refused below, once the challenge is spent (and burnt)
    found = await store.spend_for_assertion(
        db, tenant.id, challenge.digest, challenge.expires_at, credential_id or ""
    )
    if found is None:
        raise already_used()
    if recheck is not None and found.tenant_version != tenant.updated_at:
        tenant, claims = await recheck(found.tenant_version)
    try:
        async with single_use.refusal_burns_challenge(db, challenge.id, tenant.id):
            verified = await _sign_in(
                db,
                tenant,
                claims,
                challenge,
                found,
                credential,
                device_id=device_id,
                hosted_origin=hosted_origin,
            )
        metrics.challenge(metrics.PASSKEY, "approved", db)
        return verified
    except SignCountRegressed:
        metrics.challenge(metrics.PASSKEY, "rejected", db)
        assert credential_id is not None
        await flag_possible_clone(db, tenant.id, credential_id)
        raise
    except CeremonyRefused:
        # Committed with the burnt challenge: the refusal stands (single_use).
        metrics.challenge(metrics.PASSKEY, "rejected", db)
        raise


async def _sign_in(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims | None,
    challenge: Challenge,
    found: store.SpentForAssertion,
    credential: dict[str, Any],
    *,
    device_id: str | None,
    hosted_origin: str | None,
) -> Verified:
    """Check the assertion against the spent challenge and settle its action."""
    credential_id = relying_party.credential_id_of(credential)
    if found.authenticator_id is None or found.user_id is None or found.public_key is None:
        raise InvalidRequest("This passkey is not registered.", error_code="unknown_credential")
    user_id = challenge.user_id or (claims.user_id if claims else None)
    if user_id is not None and found.user_id != user_id:
        raise InvalidRequest(
            "This passkey belongs to another user.", error_code="credential_user_mismatch"
        )
    handle = relying_party.user_handle_of(credential)
    if handle is not None and handle != found.user_handle:
        raise CeremonyRefused(
            "The user handle does not match the passkey's user.", error_code="verification_failed"
        )
    along = await check_assertion(
        db,
        tenant,
        credential,
        found,
        expected_challenge=challenge.challenge,
        hosted_origin=hosted_origin,
    )
    _action, token = await actions.complete_challenge(
        db,
        tenant,
        user_id=found.user_id,
        action_code=challenge.action_code or DEFAULT_SIGN_IN_ACTION,
        idempotency_key=challenge.idempotency_key,
        method=_method_of(found),
        authenticator_id=found.authenticator_id,
        device_id=device_id,
        # A challenge bound to no user came from a Basic-only C1 or C4.
        client_made=challenge.user_id is None,
        along=along,
    )
    return Verified(
        token=token,
        user_id=found.user_id,
        username=found.username,
        display_name=found.display_name,
        authenticator_id=found.authenticator_id,
        credential_id=credential_id,
    )


async def check_assertion(
    db: Db,
    tenant: TenantRow,
    credential: dict[str, Any],
    found: store.SpentForAssertion,
    *,
    expected_challenge: bytes,
    hosted_origin: str | None,
) -> AlongWith | None:
    """Verify an assertion against the registered credential `found` (a passkey's or a
    security key's) and note the sign-in. PostgreSQL: the writes are returned, to ride in the
    action's statement (`actions.complete_challenge(along=)`: one statement for all three
    tables); SQLite: one statement per table, here."""
    assert found.authenticator_id is not None and found.public_key is not None
    asserted = relying_party.verify_assertion(
        passkey_policy(tenant, hosted_origin),
        credential,
        expected_challenge=expected_challenge,
        public_key=found.public_key,
        stored_sign_count=found.sign_count,
        public_key_algorithm=found.public_key_algorithm,
    )
    return await store.record_assertion(
        db,
        found.authenticator_id,
        sign_count=asserted.sign_count,
        backed_up=asserted.backed_up,
        changed=(asserted.sign_count, asserted.backed_up) != (found.sign_count, found.backed_up),
        now=utcnow(),
    )


async def flag_possible_clone(db: Db, tenant_id: str, credential_id: str) -> None:
    """A sign count went backwards: a copy of the key may exist, so flag its credential and
    record a security event. Called after the refusal's savepoint is undone, so it commits
    along with the burnt challenge."""
    user_id = await store.flag_credential(db, tenant_id, credential_id, "possible_clone", utcnow())
    if user_id is not None:
        details = {"credentialId": credential_id, "userId": user_id}
        await single_use.security_event(db, tenant_id, audit.SIGN_COUNT_REGRESSED, details)


def _method_of(found: store.SpentForAssertion) -> VerificationMethod:
    """What the sign-in records: the method of the credential's authenticator. A security key
    (services/security_keys.py) is a WebAuthn credential too and may answer here; the action
    then says SECURITY_KEY, not PASSKEY, so a rule or backend that tells them apart is not
    misled."""
    if found.verification_method == VerificationMethod.SECURITY_KEY:
        return VerificationMethod.SECURITY_KEY
    return VerificationMethod.PASSKEY


# C6 / C7 ----------------------------------------------------------------------------------


async def find_credential(
    db: Db, tenant: TenantRow, credential_ids: list[str]
) -> tuple[PasskeyCredentialRow, AuthenticatorRow]:
    found = await store.credential_with_authenticator(db, tenant.id, credential_ids)
    if found is None:
        raise InvalidRequest("No such passkey.", error_code="invalid_credential")
    return found
