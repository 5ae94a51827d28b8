"""One-time codes through the Client API (E1-E3, S1-S3, WA1-WA2) against a real server, the codes
read from a real SMTP server and a real SMS webhook on loopback: enrolment completes only when
the first code verifies, a code answers once, five wrong answers burn it, and the enrolment
rule holds for a second address."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from passgate.server.store.db import Db
from passgate.server.store.tables import AuditEvent, OtpChallenge, utcnow
from tests.live_server import LiveServer, Tenant
from tests.otp.helpers import ENROL_SCOPE, OtpClient, new_email, new_phone
from tests.tenant_client import TenantClient


def enrol_email(otp: OtpClient, user_id: str, email: str) -> dict[str, Any]:
    """Track, E1, the code from the mailbox, E3: the verify's answer."""
    token = otp.token(user_id, "signUp")
    enrolled = otp.enroll_email(token, email)
    assert enrolled.status_code == 200, enrolled.text
    verified = otp.verify(token, "email-otp", otp.email_code(email))
    assert verified.status_code == 200, verified.text
    return dict(verified.json())


def test_email_enrolment_completes_when_its_first_code_verifies(otp: OtpClient) -> None:
    email = new_email()
    token = otp.token("ana", "signUp")
    enrolled = otp.enroll_email(token, email)
    assert enrolled.status_code == 200, enrolled.text
    assert set(enrolled.json()) == {"userAuthenticatorId", "userId"}
    assert enrolled.json()["userId"] == "ana"
    # Sent, not yet verified: not enrolled, not listed.
    message = otp.smtp.wait(to=email)
    assert message.code is not None and len(message.code) == 6
    assert otp.server("GET", "/users/ana").json()["isEnrolled"] is False
    assert otp.client("GET", "/user-authenticators", token=token).json() == []

    verified = otp.verify(token, "email-otp", message.code)
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["isVerified"] is True
    assert "failureReason" not in body
    added = body["userAuthenticator"]
    assert added["userAuthenticatorId"] == enrolled.json()["userAuthenticatorId"]
    assert added["verificationMethod"] == "EMAIL_OTP"
    assert added["email"] == email
    assert added["verifiedAt"]
    # The access token settles the action: /validate redeems it once.
    validated = otp.validate(body["accessToken"]).json()
    assert validated["isValid"] is True
    assert validated["verificationMethod"] == "EMAIL_OTP"
    user = otp.server("GET", "/users/ana").json()
    assert user["email"] == email and user["emailVerified"] is True
    assert user["enrolledVerificationMethods"] == ["EMAIL_OTP"]
    listed = otp.server("GET", "/users/ana/authenticators").json()
    assert [a["userAuthenticatorId"] for a in listed] == [added["userAuthenticatorId"]]


def test_sms_enrolment_then_a_sign_in_by_sms(otp: OtpClient) -> None:
    phone = new_phone()
    token = otp.token("ben", "signUp")
    enrolled = otp.enroll_sms(token, phone)
    assert enrolled.status_code == 200, enrolled.text
    first = otp.sms(phone)
    assert first["phoneNumber"] == phone and len(first["code"]) == 6
    verified = otp.verify(token, "sms", first["code"]).json()
    assert verified["isVerified"] is True
    assert verified["userAuthenticator"]["phoneNumber"] == phone
    assert otp.server("GET", "/users/ben").json()["phoneNumberVerified"] is True

    # Signing in: S2 to the enrolled number (no body), S3; no enrolment this time.
    token = otp.token("ben", "signIn")
    challenged = otp.challenge(token, "sms")
    assert challenged.status_code == 200, challenged.text
    assert set(challenged.json()) == {"challengeId"}
    signed_in = otp.verify(token, "sms", otp.sms_code(phone, count=2)).json()
    assert signed_in["isVerified"] is True
    assert "userAuthenticator" not in signed_in
    assert otp.validate(signed_in["accessToken"]).json()["verificationMethod"] == "SMS"


def test_whatsapp_codes_go_to_the_enrolled_phone(otp: OtpClient) -> None:
    phone = new_phone()
    token = otp.token("cat", "signUp")
    assert otp.enroll_sms(token, phone).status_code == 200
    assert otp.verify(token, "sms", otp.sms_code(phone)).json()["isVerified"] is True

    token = otp.token("cat", "signIn")
    challenged = otp.challenge(token, "whatsapp")
    assert challenged.status_code == 200, challenged.text
    code = otp.sms_code(phone, count=2)
    # A WhatsApp code answers only the WhatsApp verify.
    assert otp.verify(token, "sms", code).json()["isVerified"] is False
    verified = otp.verify(token, "whatsapp", code).json()
    assert verified["isVerified"] is True
    assert otp.validate(verified["accessToken"]).json()["verificationMethod"] == "WHATSAPP"


