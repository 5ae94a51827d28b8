"""The hosted challenge page's other ways in a real browser (docs/recovery.md): a user whose
passkey was on a phone she lost clicks "I lost my device", gets a code by email (a real SMTP
server on loopback), enrols a passkey in this browser with the token the code earned, returns
to the app, and then removes the lost phone's passkey on the page a `remove:authenticators`
token opens. "Try another way" offers the same methods without the new passkey. A recovery
code recovers too once the tenant lists RECOVERY_CODE among its recovery methods, with a new
passkey or, instead, a push device from the QR code the page opens in a new tab."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from authsignal.client import AuthsignalClient

from passgate import AuthsignalSync
from passgate.authenticators import DeviceKeyStore, SoftwareAuthenticator
from passgate.server.services import audit, recovery, tenants
from passgate.server.services.enums import ActionOutcome
from passgate.server.store.db import Db
from tests.browser import require_chromium
from tests.live_server import LiveServer, Tenant
from tests.receivers import SmtpReceiver, use_smtp
from tests.tenant_client import TenantClient
from tests.web.conftest import AppSite, BrowserTab

require_chromium()


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture
def shop(web_server: LiveServer, web_tenant: Tenant, smtp: SmtpReceiver) -> Iterator[TenantClient]:
    """The web tenant, sending email through the loopback SMTP server."""
    use_smtp(web_server, web_tenant.id, smtp)
    with TenantClient(web_server.api_url, web_tenant) as client:
        yield client


def returned_token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def user_with_lost_phone(
    shop: TenantClient, app_site: AppSite, tmp_path: Path, user_id: str, email: str
) -> str:
    """A passkey on a phone (not this browser) and a verified email: the passkey's id."""
    phone = SoftwareAuthenticator(tmp_path / f"{user_id}.bin", origin=app_site.origin)
    passkey = shop.register_passkey(phone, user_id)
    added = shop.server(
        "POST",
        f"/users/{user_id}/authenticators",
        json={"verificationMethod": "EMAIL_OTP", "email": email},
    )
    assert added.status_code == 200, added.text
    return passkey.authenticator_id


def test_i_lost_my_device_recovers_with_an_email_code_and_a_new_passkey(
    tab: BrowserTab,
    app_site: AppSite,
    backend: AuthsignalClient,
    web_server: LiveServer,
    web_tenant: Tenant,
    shop: TenantClient,
    smtp: SmtpReceiver,
    tmp_path: Path,
) -> None:
    page = tab.page
    back = app_site.url("/return.html")
    lost = user_with_lost_phone(shop, app_site, tmp_path, "hp-rita", "rita@example.com")

    tracked = backend.track("hp-rita", "signIn", {"redirectUrl": back})
    page.goto(tracked["url"])
    assert page.locator("#fallbacks").is_hidden()
    page.get_by_role("button", name="I lost my device").click()
    page.get_by_role("button", name="Email me a code").click()
    code = smtp.wait(to="rita@example.com").code
    assert code is not None
    page.get_by_label("Enter the code we emailed you").fill("000000" if code != "000000" else "1")
    page.get_by_role("button", name="Confirm").click()
    page.get_by_text("That code is wrong or has expired").wait_for()
    page.get_by_label("Enter the code we emailed you").fill(code)
    page.get_by_role("button", name="Confirm").click()
    # Recovered: a passkey in this browser before going back.
    page.locator("#recover-enrol").wait_for()
    page.get_by_role("button", name="Create a passkey").click()
    page.wait_for_url(f"{back}?token=*")
    validated = backend.validate_challenge({"token": returned_token(page.url)})
    assert validated["is_valid"] and validated["verification_method"] == "EMAIL_OTP"
    assert len(tab.credentials()) == 1
    passkeys = [
        a for a in backend.get_authenticators("hp-rita") if a["verification_method"] == "PASSKEY"
    ]
    assert len(passkeys) == 2

    # The backend lets her remove the lost phone's passkey on the page.
    async def allow(db: Db) -> None:
        await tenants.set_action_outcome(db, web_tenant.id, "manageDevices", ActionOutcome.ALLOW)

    web_server.run(allow)
    manage = backend.track(
        "hp-rita", "manageDevices", {"scope": "remove:authenticators", "redirectUrl": back}
    )
    page.goto(manage["url"])
    assert page.locator("#authenticators li[data-id]").count() == 3
    page.locator(f'li[data-id="{lost}"] button.remove').click()
    page.get_by_text("Removed.").wait_for()
    assert page.locator(f'li[data-id="{lost}"]').count() == 0
    remaining = {a["user_authenticator_id"] for a in backend.get_authenticators("hp-rita")}
    assert lost not in remaining and len(remaining) == 2
    page.get_by_role("button", name="Done").click()
    page.wait_for_url(f"{back}?token=*")


