"""`client.email_magic_link`: sign in by a link sent by email, as the browser SDK's
`emailMagicLink` does.

The link may be opened on any device (a phone's mail app, say): its page asks the reader to
confirm. Meanwhile this device polls; only the holder of the token that asked for the link gets
the new token, so a link forwarded or fetched by a mail scanner signs nobody else in."""

from __future__ import annotations

import time

from passgate.sdk import _fallback_wire as wire
from passgate.sdk._sync.codes import BearerMethod
from passgate.sdk._types import (
    AuthsignalResponse,
    ChallengeResponse,
    EnrollResponse,
    VerifyResponse,
)

EMAIL_MAGIC_LINK = "email-magic-link"


class AuthsignalEmailMagicLink(BearerMethod):
    def enroll(self, email: str) -> AuthsignalResponse[EnrollResponse]:
        """Add `email` to the user and send it a link; enrolled once the link is confirmed."""
        return self._call(
            lambda auth: wire.enroll_request(auth, EMAIL_MAGIC_LINK, {"email": email}),
            wire.read_enroll,
        )

    def challenge(self) -> AuthsignalResponse[ChallengeResponse]:
        """Send a new link to the enrolled address."""
        return self._call(
            lambda auth: wire.challenge_request(auth, EMAIL_MAGIC_LINK), wire.read_challenge
        )

    def check_verification_status(
        self, poll_interval: float = 1.0, timeout: float | None = 600.0
    ) -> AuthsignalResponse[VerifyResponse]:
        """Wait until the link is confirmed (`is_verified`, with the token), refused for good
        (`failure_reason`, for example an expired link), or `timeout` seconds pass (None waits
        as long as the browser SDK does: for ever). The browser SDK polls once a second."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self._call(wire.finalize_magic_link_request, wire.read_verify)
            if status.data is None or status.data.is_verified or status.data.failure_reason:
                self._keep_token(status)
                return status
            if deadline is not None and time.monotonic() + poll_interval > deadline:
                return status
            time.sleep(poll_interval)