def test_a_wrong_code_is_not_an_error_and_the_right_one_still_works(otp: OtpClient) -> None:
    email = new_email()
    token = otp.token("dan", "signUp")
    assert otp.enroll_email(token, email).status_code == 200
    code = otp.email_code(email)
    wrong = "000000" if code != "000000" else "111111"
    refused = otp.verify(token, "email-otp", wrong)
    assert refused.status_code == 200
    assert refused.json() == {"isVerified": False, "failureReason": "CODE_INVALID_OR_EXPIRED"}
    assert otp.verify(token, "email-otp", "not a code").json()["isVerified"] is False
    assert otp.verify(token, "email-otp", code).json()["isVerified"] is True


def test_challenges_take_no_body_with_or_without_a_content_type(otp: OtpClient) -> None:
    """The browser SDK posts E2/S2 with `Content-Type: application/json` and no body, the
    mobile SDKs with neither."""
    phone = new_phone()
    token = otp.token("max", "signUp")
    assert otp.enroll_sms(token, phone).status_code == 200
    assert otp.verify(token, "sms", otp.sms_code(phone)).json()["isVerified"] is True
    token = otp.token("max", "signIn")
    bare = otp.client("POST", "/challenge/sms", token=token)
    assert bare.status_code == 200, bare.text
    assert "content-type" not in bare.request.headers
    otp.sms_code(phone, count=2)  # delivered before the next is sent: they arrive in order
    typed = otp.client(
        "POST", "/challenge/sms", token=token, headers={"Content-Type": "application/json"}
    )
    assert typed.status_code == 200, typed.text
    verified = otp.verify(token, "sms", otp.sms_code(phone, count=3)).json()
    assert verified["isVerified"] is True


def test_a_code_answers_once(otp: OtpClient) -> None:
    email = new_email()
    enrol_email(otp, "eve", email)
    token = otp.token("eve", "signIn")
    assert otp.challenge(token, "email-otp").status_code == 200
    code = otp.email_code(email, count=2)
    assert otp.verify(token, "email-otp", code).json()["isVerified"] is True
    again = otp.verify(token, "email-otp", code).json()
    assert again == {"isVerified": False, "failureReason": "CODE_INVALID_OR_EXPIRED"}


def test_an_expired_code_is_refused(otp: OtpClient, server: LiveServer, tenant: Tenant) -> None:
    email = new_email()
    enrol_email(otp, "fay", email)
    token = otp.token("fay", "signIn")
    challenge_id = otp.challenge(token, "email-otp").json()["challengeId"]
    code = otp.email_code(email, count=2)

    async def expire(db: Db) -> None:
        await db.execute(
            update(OtpChallenge)
            .where(OtpChallenge.id == challenge_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )

    server.run(expire)
    expired = otp.verify(token, "email-otp", code).json()
    assert expired == {"isVerified": False, "failureReason": "CODE_INVALID_OR_EXPIRED"}


def test_five_wrong_answers_burn_the_code(
    otp: OtpClient, server: LiveServer, tenant: Tenant
) -> None:
    email = new_email()
    enrol_email(otp, "gus", email)
    token = otp.token("gus", "signIn")
    assert otp.challenge(token, "email-otp").status_code == 200
    code = otp.email_code(email, count=2)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        answer = otp.verify(token, "email-otp", wrong).json()
        assert answer["failureReason"] == "CODE_INVALID_OR_EXPIRED"
    # The sixth try, even with the right code, and any later one.
    for _ in range(2):
        answer = otp.verify(token, "email-otp", code).json()
        assert answer == {"isVerified": False, "failureReason": "MAX_ATTEMPTS_EXCEEDED"}
    assert audit_actions(server, tenant).count("security.otp.challenge_burnt") == 1
    # A new code may be asked for, and answers.
    assert otp.challenge(token, "email-otp").status_code == 200
    assert otp.verify(token, "email-otp", otp.email_code(email, count=3)).json()["isVerified"]


def test_racing_wrong_answers_all_count(otp: OtpClient, server: LiveServer, tenant: Tenant) -> None:
    """Five wrong answers at once: every one is counted, so the right code is then refused."""
    email = new_email()
    enrol_email(otp, "hal", email)
    token = otp.token("hal", "signIn")
    assert otp.challenge(token, "email-otp").status_code == 200
    code = otp.email_code(email, count=2)
    wrong = f"{(int(code) + 7) % 1_000_000:06d}"

    def answer(_: int) -> str:
        with TenantClient(server.api_url, tenant) as racer:
            response = racer.client(
                "POST", "/verify/email-otp", token=token, json={"verificationCode": wrong}
            )
            assert response.status_code == 200, response.text
            return str(response.json()["failureReason"])

    with ThreadPoolExecutor(5) as pool:
        reasons = list(pool.map(answer, range(5)))
    assert all(reason == "CODE_INVALID_OR_EXPIRED" for reason in reasons)
    final = otp.verify(token, "email-otp", code).json()
    assert final == {"isVerified": False, "failureReason": "MAX_ATTEMPTS_EXCEEDED"}


def test_racing_right_answers_verify_once(
    otp: OtpClient, server: LiveServer, tenant: Tenant
) -> None:
    """The right code sent five times at once: one verify wins, the others are refused."""
    email = new_email()
    enrol_email(otp, "ivy", email)
    token = otp.token("ivy", "signIn")
    assert otp.challenge(token, "email-otp").status_code == 200
    code = otp.email_code(email, count=2)

    def answer(_: int) -> dict[str, Any]:
        with TenantClient(server.api_url, tenant) as racer:
            response = racer.client(
                "POST", "/verify/email-otp", token=token, json={"verificationCode": code}
            )
            assert response.status_code == 200, response.text
            return dict(response.json())

    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(answer, range(5)))
    assert sum(1 for a in answers if a["isVerified"]) == 1
    refused = [a for a in answers if not a["isVerified"]]
    assert all(a["failureReason"] == "CODE_INVALID_OR_EXPIRED" for a in refused)


