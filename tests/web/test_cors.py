"""CORS on the wire: the Client API answers the origins its tenants list and no others; the
Server API answers no browser at all."""

from __future__ import annotations

import base64

import httpx
import pytest
from authsignal.client import AuthsignalClient

from tests.live_server import LiveServer, Tenant

APP = "http://localhost:5173"
ELSEWHERE = "https://evil.example"
OPTIONS_PATH = "/client/user-authenticators/passkey/registration-options"


def basic(tenant_id: str) -> dict[str, str]:
    """As @authsignal/browser sends it: btoa(encodeURIComponent(tenantId)), no colon."""
    return {"Authorization": "Basic " + base64.b64encode(tenant_id.encode()).decode()}


def preflight(server: LiveServer, path: str, origin: str) -> httpx.Response:
    return httpx.options(
        server.api_url + path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )


@pytest.fixture
def web_tenant(server: LiveServer) -> Tenant:
    return server.create_tenant(name="web app", origins=[APP])


def test_preflight_is_answered_for_a_listed_origin(server: LiveServer, web_tenant: Tenant) -> None:
    answered = preflight(server, OPTIONS_PATH, APP)
    assert answered.status_code == 200
    assert answered.headers["access-control-allow-origin"] == APP
    assert "POST" in answered.headers["access-control-allow-methods"]
    allowed = answered.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert int(answered.headers["access-control-max-age"]) > 0
    assert "origin" in answered.headers["vary"].lower()
    # Not a cookie route: no credentials.
    assert "access-control-allow-credentials" not in answered.headers


def test_preflight_of_a_cookie_route_allows_credentials(
    server: LiveServer, web_tenant: Tenant
) -> None:
    for path in (
        "/client/challenge/web",
        "/client/user-authenticators/passkey/registration-options/web",
        "/client/user-authenticators/passkey/authentication-options/web",
        "/client/user-authenticators/passkey",
        "/client/user-authenticators/passkey/authentication-options",
        "/client/verify/passkey",
    ):
        answered = preflight(server, path, APP)
        assert answered.headers.get("access-control-allow-credentials") == "true", path


def test_an_origin_no_tenant_lists_gets_no_cors_headers(
    server: LiveServer, web_tenant: Tenant
) -> None:
    refused = preflight(server, OPTIONS_PATH, ELSEWHERE)
    assert refused.status_code == 403
    assert refused.json()["errorCode"] == "forbidden"
    assert not [name for name in refused.headers if name.startswith("access-control-")]
    real = httpx.post(
        server.api_url + "/client/challenge",
        json={"action": "signIn"},
        headers={"Origin": ELSEWHERE, **basic(web_tenant.id)},
    )
    assert real.status_code == 200
    assert "access-control-allow-origin" not in real.headers
    assert "origin" in real.headers["vary"].lower()


def test_an_origin_added_later_is_answered_at_once(server: LiveServer, tenant: Tenant) -> None:
    later = "https://later.localhost"
    assert preflight(server, OPTIONS_PATH, later).status_code == 403
    server.update_tenant(tenant.id, add_origins=[later])
    assert preflight(server, OPTIONS_PATH, later).status_code == 200
    server.update_tenant(tenant.id, remove_origins=[later])
    assert preflight(server, OPTIONS_PATH, later).status_code == 403


def test_real_requests_are_allowed_only_for_the_authenticating_tenant(
    server: LiveServer, web_tenant: Tenant, other_tenant: Tenant
) -> None:
    own = httpx.post(
        server.api_url + "/client/challenge",
        json={"action": "signIn"},
        headers={"Origin": APP, **basic(web_tenant.id)},
    )
    assert own.status_code == 200
    assert own.headers["access-control-allow-origin"] == APP
    # Another tenant that does not list the app's origin: the browser may not read it.
    other = httpx.post(
        server.api_url + "/client/challenge",
        json={"action": "signIn"},
        headers={"Origin": APP, **basic(other_tenant.id)},
    )
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers


def test_errors_carry_the_headers_so_the_sdk_sees_the_error_code(
    server: LiveServer, web_tenant: Tenant
) -> None:
    authsignal = AuthsignalClient(api_secret_key=web_tenant.secret_key, api_url=server.api_url)
    token = authsignal.track("cors-user", "signIn")["token"]
    authsignal.session.close()
    expired = server.expired_token(web_tenant.id, "cors-user")
    for bearer, code in ((expired, "expired_token"), (token + "x", "invalid_token")):
        refused = httpx.post(
            server.api_url + OPTIONS_PATH,
            json={},
            headers={"Origin": APP, "Authorization": f"Bearer {bearer}"},
        )
        assert refused.status_code == 401
        assert refused.json()["errorCode"] == code
        assert refused.headers["access-control-allow-origin"] == APP
    bad_body = httpx.post(
        server.api_url + "/client/verify/passkey",
        json={"challengeId": 5},
        headers={"Origin": APP, **basic(web_tenant.id)},
    )
    assert bad_body.status_code == 400
    assert bad_body.headers["access-control-allow-origin"] == APP
    assert bad_body.headers["access-control-allow-credentials"] == "true"


def test_the_server_api_never_answers_a_browser(server: LiveServer, web_tenant: Tenant) -> None:
    for path in ("/users/someone", "/validate", "/users/someone/actions/signIn"):
        answered = preflight(server, path, APP)
        assert not [name for name in answered.headers if name.startswith("access-control-")]
    real = httpx.get(
        server.api_url + "/users/someone",
        auth=(web_tenant.secret_key, ""),
        headers={"Origin": APP},
    )
    assert real.status_code == 200
    assert not [name for name in real.headers if name.startswith("access-control-")]
