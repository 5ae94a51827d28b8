"""The push enrolment pages in the hosted pages' languages, and the hosted challenge page's
offer of a push device after a recovery (docs/recovery.md): its form leads to the push
enrolment page with the recovery's access token, whose QR code enrols a device with the SDK,
and the same token still signs the user in."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import httpx
from authsignal.client import AuthsignalClient

from passgate import AuthsignalSync
from passgate.authenticators import DeviceKeyStore, SoftwareAuthenticator
from passgate.server.services import audit, recovery, users
from passgate.server.store.db import Db
from tests.live_server import LiveServer, Tenant
from tests.passkeys.helpers import Ceremony, bearer

LINK = re.compile(r'id="push-link-url" readonly value="([^"]+)"')
DATA = re.compile(r'<script type="application/json" id="challenge-data">(.*?)</script>', re.S)
PUSH_FORM = re.compile(
    r'<form id="recover-push-form" method="post" action="([^"]+)" target="_blank"'
)
GERMAN = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}


def shown_link(page: httpx.Response) -> str:
    found = LINK.search(page.text)
    assert found, page.text
    return html.unescape(found.group(1))


def script_data(page: httpx.Response) -> dict[str, Any]:
    found = DATA.search(page.text)
    assert found, page.text
    return dict(json.loads(html.unescape(found.group(1))))


def test_the_push_enrolment_pages_speak_german(
    server: LiveServer, authsignal: AuthsignalClient
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        landing = http.get("/push-enrolment", headers=GERMAN)
        assert landing.status_code == 200
        assert '<html lang="de">' in landing.text and "Push-Gerät hinzufügen" in landing.text
        assert "passgate device enroll --link" in landing.text
        assert '<html lang="en">' in http.get("/push-enrolment").text

        token = authsignal.track("de-user", "enrol")["token"]
        offered = http.get("/push-enrolment/new", params={"token": token}, headers=GERMAN)
        assert offered.status_code == 200 and "QR-Code anzeigen" in offered.text
        shown = http.post("/push-enrolment/new", data={"token": token}, headers=GERMAN)
        assert shown.status_code == 200 and "Läuft ab um" in shown.text
        assert "Sobald Ihr Gerät hinzugefügt ist" in shown.text
        # The leave is spent: refused in German, the server's reason below.
        again = http.post("/push-enrolment/new", data={"token": token}, headers=GERMAN)
        assert again.status_code == 403
        assert "kann jetzt kein Push-Gerät hinzugefügt werden" in again.text
        assert "already added an authenticator" in again.text
        forged = http.get("/push-enrolment/new", params={"token": "a.b.c"}, headers=GERMAN)
        assert forged.status_code == 401 and "ungültig oder abgelaufen" in forged.text

        # The track's locale comes before the browser's languages.
        french = authsignal.track("fr-user", "enrol", {"locale": "fr-CA"})["token"]
        page = http.get("/push-enrolment/new", params={"token": french}, headers=GERMAN)
        assert '<html lang="fr">' in page.text and "Afficher le QR code" in page.text


def test_after_a_recovery_the_challenge_page_offers_a_push_device(
    server: LiveServer,
    tenant: Tenant,
    authsignal: AuthsignalClient,
    ceremony: Ceremony,
    tmp_path: Path,
) -> None:
    user_id = "lost-phone"
    ceremony.register(SoftwareAuthenticator(tmp_path / "lost.bin"), user_id)
    with httpx.Client(base_url=server.api_url, auth=(tenant.secret_key, ""), timeout=10) as api:
        issued = api.post(
            f"/users/{user_id}/authenticators", json={"verificationMethod": "RECOVERY_CODE"}
        )
    assert issued.status_code == 200, issued.text
    codes = issued.json()["recoveryCodes"]

    async def recover_with_codes(db: Db) -> None:
        await recovery.set_methods(db, audit.cli_actor(), tenant.id, ["RECOVERY_CODE"])

    server.run(recover_with_codes)
    tracked = authsignal.track(user_id, "signIn")
    with httpx.Client(base_url=server.url, timeout=10) as http:
        page = http.get(tracked["url"].removeprefix(server.public_url))
        assert page.status_code == 200, page.text
        form = PUSH_FORM.search(page.text)
        assert form is not None and form.group(1) == "/push-enrolment/new"
        assert "Add a push device instead" in page.text
        data = script_data(page)
        assert data["pushEnrolment"] is True and data["recoveryMethods"] == ["RECOVERY_CODE"]

        # What the page's script does: verify the code, then POST the form with its token.
        verified = ceremony.http.post(
            "/client/verify/recovery-code",
            headers=bearer(tracked["token"]),
            json={"verificationCode": codes[0]},
        )
        assert verified.json()["isVerified"] is True, verified.text
        token = verified.json()["accessToken"]
        shown = http.post(form.group(1), data={"token": token})
        assert shown.status_code == 200, shown.text
        # The token's leave is spent on the link: no second link, no passkey with it.
        assert http.post(form.group(1), data={"token": token}).status_code == 403
        passkey = ceremony.http.post(
            "/client/user-authenticators/passkey/registration-options",
            headers=bearer(token),
            json={},
        )
        assert passkey.status_code == 403, passkey.text
    with AuthsignalSync(
        tenant.id, server.api_url, device_keys=DeviceKeyStore(tmp_path / "new-phone.pem")
    ) as phone:
        assert phone.push.add_credential(link=shown_link(shown)).ok
    methods = sorted(a["verification_method"] for a in authsignal.get_authenticators(user_id))
    assert methods == ["PASSKEY", "PUSH", "RECOVERY_CODE"]
    # Done hands the same token back to the app: it still signs the user in.
    validated = authsignal.validate_challenge({"token": token})
    assert validated["is_valid"] and validated["verification_method"] == "RECOVERY_CODE"

    # A tenant that does not allow push is not offered it.
    async def no_push(db: Db) -> None:
        await users.set_allowed_methods(db, tenant.id, ["PASSKEY", "RECOVERY_CODE"])

    server.run(no_push)
    again = authsignal.track(user_id, "signIn")
    with httpx.Client(base_url=server.url, timeout=10) as http:
        page = http.get(again["url"].removeprefix(server.public_url))
    assert page.status_code == 200, page.text
    assert 'id="recover-push-form"' not in page.text
    assert script_data(page)["pushEnrolment"] is False
