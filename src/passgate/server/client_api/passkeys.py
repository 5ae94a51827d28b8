"""Passkey routes of the Client API: parse, call the service, shape
(docs/wire.md#passkey-routes, #cookie-bound-web-routes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from passgate.server import limits
from passgate.server.client_api.auth import (
    AnyCaller,
    CachedAnyCaller,
    CachedTokenCaller,
    ClientCaller,
    TokenCaller,
)
from passgate.server.client_api.rate_limits import ClientWriteLimit
from passgate.server.client_api.web_cookies import HostedOrigin, PresentedBinding, bind
from passgate.server.database import Database, Db
from passgate.server.delivery import Messaging
from passgate.server.schemas import (
    ActionCode,
    AuthenticatorResponse,
    DeviceId,
    DisplayName,
    IdempotencyKey,
    ShortText,
    Username,
    WireModel,
)
from passgate.server.services import challenges, passkeys, users
from passgate.server.services.errors import InvalidRequest
from passgate.server.views import authenticator_response

router = APIRouter(tags=["passkeys"])
PASSKEY = "/user-authenticators/passkey"
Credential = Annotated[dict[str, Any], Field(max_length=16)]
# A challengeId is a signed message (services/challenges.py): opaque to the SDKs, a few
# hundred characters long usually, longer only with long names and keys.
ChallengeId = Annotated[str, Field(max_length=challenges.MAX_MESSAGE)]


class ChallengeRequest(WireModel):
    action: ActionCode | None = None
    idempotency_key: IdempotencyKey | None = None


class RegistrationOptionsRequest(WireModel):
    username: Username | None = None
    display_name: DisplayName | None = None
    authenticator_attachment: ShortText | None = None


class AddPasskeyRequest(WireModel):
    challenge_id: ChallengeId
    registration_credential: Credential
    device_id: DeviceId | None = None
    conditional_create: bool | None = None


class AuthenticationOptionsRequest(WireModel):
    challenge_id: ChallengeId | None = None


class VerifyPasskeyRequest(WireModel):
    challenge_id: ChallengeId
    authentication_credential: Credential
    device_id: DeviceId | None = None


class ChallengeResponse(WireModel):
    challenge_id: str


class OptionsResponse(WireModel):
    challenge_id: str
    options: dict[str, Any]


class VerifiedResponse(WireModel):
    is_verified: bool
    access_token: str | None = None
    user_id: str | None = None
    user_authenticator_id: str | None = None
    credential_id: str | None = None
    username: str | None = None
    user_display_name: str | None = None
    # C3 only: the authenticator just added, as C7 lists it.
    user_authenticator: AuthenticatorResponse | None = None


class PasskeyLookupResponse(WireModel):
    credential_id: str
    verified_at: datetime | None = None


@router.post("/challenge", dependencies=[ClientWriteLimit])
async def challenge(
    caller: CachedAnyCaller, db: Database, body: ChallengeRequest | None = None
) -> ChallengeResponse:
    return await _challenge(caller, db, body, binding_hash=None)


@router.post("/challenge/web", dependencies=[ClientWriteLimit])
async def challenge_web(
    caller: CachedAnyCaller,
    db: Database,
    request: Request,
    response: Response,
    body: ChallengeRequest | None = None,
) -> ChallengeResponse:
    """C1 for the browser SDK's `useCookies`: the challenge is bound to this browser."""
    return await _challenge(caller, db, body, binding_hash=bind(request, response))


async def _challenge(
    caller: ClientCaller, db: Db, body: ChallengeRequest | None, binding_hash: str | None
) -> ChallengeResponse:
    body = body or ChallengeRequest()
    created = await passkeys.create_challenge(
        db,
        caller.tenant,
        caller.claims,
        action_code=body.action,
        idempotency_key=body.idempotency_key,
        binding_hash=binding_hash,
    )
    return ChallengeResponse(challenge_id=created.id)


@router.post(f"{PASSKEY}/registration-options")
async def registration_options(
    caller: CachedTokenCaller,
    db: Database,
    hosted_origin: HostedOrigin,
    body: RegistrationOptionsRequest | None = None,
) -> OptionsResponse:
    return await _registration_options(caller, db, hosted_origin, body, binding_hash=None)


@router.post(f"{PASSKEY}/registration-options/web")
async def registration_options_web(
    caller: CachedTokenCaller,
    db: Database,
    hosted_origin: HostedOrigin,
    request: Request,
    response: Response,
    body: RegistrationOptionsRequest | None = None,
) -> OptionsResponse:
    """C2 for the browser SDK's `useCookies`: the challenge is bound to this browser."""
    binding_hash = bind(request, response)
    return await _registration_options(caller, db, hosted_origin, body, binding_hash)


