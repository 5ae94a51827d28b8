"""An address's case does not make it another destination for the limits: mail servers treat
`Ann@example.com` and `ann@example.com` as one mailbox, so neither the codes sent to it nor
the wrong answers to them start afresh under a new spelling."""

from __future__ import annotations

from passgate.server.services import otp as otp_service
from tests.otp.helpers import OtpClient, new_email


def test_codes_to_one_mailbox_in_any_case_are_limited(otp: OtpClient) -> None:
    otp.set_limits(perDestination=2)
    email = new_email()
    for spelling in (email, email.upper()):
        started = otp.server("POST", "/challenge", json={"email": spelling, "action": "signUp"})
        assert started.status_code == 200, started.text
    local, _, domain = email.partition("@")
    third = f"{local.capitalize()}@{domain}"
    refused = otp.server("POST", "/challenge", json={"email": third, "action": "signUp"})
    assert refused.status_code == 429, refused.text
    assert "this address or number" in refused.json()["errorDescription"]


def test_wrong_answers_to_one_mailbox_in_any_case_are_limited(otp: OtpClient) -> None:
    otp.set_limits(perDestination=0)
    email = new_email()
    wrong_answers = 0
    for spelling in (email, email.upper()):
        started = otp.server("POST", "/challenge", json={"email": spelling, "action": "signUp"})
        assert started.status_code == 200, started.text
        # A wrong guess for certain where the code can be read (the first spelling's).
        code = otp.email_code(email) if spelling == email else None
        guess = "111111" if code == "000000" else "000000"
        for _ in range(otp_service.MAX_ATTEMPTS):
            body = {"challengeId": started.json()["challengeId"], "verificationCode": guess}
            assert otp.server("POST", "/verify", json=body).json()["isVerified"] is False
            wrong_answers += 1
    assert wrong_answers == otp_service.GUESS_LIMITS.per_user
    started = otp.server(
        "POST", "/challenge", json={"email": email.capitalize(), "action": "signUp"}
    )
    assert started.status_code == 200, started.text
    challenge_id = started.json()["challengeId"]
    body = {"challengeId": challenge_id, "verificationCode": "000000"}
    refused = otp.server("POST", "/verify", json=body).json()
    assert refused["isVerified"] is False
    assert refused["failureReason"] == "MAX_ATTEMPTS_EXCEEDED"
