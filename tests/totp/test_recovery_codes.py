"""Recovery codes against a real server, on both databases: a set made by the backend through
Authsignal's own Python server SDK and by the user's app through the Client API, each code
used once (also when two requests race with it), a new set replacing the old, the one
enrolment rule, wrong codes limited, and only keyed MACs at rest."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
from authsignal.client import ApiException, AuthsignalClient

from tests.live_server import LiveServer, Tenant
from tests.raw_database import raw_text
from tests.totp.helpers import ENROL_SCOPE, CodesClient

CODE = re.compile(r"[23456789abcdefghjkmnpqrstuvwxyz]{5}-[23456789abcdefghjkmnpqrstuvwxyz]{5}")
INVALID = {"isVerified": False, "failureReason": "CODE_INVALID_OR_EXPIRED"}


def backend_set(authsignal: AuthsignalClient, user_id: str) -> dict[str, Any]:
    return dict(
        authsignal.enroll_verified_authenticator(user_id, {"verificationMethod": "RECOVERY_CODE"})
    )


def test_the_backend_makes_a_set_and_each_code_signs_in_once(
    authsignal: AuthsignalClient, codes: CodesClient
) -> None:
    enrolled = backend_set(authsignal, "rita")
    recovery_codes = enrolled["recovery_codes"]
    assert len(recovery_codes) == 10 and len(set(recovery_codes)) == 10
    assert all(CODE.fullmatch(code) for code in recovery_codes), recovery_codes
    authenticator = enrolled["authenticator"]
    assert authenticator["verification_method"] == "RECOVERY_CODE"
    assert authenticator["verified_at"]
    assert authsignal.get_user("rita")["enrolled_verification_methods"] == ["RECOVERY_CODE"]
    listed = authsignal.get_authenticators("rita")
    assert [a["user_authenticator_id"] for a in listed] == [authenticator["user_authenticator_id"]]

    # Case, spaces and the dash do not matter.
    typed = " " + recovery_codes[0].upper().replace("-", " ") + " "
    tracked = authsignal.track("rita", "signIn")
    verified = codes.verify_recovery_code(tracked["token"], typed)
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["isVerified"] is True and "failureReason" not in body
    checked = authsignal.validate_challenge({"token": body["accessToken"]})
    assert checked["is_valid"] is True
    assert checked["verification_method"] == "RECOVERY_CODE"
    assert checked["action"] == "signIn"

    # Used: the same code no longer works, for another action either.
    again = codes.verify_recovery_code(codes.token("rita"), recovery_codes[0])
    assert again.json() == INVALID
    assert codes.verify_recovery_code(codes.token("rita"), recovery_codes[1]).json()["isVerified"]
    last = codes.client("GET", "/user-authenticators", token=codes.token("rita")).json()
    assert last[0]["verificationMethod"] == "RECOVERY_CODE" and last[0]["lastVerifiedAt"]
    used = [
        e
        for e in codes.server("GET", "/audit-events").json()["events"]
        if e["action"] == "user.recovery_code.used"
    ]
    assert [e["details"]["codesLeft"] for e in used] == [8, 9]  # newest first


def test_a_second_set_replaces_the_first(authsignal: AuthsignalClient, codes: CodesClient) -> None:
    first = backend_set(authsignal, "sam")
    second = backend_set(authsignal, "sam")
    assert set(first["recovery_codes"]).isdisjoint(second["recovery_codes"])
    assert (
        second["authenticator"]["user_authenticator_id"]
        == first["authenticator"]["user_authenticator_id"]
    )
    assert len(authsignal.get_authenticators("sam")) == 1
    for code in first["recovery_codes"][:3]:
        assert codes.verify_recovery_code(codes.token("sam"), code).json() == INVALID
    answer = codes.verify_recovery_code(codes.token("sam"), second["recovery_codes"][0])
    assert answer.json()["isVerified"] is True


def test_the_users_app_makes_a_set_under_the_enrolment_rule(codes: CodesClient) -> None:
    # No authenticator yet: any token of the user's may.
    made = codes.enroll_recovery_codes(codes.token("tom", "enrollRecovery"))
    assert made.status_code == 200, made.text
    body = made.json()
    assert body["userId"] == "tom" and len(body["recoveryCodes"]) == 10
    # Now enrolled: another set needs a token that may add authenticators.
    refused = codes.enroll_recovery_codes(codes.token("tom", "enrollRecovery"))
    assert refused.status_code == 403 and refused.json()["errorCode"] == "forbidden"
    token = codes.token("tom", "enrollRecovery", scope=ENROL_SCOPE)
    replaced = codes.enroll_recovery_codes(token)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["userAuthenticatorId"] == body["userAuthenticatorId"]
    # The token's leave is spent: it cannot make a third set.
    assert codes.enroll_recovery_codes(token).status_code == 403
    old = codes.verify_recovery_code(codes.token("tom"), body["recoveryCodes"][0])
    assert old.json() == INVALID
    new = codes.verify_recovery_code(codes.token("tom"), replaced.json()["recoveryCodes"][0])
    assert new.json()["isVerified"] is True


def test_two_requests_racing_with_one_code_do_not_both_pass(
    authsignal: AuthsignalClient, codes: CodesClient, server: LiveServer, tenant: Tenant
) -> None:
    code = backend_set(authsignal, "una")["recovery_codes"][0]
    tokens = [codes.token("una") for _ in range(8)]
    answers: list[dict[str, Any]] = []
    start = threading.Barrier(len(tokens))

    def race(token: str) -> None:
        with CodesClient(server.api_url, tenant) as racer:
            start.wait()
            answers.append(racer.verify_recovery_code(token, code).json())

    threads = [threading.Thread(target=race, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a["isVerified"] for a in answers) == [False] * 7 + [True], answers


def test_wrong_codes_are_limited(authsignal: AuthsignalClient, codes: CodesClient) -> None:
    right = backend_set(authsignal, "vera")["recovery_codes"]
    token = codes.token("vera")
    for wrong in ("aaaaa-aaaaa", "not a code", "22222-22222", "zzzzz-zzzzz", "x"):
        assert codes.verify_recovery_code(token, wrong).json() == INVALID
    refused = codes.verify_recovery_code(token, right[0])
    assert refused.json() == {"isVerified": False, "failureReason": "MAX_ATTEMPTS_EXCEEDED"}
    # The refused answer was not checked: the code still works, for another action.
    assert codes.verify_recovery_code(codes.token("vera"), right[0]).json()["isVerified"]


def test_without_codes_verify_is_a_clear_error(codes: CodesClient) -> None:
    refused = codes.verify_recovery_code(codes.token("wes"), "abcde-fghjk")
    assert refused.status_code == 400
    assert refused.json()["errorCode"] == "not_enrolled"
    assert set(refused.json()) == {"error", "errorCode", "errorDescription"}


@pytest.mark.parametrize("method", ["PASSKEY", "AUTHENTICATOR_APP"])
def test_other_methods_are_still_refused_to_the_backend(
    authsignal: AuthsignalClient, method: str
) -> None:
    with pytest.raises(ApiException) as refused:
        authsignal.enroll_verified_authenticator("xia", {"verificationMethod": method})
    assert refused.value.status_code == 400
    assert "RECOVERY_CODE" in refused.value.error_description


def test_codes_are_stored_only_as_keyed_macs(
    authsignal: AuthsignalClient, database_url: str
) -> None:
    recovery_codes = backend_set(authsignal, "yael")["recovery_codes"]
    raw = raw_text(database_url)
    for code in recovery_codes:
        assert code not in raw and code.replace("-", "") not in raw
