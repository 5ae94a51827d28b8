"""Security-key routes of the Client API (SK1-SK4, docs/security-keys.md): bare WebAuthn JSON
in and out, no challengeId, Bearer token on every call. Parse, call the service, shape."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from passgate.server.client_api.auth import CachedTokenCaller
from passgate.server.client_api.passkeys import user_agent_of
from passgate.server.client_api.web_cookies import HostedOrigin
from passgate.server.database import Database
from passgate.server.delivery import Messaging
from passgate.server.schemas import AuthenticatorResponse, WireModel
from passgate.server.services import security_keys
from passgate.server.views import authenticator_response

router = APIRouter(tags=["security keys"])
SECURITY_KEY = "/user-authenticators/security-key"
# A bare RegistrationResponseJSON or AuthenticationResponseJSON (a handful of keys).
Credential = Annotated[dict[str, Any], Body(max_length=16)]


class AddedResponse(WireModel):
    is_verified: bool
    access_token: str
    user_id: str
    user_authenticator_id: str
    credential_id: str
    user_authenticator: AuthenticatorResponse


class VerifiedResponse(WireModel):
    is_verified: bool
    access_token: str
    user_id: str
    user_authenticator_id: str
    credential_id: str


@router.post(f"{SECURITY_KEY}/registration-options")
async def registration_options(
    caller: CachedTokenCaller, db: Database, hosted_origin: HostedOrigin
) -> dict[str, Any]:
    """SK1: the body (`{}`) carries nothing."""
    assert caller.claims is not None
    return await security_keys.registration_options(
        db, caller.tenant, caller.claims, hosted_origin=hosted_origin
    )


@router.post(SECURITY_KEY)
async def add_security_key(
    caller: CachedTokenCaller,
    db: Database,
    credential: Credential,
    request: Request,
    hosted_origin: HostedOrigin,
    messenger: Messaging,
) -> AddedResponse:
    assert caller.claims is not None
    added = await security_keys.add(
        db,
        caller.tenant,
        caller.claims,
        credential=credential,
        user_agent=user_agent_of(request),
        hosted_origin=hosted_origin,
        recheck=caller.recheck(db),
        messenger=messenger,
    )
    return AddedResponse(
        is_verified=True,
        access_token=added.token,
        user_id=added.authenticator.user_id,
        user_authenticator_id=added.authenticator.id,
        credential_id=added.credential.credential_id,
        user_authenticator=authenticator_response(added.authenticator, added.credential),
    )


@router.post(f"{SECURITY_KEY}/authentication-options")
async def authentication_options(
    caller: CachedTokenCaller, db: Database, hosted_origin: HostedOrigin
) -> dict[str, Any]:
    """SK3: the body (`{}`) carries nothing."""
    assert caller.claims is not None
    return await security_keys.authentication_options(
        db, caller.tenant, caller.claims, hosted_origin=hosted_origin
    )


@router.post("/verify/security-key")
async def verify_security_key(
    caller: CachedTokenCaller, db: Database, credential: Credential, hosted_origin: HostedOrigin
) -> VerifiedResponse:
    assert caller.claims is not None
    verified = await security_keys.verify(
        db,
        caller.tenant,
        caller.claims,
        credential=credential,
        hosted_origin=hosted_origin,
        recheck=caller.recheck(db),
    )
    return VerifiedResponse(
        is_verified=True,
        access_token=verified.token,
        user_id=verified.user_id,
        user_authenticator_id=verified.authenticator_id,
        credential_id=verified.credential_id,
    )
