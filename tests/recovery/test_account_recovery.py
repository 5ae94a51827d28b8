"""Account recovery end to end, on a real server with a real SMTP server and SMS webhook on
loopback (docs/recovery.md): a user who lost both the phone holding their passkey and their
push device signs in with an email code, enrols a new passkey with the token that verify
answered (EMAIL_OTP is a recovery method by default), is told by email, removes the lost
devices with a token scoped `remove:authenticators`, and the backend sees every step in the
action history and the audit log. A method the tenant did not make a recovery method (SMS
here) signs the user in but adds nothing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from passgate.authenticators import SoftwareAuthenticator
from passgate.server.services import audit, recovery, tenants
from passgate.server.services.enums import ActionOutcome
from passgate.server.store.db import Db
from tests.live_server import LiveServer, Tenant
from tests.otp.helpers import ENROL_SCOPE, OtpClient, new_email, new_phone
from tests.tenant_client import new_device_key

REMOVE_SCOPE = "remove:authenticators"


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, dict)
    return body


def new_passkey(app: OtpClient, device: SoftwareAuthenticator, token: str) -> httpx.Response:
    """C2 then C3 with `token`; the refusal of whichever step refused."""
    options = app.registration_options(token)
    if options.status_code != 200:
        return options
    body = options.json()
    return app.add_passkey(token, body["challengeId"], device.create(body["options"]))


def events(app: OtpClient, user_id: str) -> list[dict[str, Any]]:
    """The user's audit events, oldest first (as the backend reads them)."""
    listed = ok(app.server("GET", "/audit-events", params={"limit": 200}))["events"]
    return [event for event in reversed(listed) if event.get("targetId") == user_id]


def test_a_user_who_lost_every_device_recovers_with_an_email_code(
    server: LiveServer, tenant: Tenant, app: OtpClient, tmp_path: Path
) -> None:
    user, email = "rosa", new_email()
    # Before: a passkey on her phone, the phone as a push device, and a verified email.
    lost_phone = SoftwareAuthenticator(tmp_path / "lost-phone.bin")
    old_passkey = app.register_passkey(lost_phone, user)
    old_device = app.add_device(new_device_key(), user)
    scoped = app.token(user, "addEmail", scope=ENROL_SCOPE)
    ok(app.enroll_email(scoped, email))
    assert ok(app.verify(scoped, "email-otp", app.email_code(email, 1)))["isVerified"]

    # The phone is gone. She signs in on a new laptop with a code sent to her email.
    tracked = ok(app.track(user, "signIn"))
    assert tracked["state"] == "CHALLENGE_REQUIRED"
    ok(app.challenge(tracked["token"], "email-otp"))
    verified = ok(app.verify(tracked["token"], "email-otp", app.email_code(email, 2)))
    assert verified["isVerified"] is True
    access_token = verified["accessToken"]

    # With that token she enrols a passkey on the laptop: EMAIL_OTP is a recovery method.
    laptop = SoftwareAuthenticator(tmp_path / "laptop.bin")
    added = ok(new_passkey(app, laptop, access_token))
    new_passkey_id = added["userAuthenticatorId"]
    refused = new_passkey(app, SoftwareAuthenticator(tmp_path / "second.bin"), access_token)
    assert refused.status_code == 403  # the token's leave is used up

    # The sign-in itself is still the backend's to redeem, as verified by email.
    validated = ok(app.validate(access_token))
    assert validated["isValid"] is True and validated["verificationMethod"] == "EMAIL_OTP"

    # She is told: recovery used, new sign-in method added (sent in either order).
    notices = [app.smtp.wait(to=email, count=count) for count in (3, 4)]
    recovered_mail = next(m for m in notices if "recovered" in m.subject)
    added_mail = next(m for m in notices if m is not recovered_mail)
    assert "recovery method" in recovered_mail.text and "EMAIL_OTP" in recovered_mail.text
    assert "new sign-in method" in added_mail.subject
    assert new_passkey_id in added_mail.text and "PASSKEY" in added_mail.text

    # Her backend lets her remove the lost devices: a token scoped remove:authenticators
    # (its action allowed at once, as the backend decides after the recovery).
    async def allow(db: Db) -> None:
        await tenants.set_action_outcome(db, tenant.id, "manageDevices", ActionOutcome.ALLOW)

    server.run(allow)
    manage = ok(app.track(user, "manageDevices", scope=REMOVE_SCOPE))
    assert manage["state"] == "ALLOW"
    page = httpx.get(manage["url"], timeout=10)
    assert page.status_code == 200, page.text
    listed = set(re.findall(r'<li data-id="([0-9a-f-]{36})"', page.text))
    assert {old_passkey.authenticator_id, old_device.authenticator_id, new_passkey_id} <= listed
    # Without the scope, or for an authenticator that is not hers, nothing is removed.
    unscoped = app.token(user, "signIn")
    path = f"/user-authenticators/{old_passkey.authenticator_id}"
    assert app.client("DELETE", path, token=unscoped).status_code == 403
    waiting = ok(app.track(user, "confirmFirst", scope=REMOVE_SCOPE))
    assert waiting["state"] == "CHALLENGE_REQUIRED"  # until she confirms, it removes nothing
    assert app.client("DELETE", path, token=waiting["token"]).status_code == 403
    other = app.token("someone-else", "manageDevices", scope=REMOVE_SCOPE)
    assert app.client("DELETE", path, token=other).status_code == 404
    for lost in (old_passkey.authenticator_id, old_device.authenticator_id):
        removed = ok(app.client("DELETE", f"/user-authenticators/{lost}", token=manage["token"]))
        assert removed["removedAuthenticatorId"] == lost
    remaining = {a["verificationMethod"]: a for a in ok_list(app, user)}
    assert set(remaining) == {"PASSKEY", "EMAIL_OTP"}
    assert remaining["PASSKEY"]["userAuthenticatorId"] == new_passkey_id
    # The lost phone's passkey no longer signs in; the laptop's does.
    assert app.sign_in(lost_phone).status_code != 200
    assert app.sign_in(laptop).status_code == 200

    # The backend sees every step: the actions, with how each was verified ...
    history = ok_actions(app, user)
    sign_in = next(a for a in history if a["idempotencyKey"] == tracked["idempotencyKey"])
    assert sign_in["state"] == "CHALLENGE_SUCCEEDED"
    assert sign_in["verificationMethod"] == "EMAIL_OTP"
    assert any(a["idempotencyKey"] == manage["idempotencyKey"] for a in history)
    # ... and the audit log, in order.
    steps = [
        (e["action"], (e.get("details") or {}).get("verificationMethod")) for e in events(app, user)
    ]
    recovery_at = steps.index((recovery.USED, "EMAIL_OTP"))
    assert steps[recovery_at - 1 : recovery_at + 1] == [
        (audit.PASSKEY_ADDED, "PASSKEY"),
        (recovery.USED, "EMAIL_OTP"),
    ] or steps[recovery_at : recovery_at + 2] == [
        (recovery.USED, "EMAIL_OTP"),
        (audit.PASSKEY_ADDED, "PASSKEY"),
    ]
    assert steps[-2:] == [(audit.PASSKEY_DELETED, "PASSKEY"), (audit.AUTHENTICATOR_DELETED, "PUSH")]
    used = next(e for e in events(app, user) if e["action"] == recovery.USED)
    assert used["details"]["authenticatorId"] == new_passkey_id
    assert used["details"]["idempotencyKey"] == tracked["idempotencyKey"]
    assert used["actorType"] == "user" and used["actorId"] == user


