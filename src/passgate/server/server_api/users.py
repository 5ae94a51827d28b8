"""Users and their authenticators (docs/wire.md#server-api)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Path, Query

from passgate.server.database import Database
from passgate.server.schemas import (
    AuthenticatorResponse,
    EnrollAuthenticatorRequest,
    EnrollAuthenticatorResponse,
    QueryUsersResponse,
    UserAttributes,
    UserResponse,
    UserSummary,
)
from passgate.server.server_api.auth import SecretKeyTenant
from passgate.server.server_api.paths import UserId
from passgate.server.services import audit, recovery_codes, tokens, users
from passgate.server.services.enums import VerificationMethod
from passgate.server.services.users import UserProfile, UserRow
from passgate.server.views import authenticator_response

router = APIRouter(tags=["users"])


def user_response(profile: UserProfile) -> UserResponse:
    user, enrollment = profile.user, profile.enrollment
    attributes = UserAttributes.model_validate(user, from_attributes=True) if user else None
    return UserResponse(
        user_id=profile.user_id,
        is_enrolled=enrollment.is_enrolled,
        enrolled_verification_methods=enrollment.enrolled_methods,
        allowed_verification_methods=enrollment.allowed_methods,
        default_verification_method=enrollment.default_method,
        **(attributes.model_dump(by_alias=False, exclude_none=True) if attributes else {}),
    )


@router.get("/users/{userId}", response_model_exclude_none=True)
async def get_user(user_id: UserId, tenant: SecretKeyTenant, db: Database) -> UserResponse:
    return user_response(await users.get_profile(db, tenant, user_id))


@router.patch("/users/{userId}", response_model_exclude_none=True)
async def update_user(
    user_id: UserId, body: UserAttributes, tenant: SecretKeyTenant, db: Database
) -> UserAttributes:
    user = await users.update_user(
        db, tenant, user_id, body.model_dump(exclude_unset=True, by_alias=False)
    )
    return UserAttributes.model_validate(user, from_attributes=True)


@router.delete("/users/{userId}")
async def delete_user(user_id: UserId, tenant: SecretKeyTenant, db: Database) -> dict[str, str]:
    await users.delete_user(db, tenant, user_id, actor=audit.api_actor())
    return {}


@router.get("/users", response_model_exclude_none=True)
async def query_users(
    tenant: SecretKeyTenant,
    db: Database,
    username: Annotated[str | None, Query(max_length=255)] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    phone_number: Annotated[str | None, Query(alias="phoneNumber", max_length=32)] = None,
    token: Annotated[str | None, Query(max_length=8192)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    last_evaluated_user_id: Annotated[
        str | None, Query(alias="lastEvaluatedUserId", max_length=255)
    ] = None,
) -> QueryUsersResponse:
    token_payload = None
    found: Sequence[UserRow]
    cursor: str | None
    if token is not None:
        # A token narrows the query to its own user, and its claims are returned.
        claims = tokens.decode_token(tenant, token)
        payload = {
            "userId": claims.user_id,
            "actionCode": claims.action_code,
            "idempotencyKey": claims.idempotency_key,
            "username": claims.username,
            "scope": claims.scope,
            "exp": claims.expires_at,
            "iat": claims.issued_at,
        }
        token_payload = {key: value for key, value in payload.items() if value is not None}
        profile = await users.get_profile(db, tenant, claims.user_id)
        found = [profile.user] if profile.user else []
        cursor = None
    else:
        found, cursor = await users.query_users(
            db,
            tenant,
            username=username,
            email=email,
            phone_number=phone_number,
            after_user_id=last_evaluated_user_id,
            limit=limit,
        )
    return QueryUsersResponse(
        users=[UserSummary.model_validate(user, from_attributes=True) for user in found],
        last_evaluated_user_id=cursor,
        token_payload=token_payload,
    )


@router.get("/users/{userId}/authenticators", response_model_exclude_none=True)
async def get_authenticators(
    user_id: UserId, tenant: SecretKeyTenant, db: Database
) -> list[AuthenticatorResponse]:
    listed = await users.list_authenticators(db, tenant, user_id)
    return [authenticator_response(authenticator, passkey) for authenticator, passkey in listed]


@router.post("/users/{userId}/authenticators", response_model_exclude_none=True)
async def enroll_verified_authenticator(
    user_id: UserId, body: EnrollAuthenticatorRequest, tenant: SecretKeyTenant, db: Database
) -> EnrollAuthenticatorResponse:
    if body.verification_method == VerificationMethod.RECOVERY_CODE:
        # A new set of codes (replacing the user's old ones), shown in this answer only.
        issued = await recovery_codes.issue(db, tenant, user_id, actor=audit.api_actor())
        return EnrollAuthenticatorResponse(
            authenticator=authenticator_response(issued.authenticator),
            recovery_codes=issued.codes,
        )
    authenticator = await users.enroll_verified_authenticator(
        db,
        tenant,
        user_id,
        method=body.verification_method,
        email=body.email,
        phone_number=body.phone_number,
        is_default=bool(body.is_default),
        actor=audit.api_actor(),
    )
    return EnrollAuthenticatorResponse(authenticator=authenticator_response(authenticator))


@router.delete("/users/{userId}/authenticators/{userAuthenticatorId}")
async def delete_authenticator(
    user_id: UserId,
    authenticator_id: Annotated[str, Path(alias="userAuthenticatorId", max_length=64)],
    tenant: SecretKeyTenant,
    db: Database,
) -> dict[str, str]:
    await users.delete_authenticator(db, tenant, user_id, authenticator_id, actor=audit.api_actor())
    return {}
