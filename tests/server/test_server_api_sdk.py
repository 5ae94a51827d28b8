"""The Server API driven by Authsignal's published Python SDK (PyPI `authsignal` 4.1.0),
every method it has, against a real server on loopback."""

from __future__ import annotations

import httpx
import pytest
from authsignal.client import ApiException, AuthsignalClient

from tests.live_server import LiveServer, Tenant


def test_track_returns_a_token_and_a_pending_challenge(authsignal: AuthsignalClient) -> None:
    tracked = authsignal.track(
        user_id="alice",
        action="signIn",
        attributes={
            "ipAddress": "203.0.113.9",
            "userAgent": "Mozilla/5.0 test",
            "deviceId": "device-1",
            "custom": {"amount": 120, "currency": "NZD", "firstTime": True},
            "redirectUrl": "https://localhost/done",
        },
    )
    assert tracked["state"] == "CHALLENGE_REQUIRED"
    assert tracked["idempotency_key"]
    assert tracked["token"].count(".") == 2
    assert "/challenge?token=" in tracked["url"]
    assert tracked["is_enrolled"] is False
    assert tracked["enrolled_verification_methods"] == []
    assert set(tracked["allowed_verification_methods"]) >= {"PASSKEY", "PUSH", "EMAIL_OTP", "SMS"}

    action = authsignal.get_action("alice", "signIn", tracked["idempotency_key"])
    assert action["state"] == "CHALLENGE_REQUIRED"
    assert action["ip_address"] == "203.0.113.9"
    assert action["user_agent"] == "Mozilla/5.0 test"
    assert action["device_id"] == "device-1"
    # The SDK decamelizes keys recursively, custom data included.
    assert action["custom"] == {"amount": 120, "currency": "NZD", "first_time": True}
    assert action["output"] == {}
    assert action["created_at"].endswith("Z")


def test_track_with_an_idempotency_key_is_idempotent(authsignal: AuthsignalClient) -> None:
    first = authsignal.track("alice", "payment", {"idempotencyKey": "order-42"})
    second = authsignal.track("alice", "payment", {"idempotencyKey": "order-42"})
    assert first["idempotency_key"] == second["idempotency_key"] == "order-42"
    authsignal.update_action("alice", "payment", "order-42", {"state": "BLOCK"})
    assert authsignal.track("alice", "payment", {"idempotencyKey": "order-42"})["state"] == "BLOCK"


def test_track_without_attributes(authsignal: AuthsignalClient) -> None:
    tracked = authsignal.track(user_id="bob", action="signIn")
    assert tracked["state"] == "CHALLENGE_REQUIRED"
    assert authsignal.get_user("bob")["is_enrolled"] is False


def test_validate_is_false_until_the_challenge_succeeds_then_true_once(
    authsignal: AuthsignalClient,
) -> None:
    tracked = authsignal.track("carol", "withdraw")
    pending = authsignal.validate_challenge({"token": tracked["token"]})
    assert pending["is_valid"] is False
    assert pending["state"] == "CHALLENGE_REQUIRED"
    assert pending["user_id"] == "carol"
    assert pending["action"] == pending["action_code"] == "withdraw"
    assert pending["idempotency_key"] == tracked["idempotency_key"]

    updated = authsignal.update_action(
        "carol", "withdraw", tracked["idempotency_key"], {"state": "CHALLENGE_SUCCEEDED"}
    )
    assert updated["state"] == "CHALLENGE_SUCCEEDED"

    valid = authsignal.validate_challenge(
        {"token": tracked["token"], "userId": "carol", "action": "withdraw"}
    )
    assert valid["is_valid"] is True
    assert valid["state"] == "CHALLENGE_SUCCEEDED"

    again = authsignal.validate_challenge({"token": tracked["token"]})
    assert again["is_valid"] is False
    assert "already been validated" in again["error"]


