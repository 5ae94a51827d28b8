"""The SDK's public surface: one flat namespace, a blocking twin that is really generated."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest

import passgate
from passgate import Authsignal, AuthsignalSync, ErrorCode, Region

ROOT = Path(__file__).resolve().parents[2]


def test_exported_members() -> None:
    public = {
        name
        for name in dir(passgate)
        if not name.startswith("_") and not isinstance(getattr(passgate, name), ModuleType)
    }
    assert set(passgate.__all__) == public | {"__version__"}
    assert repr(Authsignal).startswith("<class 'passgate.Authsignal")
    assert "DeviceKeys" in passgate.__all__  # the protocol `device_keys=` stores implement


def test_sync_twin_is_generated_from_async_source() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/generate_sync.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_regions() -> None:
    assert Region.US == passgate.DEFAULT_BASE_URL == "https://api.authsignal.com/v1"
    assert Region.EU == "https://eu.api.authsignal.com/v1"


def test_unreachable_server_is_a_network_error_not_an_exception() -> None:
    from passgate.sdk._protocol import ApiRequest, basic_auth

    client = AuthsignalSync("tenant", base_url="http://127.0.0.1:9/v1", timeout=2)
    request = ApiRequest(method="GET", path="/client/x", authorization=basic_auth("tenant"))
    response = client._api.call(request, dict)
    client.close()
    assert response.data is None
    assert response.error_code == ErrorCode.NETWORK_ERROR


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (
            401,
            b'{"error":"unauthorized","errorCode":"expired_token","errorDescription":"Gone"}',
            "Gone",
            "expired_token",
        ),
        (400, b'{"error":"invalid_credential"}', "invalid_credential", "invalid_credential"),
        (
            404,
            b"Not Found",
            "API endpoint not found. Ensure your Authsignal base URL is valid.",
            "api_error",
        ),
        (500, b"", "Unexpected response (HTTP 500).", "api_error"),
        (201, b"{}", "Unexpected response (HTTP 201).", "api_error"),
    ],
)
def test_error_bodies_read_as_the_mobile_sdks_read_them(
    status: int, body: bytes, error: str, code: str
) -> None:
    from passgate.sdk._protocol import parse_response

    response = parse_response(status, body, dict)
    assert (response.data, response.error, response.error_code) == (None, error, code)


async def test_async_client_sends_the_identity_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    from passgate.sdk._protocol import ApiRequest

    async with Authsignal(
        "tenant-1", "https://example.test/v1", transport=httpx.MockTransport(handler)
    ) as client:
        request = ApiRequest(
            method="POST", path="/client/challenge", authorization=client._authorization(), body={}
        )
        response = await client._api.call(request, dict)
    assert response.data == {"ok": True}
    headers = seen[0].headers
    assert headers["authorization"] == "Basic dGVuYW50LTE6"  # base64("tenant-1:")
    assert headers["x-authsignal-tenant-id"] == "tenant-1"
    assert headers["x-authsignal-sdk"] == "python"
    assert str(seen[0].url) == "https://example.test/v1/client/challenge"
