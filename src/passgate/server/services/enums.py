"""Authsignal's enums, spelled as on the wire (docs/wire.md#server-api)."""

from __future__ import annotations

from enum import StrEnum


class ActionState(StrEnum):
    ALLOW = "ALLOW"
    BLOCK = "BLOCK"
    CHALLENGE_REQUIRED = "CHALLENGE_REQUIRED"
    CHALLENGE_SUCCEEDED = "CHALLENGE_SUCCEEDED"
    CHALLENGE_FAILED = "CHALLENGE_FAILED"
    REVIEW_REQUIRED = "REVIEW_REQUIRED"
    REVIEW_SUCCEEDED = "REVIEW_SUCCEEDED"
    REVIEW_FAILED = "REVIEW_FAILED"


class ActionOutcome(StrEnum):
    """The states a tracked action may start in, set per action in the tenant's rules."""

    ALLOW = "ALLOW"
    BLOCK = "BLOCK"
    CHALLENGE_REQUIRED = "CHALLENGE_REQUIRED"
    REVIEW_REQUIRED = "REVIEW_REQUIRED"


class VerificationMethod(StrEnum):
    SMS = "SMS"
    EMAIL_OTP = "EMAIL_OTP"
    EMAIL_MAGIC_LINK = "EMAIL_MAGIC_LINK"
    AUTHENTICATOR_APP = "AUTHENTICATOR_APP"
    PASSKEY = "PASSKEY"
    SECURITY_KEY = "SECURITY_KEY"
    PUSH = "PUSH"
    VERIFF = "VERIFF"
    IPROOV = "IPROOV"
    IDVERSE = "IDVERSE"
    PALM_BIOMETRICS_RR = "PALM_BIOMETRICS_RR"
    RECOVERY_CODE = "RECOVERY_CODE"
    DEVICE = "DEVICE"
    WHATSAPP = "WHATSAPP"


# Methods an app backend may enroll directly (POST /users/{id}/authenticators): the contact
# point is already verified by the backend. Passkeys and push need a credential ceremony.
DIRECTLY_ENROLLABLE = {
    VerificationMethod.EMAIL_OTP: "email",
    VerificationMethod.EMAIL_MAGIC_LINK: "email",
    VerificationMethod.SMS: "phone_number",
    VerificationMethod.WHATSAPP: "phone_number",
}

# What a tenant allows unless its `allowedVerificationMethods` setting says otherwise: every
# method Passgate serves (email and SMS ones refuse clearly until the tenant can send them).
DEFAULT_ALLOWED_METHODS = (
    VerificationMethod.PASSKEY,
    VerificationMethod.PUSH,
    VerificationMethod.SECURITY_KEY,
    VerificationMethod.EMAIL_OTP,
    VerificationMethod.EMAIL_MAGIC_LINK,
    VerificationMethod.SMS,
    VerificationMethod.WHATSAPP,
    VerificationMethod.AUTHENTICATOR_APP,
    VerificationMethod.RECOVERY_CODE,
)
