"""Security keys (SECURITY_KEY): a roaming WebAuthn authenticator (a USB, NFC or BLE key) as a
method of its own, beside passkeys (docs/security-keys.md).

The ceremonies are the passkeys' (services/passkeys.py): the same relying party checks and
attestation policy (services/relying_party.py, the tenant's passkey settings), the same
stateless signed challenges spent once in `spent_challenges` (services/challenges.py), the
same one enrolment rule applied atomically as the key goes in (`enrolment.add_and_settle`),
and the same credential rows (`passkey_credentials`), whose authenticator says SECURITY_KEY.
What differs:

- The wire carries no challengeId: options and responses are bare WebAuthn JSON. So the
  WebAuthn challenge bytes are the signed message itself (its ASCII bytes; a passkey's are the
  message's SHA-256), and an answer's challenge is read back from its
  `clientDataJSON.challenge`, then checked like any challenge: issued by this tenant, for this
  purpose (a passkey's message, or another tenant's, is unknown here), not expired, and not
  spent. The message is about 270 bytes whatever the names: it binds the token's user,
  action and idempotency key by a hash of them (`binding_hash`), not by the values, which
  may be long.
- Every call needs the Bearer token; the answer must come with a token of the same user and
  action the options were made for (else it is refused and the challenge left unspent).
- Options ask for a cross-platform authenticator, with `residentKey` discouraged (a key need
  not spend one of its few discoverable slots: SK3 names its credentials), the tenant's user
  verification setting (`preferred` unless the tenant requires it), and the WebAuthn hint
  `security-key`. `excludeCredentials` lists all of the user's WebAuthn credentials, passkeys
  too, so one physical authenticator is not enrolled twice.
- SK4 accepts only the token user's SECURITY_KEY credentials; sign counts are checked as for
  passkeys (a counter that goes backwards flags the credential). A security key answering the
  passkey routes (C5) is accepted there and recorded as SECURITY_KEY (services/passkeys.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Any

from passgate.server.services import (
    actions,
    audit,
    challenges,
    enrolment,
    metrics,
    passkeys,
    single_use,
)
from passgate.server.services import relying_party as rp
from passgate.server.services.challenges import Challenge, ChallengeRefused, Purpose, Refusal
from passgate.server.services.delivery import Messenger
from passgate.server.services.enums import VerificationMethod
from passgate.server.services.errors import Conflict, Forbidden, InvalidRequest
from passgate.server.services.passkey_policy import policy as passkey_policy
from passgate.server.services.passkeys import CHALLENGE_LIFETIME, Recheck
from passgate.server.services.relying_party import CeremonyRefused, SignCountRegressed
from passgate.server.services.tokens import TokenClaims
from passgate.server.store import passkeys as store
from passgate.server.store import users as user_store
from passgate.server.store.authenticators import AuthenticatorRow
from passgate.server.store.db import Db
from passgate.server.store.passkeys import PasskeyCredentialRow
from passgate.server.store.tables import utcnow
from passgate.server.store.tenants import TenantRow

METHOD = VerificationMethod.SECURITY_KEY
REGISTRATION = Purpose.SECURITY_KEY_REGISTRATION
AUTHENTICATION = Purpose.SECURITY_KEY_AUTHENTICATION
# The action recorded when the token names none. [inferred: Authsignal's name]
DEFAULT_ACTION = "signInWithSecurityKey"
HINTS = ["security-key"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Enrolled:
    """A security key added (SK2): the action's new token and the rows that went in."""

    token: str
    authenticator: AuthenticatorRow
    credential: PasskeyCredentialRow


@dataclass(frozen=True, kw_only=True, slots=True)
class Verified:
    """A security key asserted (SK4)."""

    token: str
    user_id: str
    authenticator_id: str
    credential_id: str


# Challenges -------------------------------------------------------------------------------


def _binding(claims: TokenClaims) -> str:
    """What ties a challenge to the token's user and action: a hash, so the message stays
    short however long the user id, action code and idempotency key are."""
    fields = [claims.user_id, claims.action_code, claims.idempotency_key]
    digest = hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _issue(tenant: TenantRow, purpose: Purpose, claims: TokenClaims) -> Challenge:
    metrics.challenge(METHOD, "started")
    return challenges.issue(
        tenant, purpose, CHALLENGE_LIFETIME, utcnow(), binding_hash=_binding(claims)
    )


def challenge_bytes(challenge: Challenge) -> bytes:
    """The bytes WebAuthn signs over: the message itself, so the answer names it."""
    return challenge.id.encode()


