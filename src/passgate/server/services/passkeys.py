"""Passkey ceremonies (docs/wire.md#passkey-routes): challenges, registration, sign-in, lookups.

Every challenge is single-use, expires after five minutes, is bound to its tenant and, when
the caller presented a token, to that token's user and action; it is consumed by one
conditional UPDATE before the response is verified, so two racing requests never both win,
and a refused response uses it up too (`single_use`). Who may add a passkey is the rule of
`enrolment`, shared with every other kind of authenticator."""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from passgate.server.services import actions, audit, enrolment, relying_party, single_use
from passgate.server.services.enums import VerificationMethod
from passgate.server.services.errors import Conflict, Forbidden, InvalidRequest
from passgate.server.services.passkey_policy import policy as passkey_policy
from passgate.server.services.relying_party import CeremonyRefused, SignCountRegressed
from passgate.server.services.tokens import TokenClaims
from passgate.server.store import passkeys as store
from passgate.server.store import queries
from passgate.server.store.tables import (
    Authenticator,
    PasskeyChallenge,
    PasskeyCredential,
    Tenant,
    User,
    utcnow,
)

CHALLENGE_LIFETIME = timedelta(minutes=5)
# The action recorded for a sign-in that started without one. [inferred: Authsignal's name]
DEFAULT_SIGN_IN_ACTION = "signInWithPasskey"
REGISTRATION, AUTHENTICATION = "registration", "authentication"