def test_validate_refuses_a_token_for_another_user_or_action(authsignal: AuthsignalClient) -> None:
    tracked = authsignal.track("dave", "signIn")
    authsignal.update_action("dave", "signIn", tracked["idempotency_key"], {"state": "ALLOW"})
    assert (
        authsignal.validate_challenge({"token": tracked["token"], "userId": "eve"})["is_valid"]
        is False
    )
    assert (
        authsignal.validate_challenge({"token": tracked["token"], "action": "payment"})["is_valid"]
        is False
    )
    # Neither refusal spent the result: the right user still redeems it, once.
    assert (
        authsignal.validate_challenge({"token": tracked["token"], "userId": "dave"})["is_valid"]
        is True
    )


def test_allowed_actions_validate_straight_away(
    server: LiveServer, tenant: Tenant, authsignal: AuthsignalClient
) -> None:
    from passgate.server.services import tenants
    from passgate.server.services.enums import ActionOutcome

    server.run(
        lambda s: tenants.set_action_outcome(s, tenant.id, "viewBalance", ActionOutcome.ALLOW)
    )
    tracked = authsignal.track("frank", "viewBalance")
    assert tracked["state"] == "ALLOW"
    assert authsignal.validate_challenge({"token": tracked["token"]})["is_valid"] is True
    blocked = authsignal.track("frank", "signIn")
    assert blocked["state"] == "CHALLENGE_REQUIRED"


def test_users_update_get_delete(authsignal: AuthsignalClient) -> None:
    updated = authsignal.update_user(
        "grace",
        {
            "email": "grace@example.com",
            "emailVerified": True,
            "phoneNumber": "+6421000000",
            "username": "grace",
            "displayName": "Grace H",
            "custom": {"tier": "gold"},
        },
    )
    assert updated["email"] == "grace@example.com"
    assert updated["email_verified"] is True
    assert updated["display_name"] == "Grace H"

    user = authsignal.get_user("grace")
    assert user["phone_number"] == "+6421000000"
    assert user["phone_number_verified"] is False
    assert user["username"] == "grace"
    assert user["custom"] == {"tier": "gold"}
    assert user["is_enrolled"] is False

    # Changing the email without saying it is verified un-verifies it.
    assert authsignal.update_user("grace", {"email": "g2@example.com"})["email_verified"] is False

    authsignal.enroll_verified_authenticator(
        "grace", {"verificationMethod": "EMAIL_OTP", "email": "g2@example.com"}
    )
    tracked = authsignal.track("grace", "signIn")
    authsignal.delete_user("grace")
    gone = authsignal.get_user("grace")
    assert gone["is_enrolled"] is False
    assert "email" not in gone
    assert authsignal.get_authenticators("grace") == []
    with pytest.raises(ApiException) as no_action:
        authsignal.get_action("grace", "signIn", tracked["idempotency_key"])
    assert no_action.value.status_code == 404


def test_authenticators_enroll_list_delete(authsignal: AuthsignalClient) -> None:
    enrolled = authsignal.enroll_verified_authenticator(
        "heidi", {"verificationMethod": "EMAIL_OTP", "email": "heidi@example.com"}
    )
    authenticator = enrolled["authenticator"]
    assert authenticator["verification_method"] == "EMAIL_OTP"
    assert authenticator["email"] == "heidi@example.com"
    assert authenticator["user_id"] == "heidi"

    sms = authsignal.enroll_verified_authenticator(
        "heidi", {"verificationMethod": "SMS", "phoneNumber": "+6421111111"}
    )["authenticator"]
    listed = authsignal.get_authenticators("heidi")
    assert all(value is not None for a in listed for value in a.values())
    assert [a["user_authenticator_id"] for a in listed] == [
        authenticator["user_authenticator_id"],
        sms["user_authenticator_id"],
    ]
    user = authsignal.get_user("heidi")
    assert user["is_enrolled"] is True
    assert user["enrolled_verification_methods"] == ["EMAIL_OTP", "SMS"]
    assert authsignal.track("heidi", "signIn")["is_enrolled"] is True

    authsignal.delete_authenticator("heidi", authenticator["user_authenticator_id"])
    remaining = authsignal.get_authenticators("heidi")
    assert [a["user_authenticator_id"] for a in remaining] == [sms["user_authenticator_id"]]

    with pytest.raises(ApiException) as missing:
        authsignal.delete_authenticator("heidi", authenticator["user_authenticator_id"])
    assert missing.value.status_code == 404
    assert missing.value.error_code == "not_found"


