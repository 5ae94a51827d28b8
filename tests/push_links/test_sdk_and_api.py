"""Push enrolment links made by a backend (Server API) and by the user's own token (Client
API), consumed by the Python SDK with the ordinary enrolment call: one device per link, never
after it expires, and the link's token refused everywhere but that call."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from authsignal.client import AuthsignalClient

from passgate import AuthsignalSync, read_push_link
from passgate.authenticators import DeviceKeyStore
from tests.console.helpers import audit_events
from tests.live_server import LiveServer, Tenant
from tests.push_links.helpers import expired_link, server_link

P2 = "/client/user-authenticators/push"


def device(server: LiveServer, tenant: Tenant, path: Path) -> AuthsignalSync:
    return AuthsignalSync(tenant.id, server.api_url, device_keys=DeviceKeyStore(path))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_backend_link_enrols_one_device(
    server: LiveServer, tenant: Tenant, authsignal: AuthsignalClient, tmp_path: Path
) -> None:
    # The user already has a device: the link's scope lets it add another.
    first = authsignal.track("link-user", "enrol", {"scope": "add:authenticators"})["token"]
    with device(server, tenant, tmp_path / "old.pem") as old:
        assert old.push.add_credential(first).ok
    link = server_link(server, tenant, "link-user")
    assert link["url"] == f"{server.public_url}/push-enrolment#token={link['token']}"
    assert link["userId"] == "link-user"
    assert link["qrCodeSvg"].startswith("<svg") and 'class="segno"' in link["qrCodeSvg"]
    read = read_push_link(link["url"])
    assert (read.tenant_id, read.user_id, read.base_url) == (
        tenant.id,
        "link-user",
        f"{server.public_url}/v1",
    )
    assert read.expires_at == link["expiresAt"] and not read.expired

    with device(server, tenant, tmp_path / "phone.pem") as phone:
        added = phone.push.add_credential(link=link["url"], device_name="phone")
        assert added.data is not None, added.error
        assert added.data.user_id == "link-user"
        # The same device again: its credential, renewed; the link is not spent again.
        assert phone.push.add_credential(link=link["url"]).ok
    with device(server, tenant, tmp_path / "second.pem") as second:
        refused = second.push.add_credential(link=link["url"])
    assert refused.data is None and refused.error_code == "forbidden"
    assert refused.error is not None and "already enrolled a device" in refused.error
    methods = [a["verification_method"] for a in authsignal.get_authenticators("link-user")]
    assert methods == ["PUSH", "PUSH"]
    created = audit_events(server, tenant_id=tenant.id, action_prefix="user.push_link.")
    assert [(e.actor_type, e.target_id) for e in created] == [("api", "link-user")]


def test_an_expired_link_is_refused(
    server: LiveServer, tenant: Tenant, authsignal: AuthsignalClient, tmp_path: Path
) -> None:
    link = server_link(server, tenant, "late-user")
    late = expired_link(server, tenant, link)
    with device(server, tenant, tmp_path / "phone.pem") as phone:
        refused = phone.push.add_credential(link=late)
    assert refused.error_code == "expired_token" and refused.error is not None
    assert "expired" in refused.error
    # Sent anyway (as a native SDK would): the server refuses it.
    token = read_push_link(late).token
    with httpx.Client(base_url=server.api_url, timeout=10) as http:
        sent = http.post(P2, json={"publicKey": "x"}, headers=bearer(token))
    assert sent.status_code == 401 and sent.json()["errorCode"] == "expired_token"
    assert authsignal.get_authenticators("late-user") == []


def test_a_link_for_another_tenant_or_malformed_is_refused_by_the_sdk(
    server: LiveServer, tenant: Tenant, other_tenant: Tenant, tmp_path: Path
) -> None:
    link = server_link(server, other_tenant, "someone")
    with device(server, tenant, tmp_path / "phone.pem") as phone:
        other = phone.push.add_credential(link=link["url"])
        assert other.error_code == "token_invalid" and other_tenant.id in str(other.error)
        for bad in ("https://example.com/push-enrolment", "https://x/elsewhere#token=a.b.c", "x"):
            assert phone.push.add_credential(link=bad).error_code == "token_invalid", bad
    assert not (tmp_path / "phone.pem").exists()  # refused before a key was made


def test_the_link_token_serves_only_push_enrolment(
    server: LiveServer, tenant: Tenant, authsignal: AuthsignalClient
) -> None:
    link = server_link(server, tenant, "confined-user")
    token = link["token"]
    confined = "only for enrolling one push device"
    # Every Client API route (a passkey's C2/C3 and their /web twins, an email's or any other
    # method's enrolment, challenges, the user's list) refuses it; only P2 takes it.
    paths = server.app.openapi()["paths"]
    swept = [
        (method.upper(), path.removeprefix("/v1"))
        for path, methods in paths.items()
        if path.startswith("/v1/client/") and "{" not in path
        for method in methods
        if (method.upper(), path) != ("POST", f"/v1{P2}")
    ]
    assert ("POST", "/client/user-authenticators/passkey") in swept
    assert ("POST", "/client/user-authenticators/passkey/registration-options/web") in swept
    with httpx.Client(base_url=server.api_url, timeout=10) as http:
        for method, path in swept:
            body = {"email": "a@example.com", "publicKey": "x"}
            sent = http.request(method, path, json=body, headers=bearer(token))
            assert sent.status_code == 403, (method, path, sent.text)
            assert confined in sent.json()["errorDescription"], (method, path)
        # The backend cannot redeem it, and the hosted page does not open for it.
        validated = http.post("/validate", json={"token": token}, auth=(tenant.secret_key, ""))
        assert validated.status_code == 403 and confined in validated.json()["errorDescription"]
    page = httpx.get(f"{server.url}/challenge", params={"token": token}, timeout=10)
    assert page.status_code == 403
    assert authsignal.get_authenticators("confined-user") == []


def test_the_users_own_token_makes_a_link_once(
    server: LiveServer, tenant: Tenant, authsignal: AuthsignalClient, tmp_path: Path
) -> None:
    with device(server, tenant, tmp_path / "old.pem") as old:
        first = authsignal.track("own-user", "enrol")["token"]
        assert old.push.add_credential(first).ok  # no authenticator yet: any token
    unscoped = authsignal.track("own-user", "signIn")["token"]
    scoped = authsignal.track("own-user", "addDevice", {"scope": "add:authenticators"})["token"]
    with httpx.Client(base_url=server.api_url, timeout=10) as http:
        refused = http.post("/client/push-enrolment-links", headers=bearer(unscoped))
        assert refused.status_code == 403 and "add:authenticators" in refused.text
        made = http.post("/client/push-enrolment-links", headers=bearer(scoped))
        assert made.status_code == 200, made.text
        again = http.post("/client/push-enrolment-links", headers=bearer(scoped))
        assert again.status_code == 403  # the token's one authenticator is the link's now
        passkey = http.post(
            "/client/user-authenticators/passkey/registration-options",
            json={"username": "own"},
            headers=bearer(scoped),
        )
        assert passkey.status_code == 403
    with device(server, tenant, tmp_path / "phone.pem") as phone:
        assert phone.push.add_credential(link=made.json()["url"]).ok
    assert len(authsignal.get_authenticators("own-user")) == 2
    created = audit_events(server, tenant_id=tenant.id, action_prefix="user.push_link.")
    assert [(e.actor_type, e.actor_id) for e in created] == [("user", "own-user")]


@pytest.mark.parametrize("prefix", ["", "/passgate"])
def test_read_push_link_finds_the_api_beside_the_page(prefix: str) -> None:
    claims = {"sub": "u-1", "exp": 1_000_000, "other": {"tenantId": "t-1", "userId": "u-1"}}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    token = f"eyJhbGciOiJFUzI1NiJ9.{payload}.c2ln"
    found = read_push_link(f"https://auth.example{prefix}/push-enrolment#token={token}")
    assert found.base_url == f"https://auth.example{prefix}/v1"
    assert (found.tenant_id, found.user_id) == ("t-1", "u-1")
    assert found.expired
