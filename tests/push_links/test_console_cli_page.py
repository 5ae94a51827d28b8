"""Push enrolment links shown as QR codes: an admin makes one on the console's user page
(audited) and `passgate device enroll --link`, a real process, enrols this computer with it
against the real server; a second computer, and an expired link, are refused. The hosted page
shows one to a user whose token may add an authenticator."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from authsignal.client import AuthsignalClient

from passgate import AuthsignalSync
from passgate.authenticators import DeviceKeyStore, SoftwareAuthenticator
from tests.console.helpers import Console, audit_events, enrolled_console
from tests.live_server import LiveServer, Tenant
from tests.passkeys.helpers import Ceremony, bearer
from tests.push_links.helpers import expired_link, server_link

PASSGATE = [sys.executable, "-m", "passgate.cli"]
LINK = re.compile(r'id="push-link-url" readonly value="([^"]+)"')


@pytest.fixture
def console(server: LiveServer, tmp_path: Path) -> Iterator[Console]:
    made = enrolled_console(server, tmp_path, f"links-{tmp_path.name}@example.com")
    yield made
    made.close()


def enroll(link: str, key_file: Path) -> subprocess.CompletedProcess[str]:
    """`passgate device enroll --link` with nothing else: the link names the API and tenant."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSGATE_")}
    return subprocess.run(
        [*PASSGATE, "device", "enroll", "--link", link, "--key-file", str(key_file)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "PASSGATE_DEVICE_PASSPHRASE": "hunter2"},
    )


def shown_link(page: httpx.Response) -> str:
    found = LINK.search(page.text)
    assert found, page.text
    return html.unescape(found.group(1))


def test_console_link_enrols_this_computer_once(
    server: LiveServer,
    console: Console,
    tenant: Tenant,
    authsignal: AuthsignalClient,
    tmp_path: Path,
) -> None:
    user_id = "desk user&1"
    base = f"/admin/tenants/{tenant.id}"
    page = console.post(base + "/user/push-enrolment-link", {"user_id": user_id})
    assert page.status_code == 200, page.text
    assert '<svg width="' in page.text and 'class="segno"' in page.text
    link = shown_link(page)
    assert link.startswith(f"{server.public_url}/push-enrolment#token=")
    assert f"passgate device enroll --link '{link}'" in page.text
    # Shown once: the user's page does not show it again.
    assert "push-link-url" not in console.get(base + "/user", id=user_id).text

    enrolled = enroll(link, tmp_path / "desk.pem")
    assert enrolled.returncode == 0, enrolled.stderr
    assert user_id in enrolled.stdout and f"{server.public_url}/v1" in enrolled.stdout
    assert "ENCRYPTED" in (tmp_path / "desk.pem").read_text()
    again = enroll(link, tmp_path / "laptop.pem")
    assert again.returncode == 1
    assert "already enrolled a device" in again.stdout + again.stderr
    methods = [a["verification_method"] for a in authsignal.get_authenticators(user_id)]
    assert methods == ["PUSH"]
    assert "No push devices." not in console.get(base + "/user", id=user_id).text

    events = audit_events(server, tenant_id=tenant.id, action_prefix="user.")
    made = [e for e in events if e.action == "user.push_link.created"]
    assert [(e.actor_type, e.actor_id, e.target_id) for e in made] == [
        ("admin", console.email, user_id)
    ]
    added = [e for e in events if e.action == "user.authenticator.added"]
    assert [e.target_id for e in added] == [user_id]


def test_cli_refuses_an_expired_or_malformed_link(
    server: LiveServer, tenant: Tenant, tmp_path: Path
) -> None:
    late = expired_link(server, tenant, server_link(server, tenant, "late"))
    refused = enroll(late, tmp_path / "late.pem")
    assert refused.returncode == 1 and "expired" in refused.stdout
    bad = enroll("https://example.com/somewhere", tmp_path / "bad.pem")
    assert bad.returncode == 2 and "Not a push enrolment link" in bad.stderr
    assert not (tmp_path / "late.pem").exists() and not (tmp_path / "bad.pem").exists()


def test_the_hosted_page_shows_a_link_to_a_user_who_may_add_one(
    server: LiveServer, tenant: Tenant, authsignal: AuthsignalClient, tmp_path: Path
) -> None:
    first = authsignal.track("page-user", "enrol")["token"]
    with httpx.Client(base_url=server.url, timeout=10) as http:
        landing = http.get("/push-enrolment")
        assert landing.status_code == 200 and "passgate device enroll --link" in landing.text
        offered = http.get("/push-enrolment/new", params={"token": first})
        assert offered.status_code == 200 and 'id="show-push-link"' in offered.text
        shown = http.post("/push-enrolment/new", data={"token": first})
        assert shown.status_code == 200, shown.text
        assert shown.headers["cache-control"] == "no-store"
        assert 'class="segno"' in shown.text
        again = http.post("/push-enrolment/new", data={"token": first})
        assert again.status_code == 403 and "already added an authenticator" in again.text
        enrolled = enroll(shown_link(shown), tmp_path / "phone.pem")
        assert enrolled.returncode == 0, enrolled.stderr
        # Now enrolled: a token without the scope may not add another, so no offer.
        unscoped = authsignal.track("page-user", "signIn")["token"]
        refused = http.get("/push-enrolment/new", params={"token": unscoped})
        assert refused.status_code == 403 and "add:authenticators" in refused.text
        forged = http.get("/push-enrolment/new", params={"token": "a.b.c"})
        assert forged.status_code == 401
    made = audit_events(server, tenant_id=tenant.id, action_prefix="user.push_link.")
    assert [(e.actor_type, e.target_id) for e in made] == [("user", "page-user")]


def test_after_a_successful_challenge_the_hosted_page_offers_a_link(
    server: LiveServer,
    tenant: Tenant,
    authsignal: AuthsignalClient,
    ceremony: Ceremony,
    tmp_path: Path,
) -> None:
    passkey = SoftwareAuthenticator(tmp_path / "passkey.bin")
    ceremony.register(passkey, "verified-user")
    tracked = authsignal.track("verified-user", "signIn")["token"]
    with httpx.Client(base_url=server.url, timeout=10) as http:
        before = http.get("/push-enrolment/new", params={"token": tracked})
        assert before.status_code == 403  # enrolled, no scope, nothing verified yet
        started = ceremony.http.post(
            "/client/user-authenticators/passkey/authentication-options",
            headers=bearer(tracked),
            json={},
        )
        assert started.status_code == 200, started.text
        verified = ceremony.http.post(
            "/client/verify/passkey",
            headers=bearer(tracked),
            json={
                "challengeId": started.json()["challengeId"],
                "authenticationCredential": passkey.get(started.json()["options"]),
            },
        )
        assert verified.json()["isVerified"] is True, verified.text
        token = verified.json()["accessToken"]
        assert http.get("/push-enrolment/new", params={"token": token}).status_code == 200
        shown = http.post("/push-enrolment/new", data={"token": token})
        assert shown.status_code == 200, shown.text
    with AuthsignalSync(
        tenant.id, server.api_url, device_keys=DeviceKeyStore(tmp_path / "phone.pem")
    ) as phone:
        assert phone.push.add_credential(link=shown_link(shown)).ok
    methods = sorted(
        a["verification_method"] for a in authsignal.get_authenticators("verified-user")
    )
    assert methods == ["PASSKEY", "PUSH"]