def ok_list(app: OtpClient, user_id: str) -> list[dict[str, Any]]:
    response = app.server("GET", f"/users/{user_id}/authenticators")
    assert response.status_code == 200, response.text
    return list(response.json())


def ok_actions(app: OtpClient, user_id: str) -> list[dict[str, Any]]:
    response = app.server("GET", f"/users/{user_id}/actions")
    assert response.status_code == 200, response.text
    return list(response.json())


def test_a_method_that_is_not_a_recovery_method_adds_nothing(
    server: LiveServer, tenant: Tenant, app: OtpClient, tmp_path: Path
) -> None:
    user, phone = "sami", new_phone()
    app.register_passkey(SoftwareAuthenticator(tmp_path / "phone.bin"), user)
    scoped = app.token(user, "addPhone", scope=ENROL_SCOPE)
    ok(app.enroll_sms(scoped, phone))
    assert ok(app.verify(scoped, "sms", app.sms_code(phone, 1)))["isVerified"]

    # The tenant's recovery methods are the default, EMAIL_OTP: an SMS code signs in ...
    tracked = ok(app.track(user, "signIn"))
    ok(app.challenge(tracked["token"], "sms"))
    verified = ok(app.verify(tracked["token"], "sms", app.sms_code(phone, 2)))
    assert verified["isVerified"] is True
    # ... and adds no passkey.
    refused = new_passkey(app, SoftwareAuthenticator(tmp_path / "new.bin"), verified["accessToken"])
    assert refused.status_code == 403, refused.text
    assert refused.json()["errorCode"] == "forbidden"
    assert "recovery methods" in refused.json()["errorDescription"]
    assert [a["verificationMethod"] for a in ok_list(app, user)].count("PASSKEY") == 1
    assert all(e["action"] != recovery.USED for e in events(app, user))

    # Once the tenant makes SMS a recovery method, the same kind of sign-in recovers.
    async def allow_sms(db: Db) -> None:
        await recovery.set_methods(db, audit.cli_actor(), tenant.id, ["EMAIL_OTP", "SMS"])

    server.run(allow_sms)
    tracked = ok(app.track(user, "signIn"))
    ok(app.challenge(tracked["token"], "sms"))
    verified = ok(app.verify(tracked["token"], "sms", app.sms_code(phone, 3)))
    ok(new_passkey(app, SoftwareAuthenticator(tmp_path / "again.bin"), verified["accessToken"]))
    used = [e["details"] for e in events(app, user) if e["action"] == recovery.USED]
    assert [details["verificationMethod"] for details in used] == ["SMS"]
