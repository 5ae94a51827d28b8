"""The fallback methods' requests as they leave the SDK, read by a real HTTP receiver on
loopback: paths, the Bearer token (and its replacement after a verify), no body where the
mobile SDKs send none, bare WebAuthn JSON for security keys, and the magic-link poll.
tests/sdk/test_fallback_methods.py runs the same calls against a real server."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from passgate import AuthsignalSync, ErrorCode, VerifyResponse
from passgate.authenticators import SoftwareAuthenticator
from tests.receivers import HttpReceiver, ReceivedRequest


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


CHALLENGE = b64url(os.urandom(32))
REGISTRATION_OPTIONS = {
    "rp": {"id": "localhost", "name": "Test"},
    "user": {"id": b64url(b"user-1"), "name": "uma", "displayName": "Uma"},
    "challenge": CHALLENGE,
    "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
    "authenticatorSelection": {"authenticatorAttachment": "cross-platform"},
}
AUTHENTICATION_OPTIONS = {"rpId": "localhost", "challenge": CHALLENGE, "allowCredentials": []}


class FakeApi:
    """What the receiver answers, by path, like the server's routes would."""

    def __init__(self) -> None:
        self.polls = 0
        self.verified_after = 3

    def __call__(self, request: ReceivedRequest) -> Any:
        path = request.path.removeprefix("/v1/client")
        if path.startswith("/user-authenticators/security-key/registration-options"):
            return REGISTRATION_OPTIONS
        if path.startswith("/user-authenticators/security-key/authentication-options"):
            return AUTHENTICATION_OPTIONS
        if path == "/user-authenticators/security-key":
            return {"isVerified": True, "accessToken": "after-key", "userAuthenticatorId": "ua-k"}
        if path == "/user-authenticators/recovery-code":
            return {"userAuthenticatorId": "ua-r", "userId": "u", "recoveryCodes": ["ab", "cd"]}
        if path == "/user-authenticators/totp":
            return {
                "userAuthenticatorId": "ua-t",
                "userId": "u",
                "uri": "otpauth://x",
                "secret": "S",
            }
        if path.startswith("/user-authenticators/"):
            return {"userAuthenticatorId": "ua-1", "userId": "u"}
        if path.startswith("/challenge/"):
            return {"challengeId": "ch-1"}
        if path == "/verify/email-magic-link/finalize":
            self.polls += 1
            if self.polls >= self.verified_after:
                return {"isVerified": True, "accessToken": "after-link"}
            return {"isVerified": False}
        if path.startswith("/verify/"):
            code = request.json().get("verificationCode")
            if code == "123456" or path == "/verify/security-key":
                return {"isVerified": True, "accessToken": f"after-{path.rsplit('/', 1)[1]}"}
            return {"isVerified": False, "failureReason": "CODE_INVALID_OR_EXPIRED"}
        return {}


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def receiver(api: FakeApi) -> Iterator[HttpReceiver]:
    with HttpReceiver(reply=api) as hook:
        yield hook


@pytest.fixture
def client(receiver: HttpReceiver, tmp_path: Path) -> Iterator[AuthsignalSync]:
    key = SoftwareAuthenticator(tmp_path / "key.bin", "pw")
    with AuthsignalSync(
        "tenant-1", f"{receiver.url}/v1", security_key_authenticator=key, timeout=5
    ) as app:
        app.set_token("tracked")
        yield app


class Sent:
    """The requests in the order they arrived. The receiver records a request just after
    answering it, so each is waited for rather than read off the list."""

    def __init__(self, receiver: HttpReceiver) -> None:
        self._receiver = receiver
        self._seen = 0

    def next(self) -> ReceivedRequest:
        self._seen += 1
        return self._receiver.wait(count=self._seen, timeout=5)


@pytest.fixture
def sent(receiver: HttpReceiver) -> Sent:
    return Sent(receiver)


def test_code_methods_send_what_the_mobile_sdks_send(client: AuthsignalSync, sent: Sent) -> None:
    calls: list[tuple[Any, str, dict[str, Any] | None]] = [
        (lambda: client.email.enroll("uma@example.com"), "/user-authenticators/email-otp",
         {"email": "uma@example.com"}),
        (client.email.challenge, "/challenge/email-otp", None),
        (lambda: client.sms.enroll("+6421000000"), "/user-authenticators/sms",
         {"phoneNumber": "+6421000000"}),
        (client.sms.challenge, "/challenge/sms", None),
        (client.whatsapp.challenge, "/challenge/whatsapp", None),
        (client.totp.enroll, "/user-authenticators/totp", None),
        (client.recovery_code.enroll, "/user-authenticators/recovery-code", None),
        (lambda: client.email_magic_link.enroll("uma@example.com"),
         "/user-authenticators/email-magic-link", {"email": "uma@example.com"}),
        (client.email_magic_link.challenge, "/challenge/email-magic-link", None),
    ]  # fmt: skip
    for call, path, body in calls:
        response = call()
        assert response.ok, (path, response)
        request = sent.next()
        assert (request.method, request.path) == ("POST", f"/v1/client{path}")
        assert request.header("authorization") == "Bearer tracked"
        if body is None:
            assert request.body == b"" and request.header("content-type") is None, path
        else:
            assert request.json() == body
            assert request.header("content-type") == "application/json"
    assert client.token == "tracked"  # enrolling and challenging never replace the token


