"""How the console follows the server's settings: its relying party is the public URL's host,
its cookies are Secure when that URL is https, and PASSGATE_CONSOLE=false removes it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from passgate.server.services.admins.ceremonies import ConsoleUnavailable, admin_policy
from tests.console.helpers import Console, create_admin
from tests.live_server import LiveServer


def test_relying_party_is_the_public_urls_host() -> None:
    policy = admin_policy("https://Auth.Example.com:8443")
    assert policy.rp_id == "auth.example.com"
    assert policy.expected_origins == ("https://auth.example.com:8443",)
    assert policy.user_verification_required and policy.resident_key_required
    assert policy.attestation == "none"
    for unusable in (None, "http://127.0.0.1:8000", "http://[::1]:8000"):
        with pytest.raises(ConsoleUnavailable):
            admin_policy(unusable)


def test_https_public_url_makes_cookies_secure(tmp_path: Path) -> None:
    origin = "https://console.example.test"
    server = LiveServer(f"sqlite:///{tmp_path / 'https.db'}", public_url=origin).start()
    try:
        console = Console(server, tmp_path / "admin.bin", origin=origin)
        token = create_admin(server, "secure@example.com")
        started = console.http.post("/admin/enrol/options", json={"token": token})
        (binding,) = started.headers.get_list("set-cookie")
        assert "secure" in binding.lower()
        # httpx keeps Secure cookies for https; this loopback server is http, so by hand:
        body = started.json()
        enrolled = console.http.post(
            "/admin/enrol/finish",
            json={
                "challengeId": body["challengeId"],
                "credential": console.device.create(body["options"]),
            },
            headers={"Cookie": binding.split(";")[0]},
        )
        assert enrolled.status_code == 200, enrolled.text
        cookies = enrolled.headers.get_list("set-cookie")
        (session_cookie,) = [c for c in cookies if c.startswith("passgate_admin=")]
        flags = {part.strip().lower() for part in session_cookie.split(";")}
        assert {"secure", "httponly", "samesite=strict", "path=/admin"} <= flags
        # The console's origin is the public one, not the address the server listens on.
        local = console.http.post("/admin/sign-in/options", json={}, headers={"Origin": server.url})
        assert local.status_code == 403
        console.close()
    finally:
        server.stop()


def test_console_can_be_turned_off(tmp_path: Path) -> None:
    server = LiveServer(f"sqlite:///{tmp_path / 'off.db'}", console=False).start()
    try:
        for path in ("/admin/sign-in", "/admin/tenants", "/admin/enrol"):
            assert httpx.get(server.url + path).status_code == 404
        assert httpx.get(server.url + "/health").status_code == 200
    finally:
        server.stop()