def test_try_another_way_signs_in_with_an_email_code(
    tab: BrowserTab,
    app_site: AppSite,
    backend: AuthsignalClient,
    shop: TenantClient,
    smtp: SmtpReceiver,
    tmp_path: Path,
) -> None:
    page = tab.page
    back = app_site.url("/return.html")
    user_with_lost_phone(shop, app_site, tmp_path, "hp-sven", "sven@example.com")

    tracked = backend.track("hp-sven", "signIn", {"redirectUrl": back, "locale": "de"})
    page.goto(tracked["url"])
    page.get_by_role("button", name="Anders bestätigen").click()
    page.get_by_role("button", name="Code per E-Mail senden").click()
    code = smtp.wait(to="sven@example.com").code
    assert code is not None
    page.locator("#code-input").fill(code)
    page.get_by_role("button", name="Bestätigen").click()
    # Not "I lost my device": no new passkey, straight back to the app.
    page.wait_for_url(f"{back}?token=*")
    validated = backend.validate_challenge({"token": returned_token(page.url)})
    assert validated["is_valid"] and validated["verification_method"] == "EMAIL_OTP"
    assert tab.credentials() == []


def test_a_recovery_code_recovers_when_the_tenant_lists_it(
    tab: BrowserTab,
    app_site: AppSite,
    backend: AuthsignalClient,
    web_server: LiveServer,
    web_tenant: Tenant,
    shop: TenantClient,
    tmp_path: Path,
) -> None:
    page = tab.page
    back = app_site.url("/return.html")
    phone = SoftwareAuthenticator(tmp_path / "hp-tom.bin", origin=app_site.origin)
    shop.register_passkey(phone, "hp-tom")
    issued = shop.server(
        "POST", "/users/hp-tom/authenticators", json={"verificationMethod": "RECOVERY_CODE"}
    )
    assert issued.status_code == 200, issued.text
    codes = issued.json()["recoveryCodes"]

    async def recover_with_codes(db: Db) -> None:
        await recovery.set_methods(db, audit.cli_actor(), web_tenant.id, ["RECOVERY_CODE"])

    web_server.run(recover_with_codes)
    tracked = backend.track("hp-tom", "signIn", {"redirectUrl": back})
    page.goto(tracked["url"])
    # Only the methods she has: no email, so no email code.
    page.get_by_role("button", name="I lost my device").click()
    assert page.locator("button.fallback").all_inner_texts() == ["Use a recovery code"]
    page.get_by_role("button", name="Use a recovery code").click()
    page.get_by_label("Enter one of your recovery codes").fill(codes[0])
    page.get_by_role("button", name="Confirm").click()
    page.locator("#recover-enrol").wait_for()
    page.get_by_role("button", name="Create a passkey").click()
    page.wait_for_url(f"{back}?token=*")
    validated = backend.validate_challenge({"token": returned_token(page.url)})
    assert validated["verification_method"] == "RECOVERY_CODE"
    assert len(tab.credentials()) == 1