def _answered(
    tenant: TenantRow, purpose: Purpose, credential: dict[str, Any], claims: TokenClaims
) -> Challenge:
    """The challenge an answer's clientDataJSON names, if this tenant issued it for `purpose`,
    it has not expired, and it was made for the token's user and action. Whether it was spent
    is found when the answer spends it; nothing is spent for a refusal here."""
    message = _message_in(credential)
    try:
        challenge = challenges.parse(tenant, purpose, message, utcnow())
    except ChallengeRefused as exc:
        if exc.reason == Refusal.EXPIRED:
            metrics.challenge(METHOD, "expired")
            raise InvalidRequest(
                "The challenge has expired.", error_code="challenge_expired"
            ) from None
        raise InvalidRequest("Unknown challenge.", error_code="challenge_not_found") from None
    if challenge.binding_hash is None or not hmac.compare_digest(
        challenge.binding_hash, _binding(claims)
    ):
        raise InvalidRequest(
            "The challenge was issued for another user or action.",
            error_code="challenge_not_found",
        )
    return challenge


def _message_in(credential: dict[str, Any]) -> str:
    """`clientDataJSON.challenge`, decoded: the message, if the answer is well formed."""
    response = credential.get("response")
    raw = response.get("clientDataJSON") if isinstance(response, dict) else None
    if not isinstance(raw, str):
        raise CeremonyRefused(
            "The credential has no response.clientDataJSON.", error_code="malformed_credential"
        )
    try:
        client_data = json.loads(rp.b64decode_any(raw))
        encoded = client_data["challenge"]
        if not isinstance(encoded, str):
            raise TypeError("the challenge is not a string")
        return rp.b64decode_any(encoded).decode("ascii")
    except (binascii.Error, ValueError, TypeError, KeyError):
        # Not JSON, not an object, no challenge, not a string, not base64, not ASCII: no
        # challenge of ours.
        raise InvalidRequest(
            "clientDataJSON names no challenge of this tenant.", error_code="challenge_not_found"
        ) from None


# SK1 / SK2: enrolment ---------------------------------------------------------------------


async def _registering(db: Db, tenant: TenantRow, claims: TokenClaims) -> store.Registering:
    """The token's user (created if missing) with their WebAuthn credential ids, and the
    token's action with whether the user has an authenticator, in one statement."""
    key = (claims.action_code, claims.idempotency_key)
    found = await store.registering(db, tenant.id, claims.user_id, *key)
    if found is None:
        await user_store.ensure_user(db, tenant.id, claims.user_id)
        found = await store.registering(db, tenant.id, claims.user_id, *key)
    assert found is not None
    return found


def _check_cap(count: int, cap: int) -> None:
    """The tenant's cap on passkeys per user counts every WebAuthn credential."""
    if count >= cap:
        raise Forbidden(
            f"The user already has {count} passkeys and security keys, the most this tenant "
            "allows.",
            error_code="passkey_limit_reached",
        )


async def registration_options(
    db: Db, tenant: TenantRow, claims: TokenClaims, *, hosted_origin: str | None = None
) -> dict[str, Any]:
    """SK1: bare creation options for a security key (the module says what they ask for)."""
    policy = passkey_policy(tenant, hosted_origin)
    user = await _registering(db, tenant, claims)
    _check_cap(len(user.credential_ids), policy.max_passkeys_per_user)
    enrolment.decide(tenant, claims, None if user.action is None else (user.action, user.enrolled))
    name = user.username or claims.username or claims.user_id
    challenge = _issue(tenant, REGISTRATION, claims)
    options = rp.registration_options(
        policy,
        challenge=challenge_bytes(challenge),
        user_handle=user.handle,
        username=name,
        display_name=user.display_name or name,
        exclude_credential_ids=user.credential_ids,
    )
    selection = options["authenticatorSelection"]
    options["authenticatorSelection"] = {
        "authenticatorAttachment": "cross-platform",
        "residentKey": "discouraged",
        "requireResidentKey": False,
        "userVerification": selection["userVerification"],
    }
    options["hints"] = HINTS
    return options


async def add(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims,
    *,
    credential: dict[str, Any],
    user_agent: str | None,
    hosted_origin: str | None = None,
    recheck: Recheck | None = None,
    messenger: Messenger | None = None,
) -> Enrolled:
    """SK2: verify the registration, add the key under the one enrolment rule and settle the
    token's action (a backend's waiting action succeeds with SECURITY_KEY). `messenger` sends
    the notices of a recovery (services/recovery.py) as soon as the request commits; without
    it they leave with the outbox's next poll."""
    challenge = _answered(tenant, REGISTRATION, credential, claims)
    spent, tenant, claims = await passkeys.spend_registration(
        db, tenant, claims, challenge, recheck
    )
    async with single_use.refusal_burns_challenge(db, challenge.id, tenant.id):
        policy = passkey_policy(tenant, hosted_origin)
        verified = rp.verify_registration(
            policy, credential, expected_challenge=challenge_bytes(challenge)
        )
        if not spent.user_exists:
            await user_store.ensure_user(db, tenant.id, claims.user_id)
        _check_cap(spent.passkey_count, policy.max_passkeys_per_user)
        authenticator_id = str(uuid.uuid4())
        # The rule, its use-up and the action's settlement in one conditional UPDATE before
        # the key goes in; the savepoint undoes it if the credential is registered already.
        _action, token = await enrolment.add_and_settle(
            db,
            tenant,
            claims,
            method=METHOD,
            authenticator_id=authenticator_id,
            messenger=messenger,
        )
        added = await store.insert_passkey(
            db,
            authenticator_id=authenticator_id,
            tenant_id=tenant.id,
            user_id=claims.user_id,
            username=spent.username,
            display_name=spent.display_name,
            verification_method=METHOD.value,
            credential=passkeys.stored_credential(verified, device_id=None, user_agent=user_agent),
        )
        if added is None:
            raise Conflict(
                "This security key is already registered.",
                error_code="credential_already_registered",
            )
        authenticator, row = added
        await audit.authenticator_changed(
            db,
            audit.user_actor(claims.user_id),
            added=True,
            tenant_id=tenant.id,
            user_id=claims.user_id,
            authenticator_id=authenticator.id,
            verification_method=METHOD.value,
        )
    return Enrolled(token=token, authenticator=authenticator, credential=row)


