"""Refusals specific to push, each with the Authsignal-style `errorCode` it is shown as."""

from __future__ import annotations

from passgate.server.services.errors import (
    Conflict,
    NotFound,
    PassgateError,
    Unauthorized,
)


class UnknownCredential(NotFound):
    """No device with this public key in this tenant (never enrolled, or removed)."""

    error_code = "invalid_credential"


class ExpiredCredential(Unauthorized):
    error_code = "expired_credential"


class BadSignature(Unauthorized):
    error_code = "invalid_signature"


class ChallengeExpired(PassgateError):
    status_code = 410
    error_code = "challenge_expired"


class ChallengeAnswered(Conflict):
    error_code = "challenge_already_answered"


class NoPushDevice(PassgateError):
    error_code = "no_push_device"


class TooManyRequests(PassgateError):
    status_code = 429
    error_code = "too_many_requests"