def test_a_remove_token_that_needs_a_challenge_lists_after_it(
    tab: BrowserTab,
    app_site: AppSite,
    backend: AuthsignalClient,
    shop: TenantClient,
    tmp_path: Path,
) -> None:
    """The backend asks the user to confirm before removing: the list comes after the
    passkey, and its removals use the token the passkey answered."""
    page = tab.page
    back = app_site.url("/return.html")
    lost = user_with_lost_phone(shop, app_site, tmp_path, "hp-uli", "uli@example.com")
    # A passkey in this browser too (a scoped token adds it).
    enrol = backend.track("hp-uli", "addPasskey", {"scope": "add:authenticators"})
    page.goto(enrol["url"])
    page.get_by_role("button", name="Create a passkey").click()
    page.get_by_text("You can close this page").wait_for()

    manage = backend.track(
        "hp-uli", "manageDevices", {"scope": "remove:authenticators", "redirectUrl": back}
    )
    assert manage["state"] == "CHALLENGE_REQUIRED"
    # Not yet confirmed: the token removes nothing.
    early = shop.client("DELETE", f"/user-authenticators/{lost}", token=manage["token"])
    assert early.status_code == 403 and "needs a challenge" in early.json()["errorDescription"]
    page.goto(manage["url"])
    assert page.locator("#manage").is_hidden()
    page.get_by_role("button", name="Continue with a passkey").click()
    page.locator("#manage").wait_for()
    page.locator(f'li[data-id="{lost}"] button.remove').click()
    page.get_by_text("Removed.").wait_for()
    page.get_by_role("button", name="Done").click()
    page.wait_for_url(f"{back}?token=*")
    validated = backend.validate_challenge({"token": returned_token(page.url)})
    assert validated["is_valid"] and validated["verification_method"] == "PASSKEY"
    remaining = {a["user_authenticator_id"] for a in backend.get_authenticators("hp-uli")}
    assert lost not in remaining and len(remaining) == 2


def test_a_push_device_instead_of_a_passkey_then_done(
    tab: BrowserTab,
    app_site: AppSite,
    backend: AuthsignalClient,
    web_server: LiveServer,
    web_tenant: Tenant,
    shop: TenantClient,
    tmp_path: Path,
) -> None:
    """After a recovery code: "Add a push device instead" opens the QR code in a new tab
    (the recovery's token in a form, never a URL); the new phone enrols from it; Done on the
    page the app opened goes back to the app with the same token."""
    page = tab.page
    back = app_site.url("/return.html")
    phone = SoftwareAuthenticator(tmp_path / "hp-vic.bin", origin=app_site.origin)
    shop.register_passkey(phone, "hp-vic")
    issued = shop.server(
        "POST", "/users/hp-vic/authenticators", json={"verificationMethod": "RECOVERY_CODE"}
    )
    assert issued.status_code == 200, issued.text

    async def recover_with_codes(db: Db) -> None:
        await recovery.set_methods(db, audit.cli_actor(), web_tenant.id, ["RECOVERY_CODE"])

    web_server.run(recover_with_codes)
    tracked = backend.track("hp-vic", "signIn", {"redirectUrl": back})
    page.goto(tracked["url"])
    page.get_by_role("button", name="I lost my device").click()
    page.get_by_role("button", name="Use a recovery code").click()
    page.get_by_label("Enter one of your recovery codes").fill(issued.json()["recoveryCodes"][0])
    page.get_by_role("button", name="Confirm").click()
    page.locator("#recover-enrol").wait_for()
    with page.context.expect_page() as opened:
        page.get_by_role("button", name="Add a push device instead").click()
    qr_page = opened.value
    qr_page.locator("#push-link-qr svg").wait_for()
    assert "token=" not in qr_page.url
    link = qr_page.locator("#push-link-url").input_value()
    # The leave went to the link: no passkey offered any more, only Done.
    assert page.locator("#recover-passkey").is_hidden()
    assert page.locator("#recover-push-form").is_hidden()
    with AuthsignalSync(
        web_tenant.id, web_server.api_url, device_keys=DeviceKeyStore(tmp_path / "vic.pem")
    ) as new_phone:
        assert new_phone.push.add_credential(link=link).ok
    qr_page.close()
    page.get_by_role("button", name="Done").click()
    page.wait_for_url(f"{back}?token=*")
    validated = backend.validate_challenge({"token": returned_token(page.url)})
    assert validated["is_valid"] and validated["verification_method"] == "RECOVERY_CODE"
    methods = sorted(a["verification_method"] for a in backend.get_authenticators("hp-vic"))
    assert methods == ["PASSKEY", "PUSH", "RECOVERY_CODE"]