# SK3 / SK4: verification ------------------------------------------------------------------


async def authentication_options(
    db: Db, tenant: TenantRow, claims: TokenClaims, *, hosted_origin: str | None = None
) -> dict[str, Any]:
    """SK3: bare request options naming the token user's security keys (none: 400)."""
    allowed = await store.user_credential_ids(
        db, tenant.id, claims.user_id, verification_method=METHOD.value
    )
    if not allowed:
        raise InvalidRequest(
            "The user has no security key: enrol one first.", error_code="no_security_key"
        )
    challenge = _issue(tenant, AUTHENTICATION, claims)
    options = rp.authentication_options(
        passkey_policy(tenant, hosted_origin),
        challenge=challenge_bytes(challenge),
        allow_credential_ids=allowed,
    )
    options["hints"] = HINTS
    return options


async def verify(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims,
    *,
    credential: dict[str, Any],
    hosted_origin: str | None = None,
    recheck: Recheck | None = None,
) -> Verified:
    """SK4: check the assertion against the challenge its clientDataJSON names and settle the
    token's action with SECURITY_KEY."""
    challenge = _answered(tenant, AUTHENTICATION, credential, claims)
    try:
        credential_id: str | None = rp.credential_id_of(credential)
    except CeremonyRefused:
        credential_id = None  # refused below, once the challenge is spent (and burnt)
    found = await store.spend_for_assertion(
        db, tenant.id, challenge.digest, challenge.expires_at, credential_id or ""
    )
    if found is None:
        raise passkeys.already_used()
    if recheck is not None and found.tenant_version != tenant.updated_at:
        tenant, fresh = await recheck(found.tenant_version)
        assert fresh is not None
        claims = fresh
    try:
        async with single_use.refusal_burns_challenge(db, challenge.id, tenant.id):
            verified = await _assert(
                db, tenant, claims, challenge, found, credential, hosted_origin=hosted_origin
            )
        metrics.challenge(METHOD, "approved", db)
        return verified
    except SignCountRegressed:
        metrics.challenge(METHOD, "rejected", db)
        assert credential_id is not None
        await passkeys.flag_possible_clone(db, tenant.id, credential_id)
        raise
    except CeremonyRefused:
        metrics.challenge(METHOD, "rejected", db)
        raise


async def _assert(
    db: Db,
    tenant: TenantRow,
    claims: TokenClaims,
    challenge: Challenge,
    found: store.SpentForAssertion,
    credential: dict[str, Any],
    *,
    hosted_origin: str | None,
) -> Verified:
    credential_id = rp.credential_id_of(credential)
    if found.authenticator_id is None or found.user_id is None or found.public_key is None:
        raise InvalidRequest(
            "This security key is not registered.", error_code="unknown_credential"
        )
    if found.user_id != claims.user_id:
        raise InvalidRequest(
            "This security key belongs to another user.", error_code="credential_user_mismatch"
        )
    if found.verification_method != METHOD:
        raise InvalidRequest(
            "This credential is a passkey, not a security key: verify it as a passkey.",
            error_code="not_a_security_key",
        )
    handle = rp.user_handle_of(credential)
    if handle is not None and handle != found.user_handle:
        raise CeremonyRefused(
            "The user handle does not match the security key's user.",
            error_code="verification_failed",
        )
    along = await passkeys.check_assertion(
        db,
        tenant,
        credential,
        found,
        expected_challenge=challenge_bytes(challenge),
        hosted_origin=hosted_origin,
    )
    _action, token = await actions.complete_challenge(
        db,
        tenant,
        user_id=found.user_id,
        action_code=claims.action_code or DEFAULT_ACTION,
        idempotency_key=claims.idempotency_key,
        method=METHOD,
        authenticator_id=found.authenticator_id,
        along=along,
    )
    return Verified(
        token=token,
        user_id=found.user_id,
        authenticator_id=found.authenticator_id,
        credential_id=credential_id,
    )
