"""Guessing codes across challenges: five wrong answers burn one code, but asking for a fresh
code must not buy fresh guesses without end. Wrong answers are also counted per user (or, for
a backend's code to no user, per address) across every code, and over the limit even the
right code is refused until the window passes."""

from __future__ import annotations

from passgate.server.services import otp as otp_service
from tests.live_server import LiveServer, Tenant
from tests.otp.helpers import OtpClient, new_email
from tests.otp.test_client_api import audit_actions, enrol_email


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_fresh_codes_do_not_buy_fresh_guesses(
    otp: OtpClient, server: LiveServer, tenant: Tenant
) -> None:
    per_user = otp_service.GUESS_LIMITS.per_user
    otp.set_limits(perDestination=0, perUser=0)
    email = new_email()
    enrol_email(otp, "guessed", email)
    sent = 1
    wrong_answers = 0
    # An attacker holding tokens for the user's actions: a fresh code after every five misses,
    # on a fresh action now and then.
    while wrong_answers < per_user:
        token = otp.token("guessed", "signIn")
        assert otp.challenge(token, "email-otp").status_code == 200
        sent += 1
        code = otp.email_code(email, count=sent)
        for _ in range(min(otp_service.MAX_ATTEMPTS, per_user - wrong_answers)):
            answer = otp.verify(token, "email-otp", _wrong(code)).json()
            assert answer["failureReason"] == "CODE_INVALID_OR_EXPIRED"
            wrong_answers += 1
    # Over the user's allowance: the next code is refused unchecked, even when right.
    token = otp.token("guessed", "signIn")
    assert otp.challenge(token, "email-otp").status_code == 200
    code = otp.email_code(email, count=sent + 1)
    refused = otp.verify(token, "email-otp", code).json()
    assert refused == {"isVerified": False, "failureReason": "MAX_ATTEMPTS_EXCEEDED"}
    assert audit_actions(server, tenant).count("security.rate_limited") == 1
    # Another user of the tenant is not affected.
    assert enrol_email(otp, "bystander", new_email())["isVerified"] is True


def test_a_right_answer_does_not_use_up_the_allowance(otp: OtpClient) -> None:
    otp.set_limits(perDestination=0, perUser=0)
    email = new_email()
    enrol_email(otp, "typist", email)
    sent = 1
    for _ in range(otp_service.GUESS_LIMITS.per_user + 1):
        token = otp.token("typist", "signIn")
        assert otp.challenge(token, "email-otp").status_code == 200
        sent += 1
        answer = otp.verify(token, "email-otp", otp.email_code(email, count=sent)).json()
        assert answer["isVerified"] is True


def test_a_backends_codes_to_one_address_are_limited_too(otp: OtpClient) -> None:
    """POST /challenge to an address with no user, then /verify: the address stands in."""
    otp.set_limits(perDestination=0, perUser=0)
    email = new_email()
    wrong_answers = 0
    sent = 0
    while True:
        started = otp.server("POST", "/challenge", json={"email": email, "action": "signUp"})
        assert started.status_code == 200, started.text
        sent += 1
        code = otp.email_code(email, count=sent)
        challenge_id = started.json()["challengeId"]
        if wrong_answers >= otp_service.GUESS_LIMITS.per_user:
            break
        for _ in range(min(otp_service.MAX_ATTEMPTS, otp_service.GUESS_LIMITS.per_user)):
            body = {"challengeId": challenge_id, "verificationCode": _wrong(code)}
            assert otp.server("POST", "/verify", json=body).json()["isVerified"] is False
            wrong_answers += 1
    body = {"challengeId": challenge_id, "verificationCode": code}
    refused = otp.server("POST", "/verify", json=body).json()
    assert refused["isVerified"] is False
    assert refused["failureReason"] == "MAX_ATTEMPTS_EXCEEDED"