async def _registration_options(
    caller: ClientCaller,
    db: Db,
    hosted_origin: str | None,
    body: RegistrationOptionsRequest | None,
    binding_hash: str | None,
) -> OptionsResponse:
    body = body or RegistrationOptionsRequest()
    assert caller.claims is not None
    options = await passkeys.registration_options(
        db,
        caller.tenant,
        caller.claims,
        username=body.username,
        display_name=body.display_name,
        hosted_origin=hosted_origin,
        binding_hash=binding_hash,
    )
    return OptionsResponse(challenge_id=options.challenge_id, options=options.options)


def user_agent_of(request: Request) -> str | None:
    """The request's User-Agent as a new credential records it, cut to the column's length."""
    return request.headers.get("user-agent", "")[: limits.USER_AGENT] or None


@router.post(PASSKEY, response_model_exclude_none=True)
async def add_passkey(
    caller: CachedTokenCaller,
    db: Database,
    body: AddPasskeyRequest,
    request: Request,
    hosted_origin: HostedOrigin,
    binding: PresentedBinding,
    messenger: Messaging,
) -> VerifiedResponse:
    assert caller.claims is not None
    added = await passkeys.add_passkey(
        db,
        caller.tenant,
        caller.claims,
        challenge_id=body.challenge_id,
        credential=body.registration_credential,
        device_id=body.device_id,
        user_agent=user_agent_of(request),
        hosted_origin=hosted_origin,
        binding_hash=binding,
        recheck=caller.recheck(db),
        messenger=messenger,
    )
    assert added.authenticator is not None and added.credential is not None
    return verified_response(added).model_copy(
        update={"user_authenticator": authenticator_response(added.authenticator, added.credential)}
    )


@router.post(f"{PASSKEY}/authentication-options", dependencies=[ClientWriteLimit])
async def authentication_options(
    caller: CachedAnyCaller,
    db: Database,
    hosted_origin: HostedOrigin,
    body: AuthenticationOptionsRequest | None = None,
) -> OptionsResponse:
    challenge_id = body.challenge_id if body else None
    options = await passkeys.authentication_options(
        db, caller.tenant, caller.claims, challenge_id, hosted_origin=hosted_origin
    )
    return OptionsResponse(challenge_id=options.challenge_id, options=options.options)


@router.post(f"{PASSKEY}/authentication-options/web", dependencies=[ClientWriteLimit])
async def authentication_options_web(
    caller: CachedAnyCaller,
    db: Database,
    hosted_origin: HostedOrigin,
    request: Request,
    response: Response,
) -> OptionsResponse:
    """C4 for the browser SDK's `useCookies`: a new challenge, bound to this browser."""
    options = await passkeys.authentication_options(
        db,
        caller.tenant,
        caller.claims,
        None,
        hosted_origin=hosted_origin,
        binding_hash=bind(request, response),
    )
    return OptionsResponse(challenge_id=options.challenge_id, options=options.options)


@router.post("/verify/passkey", response_model_exclude_none=True)
async def verify_passkey(
    caller: CachedAnyCaller,
    db: Database,
    body: VerifyPasskeyRequest,
    hosted_origin: HostedOrigin,
    binding: PresentedBinding,
) -> VerifiedResponse:
    verified = await passkeys.verify(
        db,
        caller.tenant,
        caller.claims,
        challenge_id=body.challenge_id,
        credential=body.authentication_credential,
        device_id=body.device_id,
        hosted_origin=hosted_origin,
        binding_hash=binding,
        recheck=caller.recheck(db),
    )
    return verified_response(verified)


@router.get(PASSKEY, response_model_exclude_none=True)
async def find_passkey(
    caller: AnyCaller,
    db: Database,
    credential_id: Annotated[str | None, Query(alias="credentialId", max_length=1400)] = None,
    credential_ids: Annotated[str | None, Query(alias="credentialIds", max_length=8000)] = None,
) -> PasskeyLookupResponse:
    wanted = [credential_id] if credential_id else (credential_ids or "").split(",")
    wanted = [value.strip() for value in wanted if value.strip()][:50]
    if not wanted:
        raise InvalidRequest("Give credentialId or credentialIds.")
    row, authenticator = await passkeys.find_credential(db, caller.tenant, wanted)
    return PasskeyLookupResponse(
        credential_id=row.credential_id, verified_at=authenticator.verified_at
    )


@router.get("/user-authenticators", response_model_exclude_none=True)
async def list_authenticators(caller: TokenCaller, db: Database) -> list[AuthenticatorResponse]:
    assert caller.claims is not None
    listed = await users.list_authenticators(db, caller.tenant, caller.claims.user_id)
    return [authenticator_response(authenticator, passkey) for authenticator, passkey in listed]


def verified_response(verified: passkeys.Verified) -> VerifiedResponse:
    return VerifiedResponse(
        is_verified=True,
        access_token=verified.token,
        user_id=verified.user_id,
        user_authenticator_id=verified.authenticator_id,
        credential_id=verified.credential_id,
        username=verified.username,
        user_display_name=verified.display_name,
    )
