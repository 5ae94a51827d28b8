"""Wire models: camelCase on the wire (snake_case also accepted, as Authsignal's Python SDK
sends request dicts verbatim), snake_case in Python. Shape and type checks live here; rules
live in the services."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from passgate.server import json_values, limits
from passgate.server.services.enums import ActionState, VerificationMethod

# Stored strings take their length from limits.py, which the columns use too.
ShortText = Annotated[str, StringConstraints(max_length=255)]
ActionCode = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=limits.ACTION_CODE, pattern=limits.ACTION_CODE_PATTERN
    ),
]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=limits.IDEMPOTENCY_KEY)]
Email = Annotated[str, StringConstraints(max_length=limits.EMAIL)]
PhoneNumber = Annotated[str, StringConstraints(max_length=limits.PHONE_NUMBER)]
Username = Annotated[str, StringConstraints(max_length=limits.USERNAME)]
DisplayName = Annotated[str, StringConstraints(max_length=limits.DISPLAY_NAME)]
Locale = Annotated[str, StringConstraints(max_length=limits.LOCALE)]
DeviceId = Annotated[str, StringConstraints(max_length=limits.DEVICE_ID)]
CustomData = dict[str, Any]


class WireModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_unstorable_text(cls, data: Any) -> Any:
        """NUL and lone surrogates, in any string or key of the body: no column can hold them.
        The message names the field, but never repeats text that could not be encoded."""
        if isinstance(data, dict):
            for name, value in data.items():
                if json_values.first_text_problem(name):
                    raise ValueError(f"a field name: {json_values.first_text_problem(name)}")
                problem = json_values.first_text_problem(value)
                if problem:
                    raise ValueError(f"{name}: {problem}")
        return data


# Requests --------------------------------------------------------------------------------


class TrackAttributes(WireModel):
    """Body of `POST /users/{userId}/actions/{action}`; every field optional, `{}` allowed."""

    idempotency_key: IdempotencyKey | None = None
    redirect_url: Annotated[str, StringConstraints(max_length=limits.REDIRECT_URL)] | None = None
    redirect_to_settings: bool | None = None
    ip_address: Annotated[str, StringConstraints(max_length=limits.IP_ADDRESS)] | None = None
    user_agent: Annotated[str, StringConstraints(max_length=limits.USER_AGENT)] | None = None
    device_id: DeviceId | None = None
    scope: Annotated[str, StringConstraints(max_length=limits.SCOPE)] | None = None
    email: Email | None = None
    phone_number: PhoneNumber | None = None
    username: Username | None = None
    custom: json_values.StoredJsonObject | None = None
    challenge_id: ShortText | None = None
    locale: Locale | None = None
    custom_domain: ShortText | None = None


class UpdateActionRequest(WireModel):
    state: ActionState


class ValidateRequest(WireModel):
    token: Annotated[str, StringConstraints(min_length=1, max_length=8192)]
    action: ShortText | None = None
    user_id: ShortText | None = None


class UserAttributes(WireModel):
    """Body of `PATCH /users/{userId}`; only the fields sent are changed."""

    email: Email | None = None
    email_verified: bool | None = None
    phone_number: PhoneNumber | None = None
    phone_number_verified: bool | None = None
    username: Username | None = None
    display_name: DisplayName | None = None
    custom: json_values.StoredJsonObject | None = None
    locale: Locale | None = None


class EnrollAuthenticatorRequest(WireModel):
    verification_method: VerificationMethod
    email: Email | None = None
    phone_number: PhoneNumber | None = None
    is_default: bool | None = None


# Responses -------------------------------------------------------------------------------


class TrackResponse(WireModel):
    idempotency_key: str
    state: ActionState
    url: str
    token: str
    is_enrolled: bool
    enrolled_verification_methods: list[str]
    allowed_verification_methods: list[str]
    default_verification_method: str | None = None
    rule_ids: list[str] = Field(default_factory=list)
    # A push challenge started by this track, and the number to show (number matching).
    challenge_id: str | None = None
    verification_code: str | None = None


class ActionResponse(WireModel):
    action_code: str
    idempotency_key: str
    state: ActionState
    state_updated_at: datetime
    created_at: datetime
    updated_at: datetime
    verification_method: str | None = None
    verified_by_authenticator_id: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    device_id: str | None = None
    custom: CustomData | None = None
    rules: list[dict[str, Any]] = Field(default_factory=list)
    output: dict[str, Any] = Field(default_factory=dict)
    # The number the requester shows for the action's push challenge (number matching).
    verification_code: str | None = None


class ValidateResponse(WireModel):
    is_valid: bool
    state: ActionState | None = None
    state_updated_at: datetime | None = None
    user_id: str | None = None
    action_code: str | None = None
    action: str | None = None
    idempotency_key: str | None = None
    verification_method: str | None = None
    error: str | None = None


class UserResponse(WireModel):
    user_id: str
    is_enrolled: bool
    email: str | None = None
    email_verified: bool = False
    phone_number: str | None = None
    phone_number_verified: bool = False
    username: str | None = None
    display_name: str | None = None
    custom: CustomData | None = None
    locale: str | None = None
    enrolled_verification_methods: list[str] = Field(default_factory=list)
    allowed_verification_methods: list[str] = Field(default_factory=list)
    default_verification_method: str | None = None


class UserSummary(WireModel):
    user_id: str
    email: str | None = None
    email_verified: bool = False
    phone_number: str | None = None
    phone_number_verified: bool = False
    username: str | None = None


class QueryUsersResponse(WireModel):
    users: list[UserSummary]
    last_evaluated_user_id: str | None = None
    token_payload: dict[str, Any] | None = None


class AaguidMapping(WireModel):
    """The authenticator model an AAGUID names, with its icons as data: URIs."""

    name: str
    svg_icon_light: str | None = None
    svg_icon_dark: str | None = None


class WebauthnCredential(WireModel):
    credential_id: str
    device_id: str | None = None
    name: str | None = None
    aaguid: str | None = None
    aaguid_mapping: AaguidMapping | None = None
    credential_backed_up: bool
    credential_device_type: str | None = None
    authenticator_attachment: str | None = None
    verified_at: datetime | None = None


class AuthenticatorResponse(WireModel):
    """A user authenticator as both APIs show it (Server API `UserAuthenticator`, Client API
    C7); `errored_at`/`error_code` flag a passkey whose counter went backwards."""

    user_id: str
    user_authenticator_id: str
    verification_method: str
    created_at: datetime
    verified_at: datetime | None = None
    last_verified_at: datetime | None = None
    is_default: bool = False
    email: str | None = None
    phone_number: str | None = None
    username: str | None = None
    display_name: str | None = None
    webauthn_credential: WebauthnCredential | None = None
    errored_at: datetime | None = None
    error_code: str | None = None


class EnrollAuthenticatorResponse(WireModel):
    authenticator: AuthenticatorResponse
    recovery_codes: list[str] | None = None
