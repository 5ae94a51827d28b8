"""What the hosted challenge page offers besides passkeys and push (docs/recovery.md): the
fallback methods the tenant allows and the user has enrolled and verified, nothing else; an
email enrolled but never verified is not offered and cannot recover."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from passgate.authenticators import SoftwareAuthenticator
from tests.otp.helpers import ENROL_SCOPE, OtpClient, new_email, new_phone

OFFERED = re.compile(r'class="secondary fallback" data-method="([A-Z_]+)"')


def offered(app: OtpClient, user_id: str) -> list[str]:
    tracked = app.track(user_id, "signIn")
    assert tracked.status_code == 200, tracked.text
    page = httpx.get(tracked.json()["url"], timeout=10)
    assert page.status_code == 200, page.text
    return OFFERED.findall(page.text)


def test_only_verified_and_allowed_methods_are_offered(app: OtpClient, tmp_path: Path) -> None:
    user, email, phone = "vera", new_email(), new_phone()
    app.register_passkey(SoftwareAuthenticator(tmp_path / "phone.bin"), user)
    assert offered(app, user) == []

    # An email enrolled but never verified: not offered.
    scoped = app.token(user, "addEmail", scope=ENROL_SCOPE)
    assert app.enroll_email(scoped, email).status_code == 200
    assert offered(app, user) == []
    # Verified, it is; so is a verified phone, in the page's order.
    assert app.verify(scoped, "email-otp", app.email_code(email)).json()["isVerified"]
    scoped = app.token(user, "addPhone", scope=ENROL_SCOPE)
    assert app.enroll_sms(scoped, phone).status_code == 200
    assert app.verify(scoped, "sms", app.sms_code(phone)).json()["isVerified"]
    assert offered(app, user) == ["EMAIL_OTP", "SMS"]
    # A method the tenant no longer allows is not offered.
    app.allow_methods("PASSKEY", "PUSH", "SMS")
    assert offered(app, user) == ["SMS"]


def test_the_page_offers_try_another_way_only_beside_a_preferred_method(
    app: OtpClient,
) -> None:
    user, email = "wim", new_email()
    # Only a verified email (a backend enrolled it): the page shows it at once.
    added = app.server(
        "POST",
        f"/users/{user}/authenticators",
        json={"verificationMethod": "EMAIL_OTP", "email": email},
    )
    assert added.status_code == 200, added.text
    tracked = app.track(user, "signIn").json()
    page = httpx.get(tracked["url"], timeout=10).text
    assert OFFERED.findall(page) == ["EMAIL_OTP"]
    assert 'id="fallbacks" class="method" aria-labelledby="fallbacks-heading">' in page
    assert 'id="try-another"' not in page and 'id="lost-device"' not in page
    assert email[0] + "***@example.com" in page and email not in page  # masked
