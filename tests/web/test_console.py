"""The admin console in a real browser (Debian's chromium, CDP virtual authenticator): the
first admin bootstrapped from the link `passgate admin create` prints, a tenant created and
configured (an origin, an Android app with the assetlinks preview, a key rotation), a user
found and their passkey deleted, a second admin passkey, signing out and in.

Screenshots of the main pages go to docs/img/console-*.png with
PASSGATE_UPDATE_SCREENSHOTS=1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from authsignal.client import ApiException, AuthsignalClient

from passgate.authenticators import SoftwareAuthenticator
from tests.browser import add_virtual_authenticator, require_chromium
from tests.live_server import LiveServer
from tests.passkeys.helpers import Ceremony
from tests.web.conftest import BrowserTab
from tests.web.screenshots import screenshot

require_chromium()

FINGERPRINT = ":".join(["3C"] * 32)
ONE_PASSWORD = "bada5566-a7aa-401f-bd96-45619a55120d"


def admin_link(web_server: LiveServer, email: str) -> str:
    """Run `passgate admin create` as an operator does and take the link it prints."""
    created = subprocess.run(
        [sys.executable, "-m", "passgate.cli", "admin", "create", "--email", email],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PASSGATE_DATABASE_URL": web_server.database_url,
            "PASSGATE_PUBLIC_URL": web_server.public_url,
            "PATH": "/usr/bin:/bin",
        },
    )
    assert created.returncode == 0, created.stderr
    link = created.stdout.splitlines()[1]
    assert link.startswith(web_server.public_url + "/admin/enrol?token=")
    return link


def bootstrap(web_server: LiveServer, tab: BrowserTab, email: str, *, shoot: bool = False) -> Any:
    page = tab.page
    page.goto(admin_link(web_server, email))
    assert email in page.locator("main").inner_text()
    if shoot:
        screenshot(page, "console-enrol")
    page.get_by_role("button", name="Create a passkey").click()
    page.wait_for_url("**/admin/account?enrolled=1")
    assert len(tab.credentials()) == 1
    return page


def key_works(web_server: LiveServer, secret_key: str) -> bool:
    client = AuthsignalClient(api_secret_key=secret_key, api_url=web_server.api_url)
    try:
        client.get_user("nobody")
    except ApiException as exc:
        assert exc.status_code == 401
        return False
    finally:
        client.session.close()
    return True


def test_bootstrap_then_create_and_configure_a_tenant(
    web_server: LiveServer, tab: BrowserTab
) -> None:
    page = bootstrap(web_server, tab, "first@example.com", shoot=True)

    # Create a tenant: its secret key is shown once.
    page.get_by_role("link", name="Tenants").click()
    page.get_by_label("Name").fill("Console Shop")
    page.get_by_label("Relying party id").fill("localhost")
    page.get_by_role("button", name="Create tenant").click()
    old_key = page.locator("#secret-key").inner_text()
    assert old_key.startswith("pg_sk_") and key_works(web_server, old_key)
    screenshot(page, "console-tenant-created")
    page.get_by_role("link", name="Go to its settings").click()

    # Add an origin; a bad one first is refused inline and nothing is saved.
    origins = page.get_by_label("Origins, one per line")
    origins.fill("https://localhost\nhttps://shop.localhost\nshop.localhost/path")
    page.locator("#relying_party").get_by_role("button", name="Save").click()
    assert "is not an origin" in page.get_by_role("alert").inner_text()
    page.get_by_label("Origins, one per line").fill("https://localhost\nhttps://shop.localhost")
    page.locator("#relying_party").get_by_role("button", name="Save").click()
    assert page.get_by_role("status").inner_text() == "Saved."
    assert "https://shop.localhost" in page.get_by_label("Origins, one per line").input_value()
    screenshot(page, "console-tenant")

    # An Android app: the preview shows assetlinks.json changing before it is saved.
    page.get_by_role("link", name="Apps").click()
    page.get_by_label("Android apps").fill(f"com.example.shop {FINGERPRINT}")
    page.get_by_role("button", name="Preview").click()
    proposed = page.locator('pre[data-file="assetlinks.json"][data-version="proposed"]')
    assert "com.example.shop" in proposed.inner_text()
    current = page.locator('pre[data-file="assetlinks.json"][data-version="current"]')
    assert current.inner_text().strip() == "[]"
    screenshot(page, "console-apps-preview")
    page.get_by_role("button", name="Save").click()
    assert page.get_by_role("status").inner_text() == "Saved."
    assert "com.example.shop" in page.locator('pre[data-file="assetlinks.json"]').inner_text()

    # Rotate the secret key, keeping the old one for an hour.
    page.get_by_role("link", name="Keys").click()
    page.get_by_label("Keep the old one working for").first.select_option(label="1 hour")
    page.get_by_role("button", name="Rotate the secret key").click()
    new_key = page.locator("#new-secret").inner_text()
    assert new_key != old_key
    assert key_works(web_server, new_key) and key_works(web_server, old_key)
    screenshot(page, "console-key-rotated")

    page.get_by_role("link", name="Activity").first.click()
    assert "tenant.secret_key.rotated" in page.locator("table.audit").inner_text()

    # Sign out; the console needs a passkey again.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/admin/sign-in?signed_out=1")
    screenshot(page, "console-sign-in")
    page.goto(web_server.public_url + "/admin/tenants")
    page.wait_for_url("**/admin/sign-in?next=**")
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url(web_server.public_url + "/admin/tenants")
    assert "Console Shop" in page.locator("main").inner_text()
    page.set_viewport_size({"width": 360, "height": 740})
    screenshot(page, "console-tenants-360")


def test_find_a_user_and_delete_their_passkey(
    web_server: LiveServer, tab: BrowserTab, tmp_path: Path
) -> None:
    tenant = web_server.create_tenant(name="Users shop")
    backend = AuthsignalClient(api_secret_key=tenant.secret_key, api_url=web_server.api_url)
    backend.update_user("alice-42", {"email": "alice@example.com"})
    device = SoftwareAuthenticator(tmp_path / "alice.bin")
    device.device.vault.aaguid = ONE_PASSWORD.replace("-", "")
    ceremony = Ceremony(web_server.api_url, tenant.id, backend)
    ceremony.register(device, "alice-42")
    for _ in range(3):
        challenge_id, assertion = ceremony.assertion(device)
        assert ceremony.verify(challenge_id, assertion).status_code == 200
    ceremony.close()
    backend.track("alice-42", "checkout", {"custom": {"basket": 3}})

    page = bootstrap(web_server, tab, "support@example.com")
    page.goto(f"{web_server.public_url}/admin/tenants/{tenant.id}/users")
    page.get_by_label("User id (or its start), email, username or phone number").fill(
        "alice@example.com"
    )
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="alice-42").click()
    row = page.locator("tr[data-passkey]")
    assert "1Password" in row.inner_text()
    assert row.locator("img.icon").get_attribute("src", timeout=2000).startswith("data:image/")
    assert "checkout" in page.locator("main").inner_text()
    screenshot(page, "console-user")

    row.get_by_label("Name").fill("Alice's laptop")
    row.get_by_role("button", name="Rename").click()
    assert "Alice's laptop" in page.locator("tr[data-passkey]").inner_text()
    page.locator("tr[data-passkey]").get_by_role("button", name="Delete").click()
    assert page.get_by_text("No passkeys.").is_visible()
    assert backend.get_authenticators("alice-42") == []
    backend.session.close()

    page.get_by_role("link", name="Activity").last.click()
    assert page.locator('[data-total="sign-ins"]').inner_text() == "4"  # sign-up and 3 sign-ins
    assert "user.passkey.deleted" in page.locator("table.audit").inner_text()
    screenshot(page, "console-activity")


def test_a_second_admin_passkey_signs_in(web_server: LiveServer, tab: BrowserTab) -> None:
    page = bootstrap(web_server, tab, "two-devices@example.com")
    # Another device: this browser's first authenticator is gone, a new one is here.
    tab.cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": tab.authenticator_id})
    tab.authenticator_id = add_virtual_authenticator(tab.cdp)
    page.get_by_role("button", name="Add a passkey").click()
    page.wait_for_url("**/admin/account?added=1")
    assert page.locator("#passkeys-title + table tbody tr").count() == 2
    screenshot(page, "console-account")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/admin/sign-in?signed_out=1")
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url(web_server.public_url + "/admin/tenants")
    assert len(tab.credentials()) == 1  # signed in with the second passkey alone
