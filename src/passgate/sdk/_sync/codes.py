"""The one-time-code methods, as the Flutter SDK's `AuthsignalEmail`, `AuthsignalSMS`,
`AuthsignalWhatsApp` and `AuthsignalTOTP` have them, plus recovery codes.

Every call is for the user of the cached token (`client.set_token`, with the token from your
backend's `track`). A verify that succeeds replaces the cached token with the one it returns,
so the next call (enrol a passkey after recovering, say) carries the fresh proof; that token is
also what your backend validates."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from passgate.sdk import _fallback_wire as wire
from passgate.sdk._protocol import ApiRequest, bearer_auth, token_not_set
from passgate.sdk._types import (
    AuthsignalResponse,
    ChallengeResponse,
    EnrollResponse,
    EnrollTotpResponse,
    RecoveryCodesResponse,
    VerifyResponse,
)

if TYPE_CHECKING:
    from passgate.sdk._sync.client import AuthsignalSync

T = TypeVar("T")

EMAIL_OTP = "email-otp"
SMS = "sms"
WHATSAPP = "whatsapp"
TOTP = "totp"
RECOVERY_CODE = "recovery-code"


class BearerMethod:
    """A namespace whose calls carry the cached token."""

    def __init__(self, client: AuthsignalSync) -> None:
        self._client = client

    def _call(
        self, build: Callable[[str], ApiRequest], parse: Callable[[dict[str, Any]], T]
    ) -> AuthsignalResponse[T]:
        token = self._client.token
        if not token:
            return token_not_set()
        return self._client._api.call(build(bearer_auth(token)), parse)

    def _verify(
        self, build: Callable[[str], ApiRequest]
    ) -> AuthsignalResponse[VerifyResponse]:
        verified = self._call(build, wire.read_verify)
        self._keep_token(verified)
        return verified

    def _keep_token(self, response: AuthsignalResponse[VerifyResponse]) -> None:
        if response.data is not None and response.data.token:
            self._client.set_token(response.data.token)


class _CodeMethod(BearerMethod):
    _method: str

    def _enroll(self, body: Mapping[str, Any]) -> AuthsignalResponse[EnrollResponse]:
        return self._call(
            lambda auth: wire.enroll_request(auth, self._method, body), wire.read_enroll
        )

    def challenge(self) -> AuthsignalResponse[ChallengeResponse]:
        """Send a new code to the enrolled address or number."""
        return self._call(
            lambda auth: wire.challenge_request(auth, self._method), wire.read_challenge
        )

    def verify(self, code: str) -> AuthsignalResponse[VerifyResponse]:
        """Check the code the user typed; a wrong one is `is_verified` False, not an error."""
        return self._verify(lambda auth: wire.verify_request(auth, self._method, code))


class AuthsignalEmail(_CodeMethod):
    _method = EMAIL_OTP

    def enroll(self, email: str) -> AuthsignalResponse[EnrollResponse]:
        """Add `email` to the user and send it a code; it is enrolled once `verify` succeeds."""
        return self._enroll({"email": email})


class AuthsignalSms(_CodeMethod):
    _method = SMS

    def enroll(self, phone_number: str) -> AuthsignalResponse[EnrollResponse]:
        """Add `phone_number` (E.164, `+64...`) and text it a code; enrolled once verified."""
        return self._enroll({"phoneNumber": phone_number})


class AuthsignalWhatsapp(_CodeMethod):
    """Codes sent by WhatsApp to the user's enrolled phone number (no enrolment of its own)."""

    _method = WHATSAPP


class AuthsignalTotp(BearerMethod):
    def enroll(self) -> AuthsignalResponse[EnrollTotpResponse]:
        """Make a new authenticator-app secret; it is enrolled once a code from it verifies."""
        return self._call(lambda auth: wire.enroll_request(auth, TOTP), wire.read_enroll_totp)

    def verify(self, code: str) -> AuthsignalResponse[VerifyResponse]:
        return self._verify(lambda auth: wire.verify_request(auth, TOTP, code))


class AuthsignalRecoveryCode(BearerMethod):
    """Passgate's own (Authsignal's client SDKs have none): a backend may also make a set with
    the Server API's `POST /users/{id}/authenticators`."""

    def enroll(self) -> AuthsignalResponse[RecoveryCodesResponse]:
        """Make a new set of codes for the user (an earlier set stops working)."""
        return self._call(
            lambda auth: wire.enroll_request(auth, RECOVERY_CODE), wire.read_recovery_codes
        )

    def verify(self, code: str) -> AuthsignalResponse[VerifyResponse]:
        """Spend one of the user's recovery codes (each works once)."""
        return self._verify(lambda auth: wire.verify_request(auth, RECOVERY_CODE, code))
