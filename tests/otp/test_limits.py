"""Sending codes is limited: per destination, per user, per client address and per tenant in
fixed windows, by a daily budget per tenant, and for SMS and WhatsApp to the tenant's allowed
country calling codes (SMS pumping). A refusal is 429 `too_many_requests` (400
`country_not_allowed` for a country), sends nothing, and is recorded in the audit log."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cli.test_cli import passgate
from tests.live_server import LiveServer, Tenant
from tests.otp.helpers import OtpClient, new_email, new_phone
from tests.otp.test_client_api import audit_actions, enrol_email


def test_codes_to_one_address_are_limited(
    otp: OtpClient, server: LiveServer, tenant: Tenant
) -> None:
    otp.set_limits(perDestination=3)
    email = new_email()
    enrol_email(otp, "ann", email)  # the first code
    token = otp.token("ann", "signIn")
    for _ in range(2):
        assert otp.challenge(token, "email-otp").status_code == 200
    refused = otp.challenge(token, "email-otp")
    assert refused.status_code == 429
    body = refused.json()
    assert body["errorCode"] == "too_many_requests"
    assert (
        "Too many codes sent to this address or number (at most 3 in 60 minutes)"
        in (body["errorDescription"])
    )
    assert otp.challenge(token, "email-otp").status_code == 429
    # Three messages went out, no more; the refusal is recorded once for the window.
    otp.email_code(email, count=3)
    assert len([m for m in otp.smtp.messages if email in m.rcpt_tos]) == 3
    assert audit_actions(server, tenant).count("security.otp.sends_limited") == 1


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({"perUser": 2, "perDestination": 0}, "Too many codes sent to this user"),
        ({"perIp": 2, "perDestination": 0}, "Too many codes asked for from this address"),
        ({"perTenant": 2, "perDestination": 0}, "Too many codes sent for this tenant"),
    ],
)
def test_per_user_address_and_tenant_limits(
    otp: OtpClient, limits: dict[str, int], expected: str
) -> None:
    otp.set_limits(**limits)
    token = otp.token("bob", "signUp")
    assert otp.enroll_email(token, new_email()).status_code == 200
    assert otp.enroll_email(token, new_email()).status_code == 200
    refused = otp.enroll_email(token, new_email())
    assert refused.status_code == 429, refused.text
    assert refused.json()["errorDescription"].startswith(expected)


def test_the_daily_budget_stops_every_send(otp: OtpClient) -> None:
    otp.set_limits(dailyBudget=2)
    for user in ("cy", "di"):
        token = otp.token(user, "signUp")
        assert otp.enroll_email(token, new_email()).status_code == 200
    token = otp.token("ed", "signUp")
    refused = otp.enroll_sms(token, new_phone())
    assert refused.status_code == 429
    assert "daily budget of 2 codes is spent" in refused.json()["errorDescription"]
    # Nothing of the refused call stays but its count: no authenticator was added.
    assert otp.server("GET", "/users/ed").json()["isEnrolled"] is False


def test_refused_sends_do_not_spend_the_other_limits(otp: OtpClient) -> None:
    otp.set_limits(perDestination=1, dailyBudget=2)
    email = new_email()
    enrol_email(otp, "gwen", email)  # one of the day's two
    token = otp.token("gwen", "signIn")
    for _ in range(3):
        refused = otp.challenge(token, "email-otp")
        assert "this address or number" in refused.json()["errorDescription"]
    token = otp.token("hugh", "signUp")
    assert otp.enroll_email(token, new_email()).status_code == 200  # the second
    token = otp.token("iris", "signUp")
    assert "daily budget" in otp.enroll_email(token, new_email()).json()["errorDescription"]


def test_sms_goes_only_to_allowed_countries(otp: OtpClient) -> None:
    phone = new_phone()
    token = otp.token("fe", "signUp")
    assert otp.enroll_sms(token, phone).status_code == 200
    assert otp.verify(token, "sms", otp.sms_code(phone)).json()["isVerified"] is True

    otp.allow_countries("+1", "44")
    token = otp.token("fe", "signIn", scope="add:authenticators")
    refused = otp.enroll_sms(token, new_phone())
    assert refused.status_code == 400
    assert refused.json()["errorCode"] == "country_not_allowed"
    assert "+64" in refused.json()["errorDescription"]
    # A number enrolled before the list changed gets no more codes either, by SMS or WhatsApp.
    for kind in ("sms", "whatsapp"):
        assert otp.challenge(token, kind).json()["errorCode"] == "country_not_allowed"
    assert len(otp.sms_requests(phone)) == 1
    # An allowed country's number is fine.
    assert otp.enroll_sms(token, "+12015550123").status_code == 200


def test_operators_set_limits_and_methods_with_the_cli(
    otp: OtpClient, tenant: Tenant, database_url: str
) -> None:
    def cli(*args: str) -> dict[str, Any]:
        ran = passgate("tenant", *args, tenant.id, "--database-url", database_url, "--json")
        assert ran.returncode == 0, ran.stderr
        return dict(json.loads(ran.stdout))

    shown = cli("otp-limits")["otpLimits"]
    assert shown["dailyBudget"] == 1000 and shown["perDestination"] == 5
    assert cli("otp-limits", "--per-destination", "1")["otpLimits"]["perDestination"] == 1
    email = new_email()
    token = otp.token("gil", "signUp")
    assert otp.enroll_email(token, email).status_code == 200
    assert otp.challenge(token, "email-otp").status_code == 429

    allowed = cli("methods", "--allow", "passkey", "--allow", "SMS")
    assert allowed["allowedVerificationMethods"] == ["PASSKEY", "SMS"]
    assert otp.challenge(token, "email-otp").json()["errorCode"] == "method_not_allowed"
    back = cli("methods", "--default")["allowedVerificationMethods"]
    assert "EMAIL_OTP" in back and "PUSH" in back
    refused = passgate(
        "tenant", "methods", tenant.id, "--allow", "FAX", "--database-url", database_url
    )
    assert refused.returncode != 0 and "unknown verification method 'FAX'" in refused.stderr