def test_passkeys_cannot_be_enrolled_by_the_backend(authsignal: AuthsignalClient) -> None:
    with pytest.raises(ApiException) as refused:
        authsignal.enroll_verified_authenticator("ivan", {"verificationMethod": "PASSKEY"})
    assert refused.value.status_code == 400
    assert "Client API" in refused.value.error_description
    with pytest.raises(ApiException) as no_email:
        authsignal.enroll_verified_authenticator("ivan", {"verificationMethod": "EMAIL_OTP"})
    assert "email" in no_email.value.error_description


def test_bad_secret_key_gets_authsignal_unauthorized(server: LiveServer) -> None:
    client = AuthsignalClient(api_secret_key="pg_sk_wrong", api_url=server.api_url)
    with pytest.raises(ApiException) as refused:
        client.get_action("u", "signIn", "key")
    assert refused.value.status_code == 401
    assert refused.value.error_code == "unauthorized"
    assert str(refused.value) == (
        "AuthsignalException: 401 - The request is unauthorized. Check that your API key and "
        "region base URL are correctly configured."
    )


def test_unknown_action_is_404(authsignal: AuthsignalClient) -> None:
    with pytest.raises(ApiException) as missing:
        authsignal.get_action("nobody", "signIn", "no-such-key")
    assert missing.value.status_code == 404


def test_query_actions(authsignal: AuthsignalClient, http: httpx.Client) -> None:
    first = authsignal.track("judy", "signIn")
    authsignal.track("judy", "payment")
    authsignal.update_action(
        "judy", "signIn", first["idempotency_key"], {"state": "CHALLENGE_FAILED"}
    )

    everything = http.get("/users/judy/actions").json()
    assert sorted(a["actionCode"] for a in everything) == ["payment", "signIn"]
    only_sign_in = http.get("/users/judy/actions", params={"codes": "signIn"}).json()
    assert [a["idempotencyKey"] for a in only_sign_in] == [first["idempotency_key"]]
    failed = http.get("/users/judy/actions", params={"state": "CHALLENGE_FAILED"}).json()
    assert [a["actionCode"] for a in failed] == ["signIn"]
    future = http.get("/users/judy/actions", params={"fromDate": "2999-01-01T00:00:00Z"}).json()
    assert future == []


def test_query_users_pages_and_filters(http: httpx.Client, authsignal: AuthsignalClient) -> None:
    for name in ("u1", "u2", "u3"):
        authsignal.update_user(name, {"email": f"{name}@example.com", "username": name})
    page = http.get("/users", params={"limit": 2}).json()
    assert [u["userId"] for u in page["users"]] == ["u1", "u2"]
    rest = http.get(
        "/users", params={"limit": 2, "lastEvaluatedUserId": page["lastEvaluatedUserId"]}
    ).json()
    assert [u["userId"] for u in rest["users"]] == ["u3"]
    assert "lastEvaluatedUserId" not in rest
    by_email = http.get("/users", params={"email": "u2@example.com"}).json()
    assert [u["userId"] for u in by_email["users"]] == ["u2"]

    token = authsignal.track("u3", "signIn")["token"]
    by_token = http.get("/users", params={"token": token}).json()
    assert [u["userId"] for u in by_token["users"]] == ["u3"]
    assert by_token["tokenPayload"]["actionCode"] == "signIn"