def test_typed_results(client: AuthsignalSync) -> None:
    assert client.email.enroll("uma@example.com").data is not None
    enrolled = client.sms.enroll("+6421000000").data
    assert enrolled is not None and enrolled.user_authenticator_id == "ua-1"
    totp = client.totp.enroll().data
    assert totp is not None and (totp.user_authenticator_id, totp.uri, totp.secret) == (
        "ua-t",
        "otpauth://x",
        "S",
    )
    codes = client.recovery_code.enroll().data
    assert codes is not None and codes.recovery_codes == ["ab", "cd"]
    assert codes.user_authenticator_id == "ua-r"
    challenge = client.whatsapp.challenge().data
    assert challenge is not None and challenge.challenge_id == "ch-1"


@pytest.mark.parametrize("namespace", ["email", "sms", "whatsapp", "totp", "recovery_code"])
def test_verify_sends_the_code_and_a_success_replaces_the_cached_token(
    client: AuthsignalSync, sent: Sent, namespace: str
) -> None:
    method = getattr(client, namespace)
    wrong = method.verify("000000")
    assert wrong.data == VerifyResponse(is_verified=False, failure_reason="CODE_INVALID_OR_EXPIRED")
    assert client.token == "tracked"  # a failed verify keeps the token
    path = {"email": "email-otp", "recovery_code": "recovery-code"}.get(namespace, namespace)
    request = sent.next()
    assert request.path == f"/v1/client/verify/{path}"
    assert request.json() == {"verificationCode": "000000"}
    right = method.verify("123456")
    assert right.data == VerifyResponse(is_verified=True, token=f"after-{path}")
    assert client.token == f"after-{path}"
    sent.next()
    client.email.challenge()
    assert sent.next().header("authorization") == f"Bearer after-{path}"


def test_no_token_no_request(receiver: HttpReceiver) -> None:
    with AuthsignalSync("tenant-1", f"{receiver.url}/v1") as app:
        for call in (
            lambda: app.email.enroll("uma@example.com"),
            app.sms.challenge,
            lambda: app.totp.verify("123456"),
            app.email_magic_link.check_verification_status,
            app.security_key.verify,
        ):
            response = call()
            assert (response.data, response.error_code) == (None, ErrorCode.TOKEN_NOT_SET)
    assert receiver.requests == []


def test_magic_link_polls_until_confirmed(client: AuthsignalSync, sent: Sent, api: FakeApi) -> None:
    started = time.monotonic()
    status = client.email_magic_link.check_verification_status(poll_interval=0.1)
    assert status.data == VerifyResponse(is_verified=True, token="after-link")
    assert api.polls == 3 and time.monotonic() - started >= 0.2
    assert client.token == "after-link"
    assert [sent.next().json() for _ in range(3)] == [{}, {}, {}]


def test_magic_link_poll_gives_up_after_the_timeout(client: AuthsignalSync, api: FakeApi) -> None:
    api.verified_after = 1000
    started = time.monotonic()
    status = client.email_magic_link.check_verification_status(poll_interval=0.1, timeout=0.5)
    assert status.data == VerifyResponse(is_verified=False)
    # Polls every 0.1 s and stops before the next poll would end past the timeout (a busy
    # machine's slow answers mean fewer polls, never a wait much past it).
    assert 0.1 <= time.monotonic() - started < 3
    assert 2 <= api.polls <= 6
    assert client.token == "tracked"


def test_security_key_sends_bare_webauthn_json(client: AuthsignalSync, sent: Sent) -> None:
    enrolled = client.security_key.enroll()
    assert enrolled.data is not None, enrolled
    assert (enrolled.data.token, enrolled.data.user_authenticator_id) == ("after-key", "ua-k")
    options, added = sent.next(), sent.next()
    assert options.path == "/v1/client/user-authenticators/security-key/registration-options"
    assert options.json() == {} and options.header("authorization") == "Bearer tracked"
    credential = added.json()
    assert added.path == "/v1/client/user-authenticators/security-key"
    assert added.header("authorization") == "Bearer tracked"
    assert "challengeId" not in credential and credential["type"] == "public-key"
    assert credential["authenticatorAttachment"] == "cross-platform"
    client_data = json.loads(
        base64.urlsafe_b64decode(credential["response"]["clientDataJSON"] + "==")
    )
    assert client_data["challenge"] == CHALLENGE and client_data["type"] == "webauthn.create"

    verified = client.security_key.verify()
    assert verified.data == VerifyResponse(is_verified=True, token="after-security-key")
    options, asserted = sent.next(), sent.next()
    assert options.path == "/v1/client/user-authenticators/security-key/authentication-options"
    assert options.header("authorization") == "Bearer after-key"
    assertion = asserted.json()
    assert asserted.path == "/v1/client/verify/security-key"
    assert "challengeId" not in assertion and assertion["id"] == credential["id"]
    assert client.token == "after-security-key"


def test_security_key_without_an_authenticator(receiver: HttpReceiver) -> None:
    with AuthsignalSync("tenant-1", f"{receiver.url}/v1") as app:
        app.set_token("tracked")
        response = app.security_key.enroll()
    assert (response.data, response.error_code) == (None, "passkeys_not_supported")
