"""A backend's own one-time codes (POST /challenge, /verify, /claim, GET /challenges, as
Authsignal's Node SDK calls them) against a real server, the codes read from real receivers;
and the pruner removing expired challenges."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from passgate.cli import main
from passgate.server.store.db import Db
from passgate.server.store.tables import OtpChallenge, utcnow
from tests.live_server import LiveServer
from tests.otp.helpers import OtpClient, new_email, new_phone


def test_email_challenge_verify_and_claim(otp: OtpClient) -> None:
    email = new_email()
    started = otp.server(
        "POST",
        "/challenge",
        json={"verificationMethod": "EMAIL_OTP", "email": email, "action": "signUp"},
    )
    assert started.status_code == 200, started.text
    body = started.json()
    assert set(body) == {"challengeId", "idempotencyKey", "expiresAt"}
    assert 590 <= body["expiresAt"] - time.time() <= 601
    code = otp.email_code(email)

    found = otp.server("GET", "/challenges", params={"challengeId": body["challengeId"]}).json()
    assert found["email"] == email
    assert found["verificationMethod"] == "EMAIL_OTP" and found["action"] == "signUp"

    # Not verified yet: no claim.
    early = otp.server("POST", "/claim", json={"challengeId": body["challengeId"], "userId": "uma"})
    assert early.status_code == 403 and early.json()["errorCode"] == "challenge_not_verified"

    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    refused = otp.server(
        "POST", "/verify", json={"challengeId": body["challengeId"], "verificationCode": wrong}
    ).json()
    assert refused["isVerified"] is False
    assert refused["failureReason"] == "CODE_INVALID_OR_EXPIRED"
    verified = otp.server(
        "POST", "/verify", json={"challengeId": body["challengeId"], "verificationCode": code}
    ).json()
    assert verified == {"isVerified": True, "email": email, "verificationMethod": "EMAIL_OTP"}

    claimed = otp.server(
        "POST", "/claim", json={"challengeId": body["challengeId"], "userId": "uma"}
    )
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["verificationMethod"] == "EMAIL_OTP"
    validated = otp.validate(claimed.json()["token"]).json()
    assert validated["isValid"] is True
    assert validated["actionCode"] == "signUp" and validated["userId"] == "uma"
    assert validated["idempotencyKey"] == body["idempotencyKey"]
    user = otp.server("GET", "/users/uma").json()
    assert user["email"] == email and user["emailVerified"] is True
    assert user["enrolledVerificationMethods"] == ["EMAIL_OTP"]

    again = otp.server("POST", "/claim", json={"challengeId": body["challengeId"], "userId": "uma"})
    assert again.status_code == 400
    other = otp.server("POST", "/claim", json={"challengeId": body["challengeId"], "userId": "vic"})
    assert other.status_code == 403


def test_sms_challenge_for_a_user_by_their_stored_number(otp: OtpClient) -> None:
    phone = new_phone()
    assert otp.server("PATCH", "/users/wes", json={"phoneNumber": phone}).status_code == 200
    started = otp.server("POST", "/challenge", json={"verificationMethod": "SMS", "userId": "wes"})
    assert started.status_code == 200, started.text
    challenge_id = started.json()["challengeId"]
    latest = otp.server("GET", "/challenges", params={"userId": "wes"}).json()
    assert latest["challengeId"] == challenge_id
    assert latest["phoneNumber"] == phone and latest["smsChannel"] == "SMS"
    code = otp.sms_code(phone)
    verified = otp.server(
        "POST", "/verify", json={"challengeId": challenge_id, "verificationCode": code}
    ).json()
    assert verified == {"isVerified": True, "phoneNumber": phone, "verificationMethod": "SMS"}
    assert otp.server("GET", "/users/wes").json()["phoneNumberVerified"] is True


def test_whatsapp_by_sms_channel_and_skipping_the_verification_check(otp: OtpClient) -> None:
    phone = new_phone()
    started = otp.server(
        "POST",
        "/challenge",
        json={"verificationMethod": "SMS", "smsChannel": "WHATSAPP", "phoneNumber": phone},
    ).json()
    assert otp.sms(phone)["phoneNumber"] == phone
    found = otp.server("GET", "/challenges", params={"challengeId": started["challengeId"]})
    assert found.json()["verificationMethod"] == "WHATSAPP"
    assert found.json()["smsChannel"] == "WHATSAPP"
    claimed = otp.server(
        "POST",
        "/claim",
        json={
            "challengeId": started["challengeId"],
            "userId": "xia",
            "skipVerificationCheck": True,
        },
    )
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["verificationMethod"] == "WHATSAPP"
    # Claimed unverified: the number is recorded, not verified, so not enrolled.
    user = otp.server("GET", "/users/xia").json()
    assert user["isEnrolled"] is False and user.get("phoneNumberVerified") is False


def test_server_api_refusals(otp: OtpClient) -> None:
    nothing = otp.server("POST", "/challenge", json={})
    assert nothing.status_code == 400
    passkey = otp.server(
        "POST", "/challenge", json={"verificationMethod": "PASSKEY", "email": new_email()}
    )
    assert passkey.status_code == 400
    assert "not a one-time code method" in passkey.json()["errorDescription"]
    no_phone = otp.server("POST", "/challenge", json={"verificationMethod": "SMS", "userId": "yan"})
    assert no_phone.status_code == 400
    unknown = otp.server(
        "POST", "/verify", json={"challengeId": "nope", "verificationCode": "123456"}
    ).json()
    assert unknown == {"isVerified": False, "failureReason": "CODE_INVALID_OR_EXPIRED"}
    assert otp.server("GET", "/challenges", params={"challengeId": "nope"}).json() == {}
    missing = otp.server("POST", "/claim", json={"challengeId": "nope", "userId": "yan"})
    assert missing.status_code == 404
    otp.allow_methods("PASSKEY", "SMS")
    refused = otp.server(
        "POST", "/challenge", json={"verificationMethod": "EMAIL_OTP", "email": new_email()}
    )
    assert refused.status_code == 403 and refused.json()["errorCode"] == "method_not_allowed"


def test_user_email_and_phone_are_normalised_when_valid_and_checked_when_used(
    otp: OtpClient,
) -> None:
    """As Authsignal does (its own SDK's tests store the number `1234567890`), a backend may
    store any email and phone number on a user; valid ones are normalised, and a code is only
    ever sent to a valid one."""
    good = otp.server("PATCH", "/users/zed", json={"email": "Zed@EXAMPLE.com"})
    assert good.status_code == 200 and good.json()["email"] == "Zed@example.com"
    number = otp.server("PATCH", "/users/zed", json={"phoneNumber": " +64 21 123 4567 "})
    assert number.status_code == 200 and number.json()["phoneNumber"] == "+64211234567"
    kept = otp.server("PATCH", "/users/zed", json={"email": "zed@", "phoneNumber": "12345"})
    assert kept.status_code == 200, kept.text
    assert (kept.json()["email"], kept.json()["phoneNumber"]) == ("zed@", "12345")
    assert otp.track("zed", "signIn", email="not-an-email").status_code == 200
    for method in ("EMAIL_OTP", "SMS"):
        refused = otp.server(
            "POST", "/challenge", json={"verificationMethod": method, "userId": "zed"}
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "invalid_request", refused.text


def test_expired_challenges_are_pruned(
    otp: OtpClient, server: LiveServer, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    emails = [new_email(), new_email()]
    ids = [
        otp.server("POST", "/challenge", json={"email": email}).json()["challengeId"]
        for email in emails
    ]
    for email in emails:  # sent: the server logs nothing more meanwhile
        otp.email_code(email)

    async def expire_first(db: Db) -> None:
        await db.execute(
            update(OtpChallenge)
            .where(OtpChallenge.id == ids[0])
            .values(expires_at=utcnow() - timedelta(days=2))
        )

    server.run(expire_first)
    capsys.readouterr()
    assert main(["db", "prune", "--database-url", database_url, "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{") :])["otpChallenges"] >= 1

    async def left(db: Db) -> list[str]:
        rows = await db.all(select(OtpChallenge.id).where(OtpChallenge.id.in_(ids)))
        return [str(row["id"]) for row in rows]

    assert server.run(left) == [ids[1]]
