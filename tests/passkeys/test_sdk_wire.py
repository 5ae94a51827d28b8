"""What the SDK's passkey calls put on the wire (docs/wire.md#passkey-routes, #flows), seen
through a mock transport: the same paths, bodies and auth as Authsignal's mobile SDKs, so the
SDK also works against Authsignal's hosted API."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from passgate import Authsignal, AuthsignalSync, ErrorCode
from passgate.authenticators import SoftwareAuthenticator
from passgate.server.services import relying_party
from tests.passkeys.test_vectors import policy

TENANT = "tenant-1"
BASIC = "Basic " + base64.b64encode(b"tenant-1:").decode()


class FakeApi:
    """Answers like the Client API, recording every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.rp = policy("example.com", ["https://example.com"])

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/v1/client")
        if path.endswith("/registration-options"):
            options = relying_party.registration_options(
                self.rp,
                challenge=b"r" * 32,
                user_handle="3f1c2a9e-6b7d-4e21-9c0a-5d8e7f6a1b2c",
                username="alice",
                display_name="Alice",
                exclude_credential_ids=[],
            )
            return httpx.Response(200, json={"challengeId": "c-reg", "options": options})
        if path.endswith("/authentication-options"):
            options = relying_party.authentication_options(
                self.rp, challenge=b"a" * 32, allow_credential_ids=[]
            )
            return httpx.Response(200, json={"challengeId": "c-auth", "options": options})
        if path == "/challenge":
            return httpx.Response(200, json={"challengeId": "c-action"})
        if path == "/user-authenticators/passkey" and request.method == "GET":
            return httpx.Response(
                400, json={"error": "invalid_credential", "errorCode": "invalid_credential"}
            )
        return httpx.Response(
            200, json={"isVerified": True, "accessToken": "next-token", "userId": "alice"}
        )

    def seen(self) -> list[tuple[str, str, str | None, Any]]:
        return [
            (
                r.method,
                r.url.path.removeprefix("/v1/client"),
                r.headers.get("authorization"),
                json.loads(r.content) if r.content else None,
            )
            for r in self.requests
        ]


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def device(tmp_path: Path) -> SoftwareAuthenticator:
    return SoftwareAuthenticator(tmp_path / "d.bin")


def client(api: FakeApi, device: SoftwareAuthenticator) -> AuthsignalSync:
    return AuthsignalSync(
        TENANT,
        "https://api.example.test/v1",
        passkey_authenticator=device,
        device_id="device-1",
        transport=httpx.MockTransport(api),
    )


def test_sign_up_sends_what_the_mobile_sdks_send(
    api: FakeApi, device: SoftwareAuthenticator
) -> None:
    app = client(api, device)
    result = app.passkey.sign_up("track-token", "alice", "Alice")
    assert result.data is not None and result.data.token == "next-token"
    (options_call, add_call) = api.seen()
    assert options_call == (
        "POST",
        "/user-authenticators/passkey/registration-options",
        "Bearer track-token",
        {"username": "alice", "displayName": "Alice"},
    )
    assert add_call[:3] == ("POST", "/user-authenticators/passkey", "Bearer track-token")
    assert set(add_call[3]) == {"challengeId", "registrationCredential", "deviceId"}
    assert add_call[3]["deviceId"] == "device-1"
    assert app.token == "next-token"  # cached as the next Bearer token, as the SDKs do
    for request in api.requests:
        assert request.headers["x-authsignal-tenant-id"] == TENANT
    app.close()


def test_sign_in_variants(api: FakeApi, device: SoftwareAuthenticator) -> None:
    app = client(api, device)
    app.passkey.sign_up("track-token")
    api.requests.clear()
    fresh = client(api, device)
    assert fresh.passkey.sign_in().data is not None  # discoverable: Basic, {}
    assert fresh.passkey.sign_in(action="pay").data is not None  # C1 first, Basic
    assert fresh.passkey.sign_in(token="t").data is not None  # Bearer given token
    calls = [(method, path, auth, body) for method, path, auth, body in api.seen()]
    assert calls[0] == (
        "POST",
        "/user-authenticators/passkey/authentication-options",
        BASIC,
        {},
    )
    assert calls[1][:3] == ("POST", "/verify/passkey", BASIC)
    assert calls[2] == ("POST", "/challenge", BASIC, {"action": "pay"})
    assert calls[3][3] == {"challengeId": "c-action"}
    assert calls[5][2] == "Bearer t"
    fresh.close()
    app.close()


def test_errors_come_back_as_values(api: FakeApi, tmp_path: Path) -> None:
    no_token = client(api, SoftwareAuthenticator(tmp_path / "n.bin"))
    result = no_token.passkey.sign_up()
    assert (result.data, result.error_code) == (None, ErrorCode.TOKEN_NOT_SET)
    nothing_here = no_token.passkey.sign_in()
    assert nothing_here.error_code == "no_credential"
    no_token.close()
    without = AuthsignalSync(TENANT, transport=httpx.MockTransport(api))
    assert without.passkey.sign_in().error_code == "passkeys_not_supported"
    without.close()


def test_should_prompt_when_the_server_does_not_know_the_passkey(
    api: FakeApi, device: SoftwareAuthenticator
) -> None:
    app = client(api, device)
    assert app.passkey.should_prompt_to_create_passkey().data is True  # nothing local
    app.passkey.sign_up("track-token")
    assert app.passkey.should_prompt_to_create_passkey().data is True  # invalid_credential
    method, path, auth, _body = api.seen()[-1]
    assert (method, path, auth) == ("GET", "/user-authenticators/passkey", BASIC)
    assert app.passkey.is_available_on_device().data is False
    app.close()


async def test_async_twin(api: FakeApi, device: SoftwareAuthenticator) -> None:
    async with Authsignal(
        TENANT, passkey_authenticator=device, transport=httpx.MockTransport(api)
    ) as app:
        assert (await app.passkey.sign_up("track-token")).data is not None
        assert api.requests[0].url.host == "api.authsignal.com"  # the default base URL