@dataclass(frozen=True, kw_only=True, slots=True)
class Options:
    challenge_id: str
    options: dict[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class Verified:
    """A passkey was registered or asserted; `token` is the new access token."""

    token: str
    user: User
    authenticator: Authenticator
    credential: PasskeyCredential


# C1 ---------------------------------------------------------------------------------------


async def create_challenge(
    session: AsyncSession,
    tenant: Tenant,
    claims: TokenClaims | None,
    *,
    action_code: str | None,
    idempotency_key: str | None = None,
    binding_hash: str | None = None,
) -> PasskeyChallenge:
    """An authentication challenge to use later in authentication-options and verify.
    `binding_hash` ties it to the browser holding a cookie (the `/web` routes)."""
    if claims is not None:
        same_action = action_code in (None, claims.action_code)
        if not same_action and idempotency_key and action_code:
            # The token is for another action: this key must not be one the backend tracked
            # (only that action's own token answers it; see actions.complete_challenge).
            await actions.refuse_backend_key(
                session, tenant, claims.user_id, action_code, idempotency_key
            )
        return await _new_challenge(
            session,
            tenant,
            AUTHENTICATION,
            user_id=claims.user_id,
            action_code=claims.action_code if same_action else action_code,
            idempotency_key=claims.idempotency_key if same_action else idempotency_key,
            binding_hash=binding_hash,
        )
    return await _new_challenge(
        session,
        tenant,
        AUTHENTICATION,
        action_code=action_code,
        idempotency_key=idempotency_key,
        binding_hash=binding_hash,
    )


async def _new_challenge(
    session: AsyncSession, tenant: Tenant, purpose: str, **bound: str | None
) -> PasskeyChallenge:
    now = utcnow()
    challenge = PasskeyChallenge(
        id=str(uuid.uuid4()),
        tenant_id=tenant.id,
        purpose=purpose,
        state="pending",
        challenge=secrets.token_bytes(32),
        created_at=now,
        expires_at=now + CHALLENGE_LIFETIME,
        **bound,
    )
    session.add(challenge)
    await session.flush()
    return challenge


async def _consume(
    session: AsyncSession,
    tenant: Tenant,
    challenge_id: str,
    purpose: str,
    binding_hash: str | None,
) -> PasskeyChallenge:
    now = utcnow()
    challenge = await store.consume_challenge(session, tenant.id, challenge_id, purpose, now)
    if challenge is not None:
        _check_binding(challenge, binding_hash)
        return challenge
    existing = await store.get_challenge(session, tenant.id, challenge_id)
    if existing is None or existing.purpose != purpose:
        raise InvalidRequest("Unknown challenge.", error_code="challenge_not_found")
    if existing.state != "pending":
        raise InvalidRequest(
            "The challenge has already been used.", error_code="challenge_already_used"
        )
    raise InvalidRequest("The challenge has expired.", error_code="challenge_expired")


def _check_binding(challenge: PasskeyChallenge, binding_hash: str | None) -> None:
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


async def registration_options(
    session: AsyncSession,
    tenant: Tenant,
    claims: TokenClaims,
    *,
    username: str | None,
    display_name: str | None,
    hosted_origin: str | None = None,
    binding_hash: str | None = None,
) -> Options:
    policy = passkey_policy(tenant, hosted_origin)
    user = await queries.ensure_user(session, tenant.id, claims.user_id)
    existing = await store.user_credentials(session, tenant.id, user.user_id)
    _check_cap(len(existing), policy.max_passkeys_per_user)
    await enrolment.check(session, tenant, claims)
    name = username or user.username or claims.username or user.user_id
    display = display_name or user.display_name or name
    challenge = await _new_challenge(
        session,
        tenant,
        REGISTRATION,
        user_id=user.user_id,
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
        exclude_credential_ids=[credential.credential_id for credential in existing],
    )
    return Options(challenge_id=challenge.id, options=options)


def _check_cap(passkey_count: int, cap: int) -> None:
    if passkey_count >= cap:
        raise Forbidden(
            f"The user already has {passkey_count} passkeys, the most this tenant allows.",
            error_code="passkey_limit_reached",
        )


async def add_passkey(
    session: AsyncSession,
    tenant: Tenant,
    claims: TokenClaims,
    *,
    challenge_id: str,
    credential: dict[str, Any],
    device_id: str | None,
    user_agent: str | None,
    hosted_origin: str | None = None,
    binding_hash: str | None = None,
) -> Verified:
    challenge = await _consume(session, tenant, challenge_id, REGISTRATION, binding_hash)
    if challenge.user_id != claims.user_id or challenge.action_code != claims.action_code:
        raise InvalidRequest(
            "The challenge was issued for another user or action.",
            error_code="challenge_not_found",
        )
    async with single_use.refusal_burns_challenge(session, challenge.id, tenant.id):
        policy = passkey_policy(tenant, hosted_origin)
        verified = relying_party.verify_registration(
            policy, credential, expected_challenge=challenge.challenge
        )
        user = await queries.ensure_user(session, tenant.id, claims.user_id)
        _check_cap(
            await store.count_user_credentials(session, tenant.id, user.user_id),
            policy.max_passkeys_per_user,
        )
        grant = await enrolment.check(session, tenant, claims)
        authenticator, row = await _insert_passkey(
            session, tenant, user, challenge, verified, device_id, user_agent
        )
        await enrolment.use_up(session, grant)
        _action, token = await actions.complete_challenge(
            session,
            tenant,
            user_id=user.user_id,
            action_code=claims.action_code or DEFAULT_SIGN_IN_ACTION,
            idempotency_key=claims.idempotency_key,
            method=VerificationMethod.PASSKEY,
            authenticator_id=authenticator.id,
            device_id=device_id,
        )
    return Verified(token=token, user=user, authenticator=authenticator, credential=row)


async def _insert_passkey(
    session: AsyncSession,
    tenant: Tenant,
    user: User,
    challenge: PasskeyChallenge,
    verified: relying_party.VerifiedPasskey,
    device_id: str | None,
    user_agent: str | None,
) -> tuple[Authenticator, PasskeyCredential]:
    now = utcnow()
    authenticator = Authenticator(
        id=str(uuid.uuid4()),
        tenant_id=tenant.id,
        user_id=user.user_id,
        verification_method=VerificationMethod.PASSKEY.value,
        username=challenge.username,
        display_name=challenge.display_name,
        is_default=False,
        created_at=now,
        verified_at=now,
    )
    row = PasskeyCredential(
        authenticator_id=authenticator.id,
        tenant_id=tenant.id,
        user_id=user.user_id,
        credential_id=verified.credential_id,
        public_key=verified.public_key,
        sign_count=verified.sign_count,
        aaguid=verified.aaguid,
        attestation_format=verified.attestation_format,
        public_key_algorithm=verified.public_key_algorithm,
        attestation_verified=verified.attestation_verified,
        device_type=verified.device_type,
        backed_up=verified.backed_up,
        transports=verified.transports,
        authenticator_attachment=verified.authenticator_attachment,
        device_id=device_id,
        user_agent=user_agent,
    )
    try:
        async with session.begin_nested():
            session.add_all([authenticator, row])
    except IntegrityError as exc:
        raise Conflict(
            "This passkey is already registered.", error_code="credential_already_registered"
        ) from exc
    return authenticator, row


# C4 / C5: sign-in -------------------------------------------------------------------------


async def authentication_options(
    session: AsyncSession,
    tenant: Tenant,
    claims: TokenClaims | None,
    challenge_id: str | None,
    *,
    hosted_origin: str | None = None,
    binding_hash: str | None = None,
) -> Options:
    """Options for a challenge from C1, or a new one. Bound to a user (a token's, or C1's),
    they list that user's passkeys; otherwise the sign-in is discoverable (usernameless)."""
    if challenge_id:
        challenge = await store.get_challenge(session, tenant.id, challenge_id)
        if challenge is None or challenge.purpose != AUTHENTICATION:
            raise InvalidRequest("Unknown challenge.", error_code="challenge_not_found")
        if challenge.state != "pending":
            raise InvalidRequest(
                "The challenge has already been used.", error_code="challenge_already_used"
            )
        if challenge.expires_at <= utcnow():
            raise InvalidRequest("The challenge has expired.", error_code="challenge_expired")
    else:
        challenge = await create_challenge(
            session, tenant, claims, action_code=None, binding_hash=binding_hash
        )
    allowed: Sequence[PasskeyCredential] = ()
    if challenge.user_id:
        allowed = await store.user_credentials(session, tenant.id, challenge.user_id)
    options = relying_party.authentication_options(
        passkey_policy(tenant, hosted_origin),
        challenge=challenge.challenge,
        allow_credential_ids=[credential.credential_id for credential in allowed],
    )
    return Options(challenge_id=challenge.id, options=options)


async def verify(
    session: AsyncSession,
    tenant: Tenant,
    claims: TokenClaims | None,
    *,
    challenge_id: str,
    credential: dict[str, Any],
    device_id: str | None,
    hosted_origin: str | None = None,
    binding_hash: str | None = None,
) -> Verified:
    challenge = await _consume(session, tenant, challenge_id, AUTHENTICATION, binding_hash)
    if claims is not None and challenge.user_id not in (None, claims.user_id):
        raise InvalidRequest(
            "The challenge was issued for another user.", error_code="challenge_not_found"
        )
    try:
        async with single_use.refusal_burns_challenge(session, challenge.id, tenant.id):
            return await _sign_in(
                session,
                tenant,
                claims,
                challenge,
                credential,
                device_id=device_id,
                hosted_origin=hosted_origin,
            )
    except SignCountRegressed:
        # A copy of the key may exist: flag it. Written after the refusal's savepoint is
        # undone, so it is committed along with the burnt challenge.
        found = await store.credential_with_authenticator(
            session, tenant.id, [relying_party.credential_id_of(credential)]
        )
        if found is not None:
            row = found[0]
            await store.flag_credential(session, row.authenticator_id, "possible_clone", utcnow())
            details = {"credentialId": row.credential_id, "userId": row.user_id}
            await audit.security_event(session, tenant.id, audit.SIGN_COUNT_REGRESSED, details)
        raise


async def _sign_in(
    session: AsyncSession,
    tenant: Tenant,
    claims: TokenClaims | None,
    challenge: PasskeyChallenge,
    credential: dict[str, Any],
    *,
    device_id: str | None,
    hosted_origin: str | None,
) -> Verified:
    """Check the assertion against the consumed `challenge` and settle its action."""
    found = await store.credential_with_authenticator(
        session, tenant.id, [relying_party.credential_id_of(credential)]
    )
    if found is None:
        raise InvalidRequest("This passkey is not registered.", error_code="unknown_credential")
    row, authenticator = found
    user_id = challenge.user_id or (claims.user_id if claims else None)
    if user_id is not None and row.user_id != user_id:
        raise InvalidRequest(
            "This passkey belongs to another user.", error_code="credential_user_mismatch"
        )
    user = await queries.get_user(session, tenant.id, row.user_id)
    assert user is not None
    handle = relying_party.user_handle_of(credential)
    if handle is not None and handle != user.handle:
        raise CeremonyRefused(
            "The user handle does not match the passkey's user.", error_code="verification_failed"
        )
    asserted = relying_party.verify_assertion(
        passkey_policy(tenant, hosted_origin),
        credential,
        expected_challenge=challenge.challenge,
        public_key=row.public_key,
        stored_sign_count=row.sign_count,
        public_key_algorithm=row.public_key_algorithm,
    )
    now = utcnow()
    row.sign_count, row.backed_up = asserted.sign_count, asserted.backed_up
    authenticator.last_verified_at = now
    _action, token = await actions.complete_challenge(
        session,
        tenant,
        user_id=row.user_id,
        action_code=challenge.action_code or DEFAULT_SIGN_IN_ACTION,
        idempotency_key=challenge.idempotency_key,
        method=VerificationMethod.PASSKEY,
        authenticator_id=authenticator.id,
        device_id=device_id,
        # A challenge bound to no user came from a Basic-only C1 or C4.
        client_made=challenge.user_id is None,
    )
    return Verified(token=token, user=user, authenticator=authenticator, credential=row)


# C6 / C7 ----------------------------------------------------------------------------------


async def find_credential(
    session: AsyncSession, tenant: Tenant, credential_ids: Sequence[str]
) -> tuple[PasskeyCredential, Authenticator]:
    found = await store.credential_with_authenticator(session, tenant.id, credential_ids)
    if found is None:
        raise InvalidRequest("No such passkey.", error_code="invalid_credential")
    return found