def test_a_second_email_needs_the_add_authenticators_scope(otp: OtpClient) -> None:
    enrol_email(otp, "ida", new_email())
    token = otp.token("ida", "signIn")
    refused = otp.enroll_email(token, new_email())
    assert refused.status_code == 403, refused.text
    assert refused.json()["errorCode"] == "forbidden"
    assert "add:authenticators" in refused.json()["errorDescription"]

    second = new_email()
    scoped = otp.token("ida", "addEmail", scope=ENROL_SCOPE)
    first = otp.server("GET", "/users/ida").json()["email"]
    again = otp.enroll_email(scoped, first)
    assert again.status_code == 409 and "already enrolled" in again.json()["errorDescription"]
    assert otp.enroll_email(scoped, second).status_code == 200
    verified = otp.verify(scoped, "email-otp", otp.email_code(second)).json()
    assert verified["isVerified"] is True
    listed = otp.server("GET", "/users/ida/authenticators").json()
    assert len(listed) == 2 and listed[1]["email"] == second


def test_enrolling_again_before_verifying_reuses_the_authenticator(otp: OtpClient) -> None:
    token = otp.token("jon", "signUp")
    first, second = new_email(), new_email()
    one = otp.enroll_email(token, first).json()["userAuthenticatorId"]
    two = otp.enroll_email(token, second).json()["userAuthenticatorId"]
    assert one == two
    # Only the newest code answers.
    otp.email_code(first)
    verified = otp.verify(token, "email-otp", otp.email_code(second)).json()
    assert verified["userAuthenticator"]["email"] == second


def test_a_code_enrols_the_address_it_went_to(otp: OtpClient) -> None:
    """Enrolling another address under a second token changes the pending authenticator; the
    first token's code still proves only the first address, and enrols that one."""
    first, second = new_email(), new_email()
    one, two = otp.token("kai", "signUp"), otp.token("kai", "signUp")
    assert otp.enroll_email(one, first).status_code == 200
    assert otp.enroll_email(two, second).status_code == 200
    verified = otp.verify(one, "email-otp", otp.email_code(first)).json()
    assert verified["userAuthenticator"]["email"] == first
    listed = otp.server("GET", "/users/kai/authenticators").json()
    assert [a["email"] for a in listed] == [first]


def test_bad_input_and_missing_authenticators_are_clear_4xx(otp: OtpClient) -> None:
    token = otp.token("kim", "signUp")
    bad_email = otp.enroll_email(token, "not an address")
    assert bad_email.status_code == 400
    assert bad_email.json()["errorDescription"].startswith("email is not a valid email address")
    bad_phone = otp.enroll_sms(token, "0211234567")
    assert bad_phone.status_code == 400 and "E.164" in bad_phone.json()["errorDescription"]
    nothing = otp.challenge(token, "email-otp")
    assert nothing.status_code == 400
    assert nothing.json()["errorCode"] == "authenticator_not_found"
    # Without a token (Basic with the tenant id) the routes are refused.
    unauthorized = otp.client("POST", "/challenge/sms")
    assert unauthorized.status_code == 401
    assert unauthorized.json()["errorCode"] == "token_required"


def test_a_method_the_tenant_does_not_allow_is_refused(otp: OtpClient) -> None:
    otp.allow_methods("PASSKEY", "EMAIL_OTP")
    token = otp.token("lea", "signUp")
    tracked = otp.track("lea", "signUp").json()
    assert tracked["allowedVerificationMethods"] == ["PASSKEY", "EMAIL_OTP"]
    refused = otp.enroll_sms(token, new_phone())
    assert refused.status_code == 403
    assert refused.json()["errorCode"] == "method_not_allowed"
    assert "SMS" in refused.json()["errorDescription"]
    assert otp.enroll_email(token, new_email()).status_code == 200


def audit_actions(server: LiveServer, tenant: Tenant) -> list[str]:
    async def read(db: Db) -> list[str]:
        rows = await db.all(select(AuditEvent.action).where(AuditEvent.tenant_id == tenant.id))
        return [str(row["action"]) for row in rows]

    return server.run(read)
