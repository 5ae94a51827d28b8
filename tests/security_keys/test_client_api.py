"""Security keys (SK1-SK4) against a real server on both databases, a software CTAP2
authenticator answering as a cross-platform key: enrolment and verification with bare
WebAuthn JSON, the challenge found by its bytes in clientDataJSON, and the refusals."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from authsignal.client import AuthsignalClient

from passgate.authenticators import SoftwareAuthenticator
from passgate.server.services import challenges, tenants
from passgate.server.store.db import Db
from passgate.server.store.tables import utcnow
from tests.live_server import LiveServer, Tenant
from tests.passkeys.helpers import Ceremony, b64url, bearer, with_client_data
from tests.security_keys.helpers import SecurityKeys, challenge_in, message_of
from tests.server.test_refusals import assert_error

# Browsers take long challenges, but keep the message far from any limit: it is fixed-size
# (the token's user and action are bound by a hash), so this holds for the longest names too.
MAX_MESSAGE_BYTES = 512


@pytest.fixture
def keys(server: LiveServer, authsignal: AuthsignalClient) -> Iterator[SecurityKeys]:
    flow = SecurityKeys(server.api_url, authsignal)
    yield flow
    flow.close()


@pytest.fixture
def other_keys(server: LiveServer, other_tenant: Tenant) -> Iterator[SecurityKeys]:
    client = AuthsignalClient(
        api_secret_key=other_tenant.secret_key, api_url=server.api_url, timeout=10
    )
    flow = SecurityKeys(server.api_url, client)
    yield flow
    flow.close()
    client.session.close()


def valid(authsignal: AuthsignalClient, token: str) -> dict[str, Any]:
    result = authsignal.validate_challenge({"token": token})
    assert result["is_valid"], result
    return dict(result)


def test_enrol_verify_and_list(
    keys: SecurityKeys, authsignal: AuthsignalClient, tmp_path: Path
) -> None:
    key = SoftwareAuthenticator(tmp_path / "key.bin")
    token = keys.track("sk-alice", "signUp")
    options = keys.options(token, registration=True)
    assert "challengeId" not in options and "options" not in options  # bare WebAuthn JSON
    assert options["authenticatorSelection"] == {
        "authenticatorAttachment": "cross-platform",
        "residentKey": "discouraged",
        "requireResidentKey": False,
        "userVerification": "preferred",
    }
    assert options["hints"] == ["security-key"]
    assert options["excludeCredentials"] == []
    message = message_of(options)
    assert message.startswith("c1.") and len(message) <= MAX_MESSAGE_BYTES

    added = keys.add(token, key.create(options))
    assert added.status_code == 200, added.text
    body = added.json()
    assert body["isVerified"] is True and body["userId"] == "sk-alice"
    assert body["userAuthenticator"]["verificationMethod"] == "SECURITY_KEY"
    assert body["userAuthenticator"]["webauthnCredential"]["credentialId"] == body["credentialId"]
    enrolled = valid(authsignal, body["accessToken"])
    assert (enrolled["action"], enrolled["verification_method"]) == ("signUp", "SECURITY_KEY")

    # C7 and the Server API list it as a security key with its WebAuthn credential.
    listed = keys.http.get("/client/user-authenticators", headers=bearer(body["accessToken"]))
    (authenticator,) = listed.json()
    assert authenticator["verificationMethod"] == "SECURITY_KEY"
    assert authenticator["userAuthenticatorId"] == body["userAuthenticatorId"]
    assert authenticator["webauthnCredential"]["credentialId"] == body["credentialId"]
    assert authenticator["webauthnCredential"]["authenticatorAttachment"] == "cross-platform"
    server_side = authsignal.get_authenticators("sk-alice")
    (listed_by_backend,) = server_side
    assert listed_by_backend["verification_method"] == "SECURITY_KEY"
    assert listed_by_backend["webauthn_credential"]["credential_id"] == body["credentialId"]

    # SK3 names the key; SK4 settles the new action with SECURITY_KEY.
    token = keys.track("sk-alice", "transfer")
    options = keys.options(token, registration=False)
    assert [c["id"] for c in options["allowCredentials"]] == [body["credentialId"]]
    assert "challengeId" not in options and options["hints"] == ["security-key"]
    assertion = key.get(options)
    verified = keys.verify(token, assertion)
    assert verified.status_code == 200, verified.text
    assert verified.json()["isVerified"] is True
    checked = valid(authsignal, verified.json()["accessToken"])
    assert (checked["action"], checked["user_id"]) == ("transfer", "sk-alice")
    assert checked["verification_method"] == "SECURITY_KEY"

    # The same answer again: its challenge is spent.
    assert_error(keys.verify(token, assertion), 400, "challenge_already_used")


def test_refusals(
    keys: SecurityKeys, other_keys: SecurityKeys, ceremony: Ceremony, tmp_path: Path
) -> None:
    alice_key = SoftwareAuthenticator(tmp_path / "alice.bin")
    bob_key = SoftwareAuthenticator(tmp_path / "bob.bin")
    keys.enrol(alice_key, "sk-ref-alice")
    keys.enrol(bob_key, "sk-ref-bob")
    other_keys.enrol(alice_key, "sk-ref-alice")  # the same key, enrolled at another tenant too

    token = keys.track("sk-ref-alice")
    options = keys.options(token, registration=False)

    # Another tenant's challenge (an option of its own, for the same user id): unknown here.
    foreign = other_keys.options(other_keys.track("sk-ref-alice"), registration=False)
    forged = alice_key.get({**options, "challenge": foreign["challenge"]})
    assert_error(keys.verify(token, forged), 400, "challenge_not_found")

    # A registration challenge (another purpose) and a passkey challenge: unknown here.
    add_token = keys.track("sk-ref-alice", "addKey", scope="add:authenticators")
    registration = keys.options(add_token, registration=True)
    forged = alice_key.get({**options, "challenge": registration["challenge"]})
    assert_error(keys.verify(token, forged), 400, "challenge_not_found")
    passkey_challenge, _ = ceremony.authentication_options()
    forged = alice_key.get({**options, "challenge": b64url(passkey_challenge.encode())})
    assert_error(keys.verify(token, forged), 400, "challenge_not_found")

    # Alice's challenge answered with Bob's token: made for another user, left unspent.
    assertion = alice_key.get(options)
    bob_token = keys.track("sk-ref-bob")
    assert_error(keys.verify(bob_token, assertion), 400, "challenge_not_found")
    # Bob's key answering Alice's challenge with Alice's token: not her key.
    bob_options = {**options, "allowCredentials": []}
    assert_error(keys.verify(token, bob_key.get(bob_options)), 400, "credential_user_mismatch")

    # An assertion whose clientDataJSON names another (valid, unspent) challenge of Alice's:
    # the signature covers the first, so it fails, and the second challenge is burnt.
    token = keys.track("sk-ref-alice")
    first = keys.options(token, registration=False)
    second = keys.options(token, registration=False)
    swapped = with_client_data(alice_key.get(first), challenge=second["challenge"])
    assert challenge_in(swapped) == second["challenge"]
    assert_error(keys.verify(token, swapped), 400, "verification_failed")
    assert_error(keys.verify(token, alice_key.get(second)), 400, "challenge_already_used")
    verified = keys.verify(token, alice_key.get(first))  # the first is still good
    assert verified.status_code == 200, verified.text

    # Garbage where the challenge should be.
    garbage = with_client_data(alice_key.get(first), challenge=b64url(b"\xff\x00"))
    assert_error(keys.verify(token, garbage), 400, "challenge_not_found")
    # Bodies that are no WebAuthn response: 400 in Authsignal's shape, never a 500.
    assert_error(keys.verify(token, [1]), 400, "invalid_request")  # type: ignore[arg-type]
    crowded = {f"k{n}": n for n in range(17)}
    assert_error(keys.verify(token, crowded), 400, "invalid_request")
    assert_error(keys.add(token, {"response": {}}), 400, "malformed_credential")
    not_json = {"response": {"clientDataJSON": b64url(b"[1, 2]")}}
    assert_error(keys.verify(token, not_json), 400, "challenge_not_found")
    # SK3 for a user without a security key.
    assert_error(keys.authentication_options(keys.track("sk-ref-nobody")), 400, "no_security_key")
    # Every call needs a Bearer token.
    assert (
        keys.http.post("/client/verify/security-key", json=alice_key.get(first)).status_code == 401
    )


def test_passkeys_and_security_keys_stay_apart(
    keys: SecurityKeys,
    ceremony: Ceremony,
    authsignal: AuthsignalClient,
    tmp_path: Path,
) -> None:
    phone = SoftwareAuthenticator(tmp_path / "phone.bin")
    key = SoftwareAuthenticator(tmp_path / "key.bin")
    passkey = ceremony.register(phone, "sk-mixed")

    # Enrolled already: a second authenticator needs the scope (the one enrolment rule).
    assert_error(keys.registration_options(keys.track("sk-mixed", "addKey")), 403, "forbidden")
    token = keys.track("sk-mixed", "addKey", scope="add:authenticators")
    options = keys.options(token, registration=True)
    # The user's passkey is excluded too: one authenticator is not enrolled twice.
    assert [c["id"] for c in options["excludeCredentials"]] == [passkey["credentialId"]]
    added = keys.add(token, key.create(options))
    assert added.status_code == 200, added.text
    # The token's action has added its one authenticator.
    assert_error(keys.registration_options(token), 403, "forbidden")

    # SK3 names only the security key; a passkey answering SK4 is refused.
    token = keys.track("sk-mixed")
    options = keys.options(token, registration=False)
    assert [c["id"] for c in options["allowCredentials"]] == [added.json()["credentialId"]]
    as_passkey = phone.get({**options, "allowCredentials": []})
    assert_error(keys.verify(token, as_passkey), 400, "not_a_security_key")

    # The passkey routes take the security key but record the method it is.
    challenge_id, request = ceremony.authentication_options()
    verified = ceremony.verify(challenge_id, key.get(request))
    assert verified.status_code == 200, verified.text
    assert valid(authsignal, verified.json()["accessToken"])["verification_method"] == (
        "SECURITY_KEY"
    )
    # A security-key challenge is no passkey challenge.
    token = keys.track("sk-mixed", "addPasskey", scope="add:authenticators")
    options = keys.options(token, registration=True)
    laptop = SoftwareAuthenticator(tmp_path / "laptop.bin")
    refused = ceremony.add(token, message_of(options), laptop.create(options))
    assert_error(refused, 400, "challenge_not_found")


def test_a_cloned_key_is_flagged(keys: SecurityKeys, tmp_path: Path) -> None:
    key = SoftwareAuthenticator(tmp_path / "key.bin")
    added = keys.enrol(key, "sk-clone")
    for suffix in ("", ".key"):
        shutil.copy(tmp_path / f"key.bin{suffix}", tmp_path / f"clone.bin{suffix}")
    clone = SoftwareAuthenticator(tmp_path / "clone.bin")
    token = keys.track("sk-clone")
    assert keys.verify(token, keys.assertion(key, token)).status_code == 200
    token = keys.track("sk-clone")
    assert keys.verify(token, keys.assertion(key, token)).status_code == 200
    token = keys.track("sk-clone")
    refused = keys.verify(token, keys.assertion(clone, token))
    assert_error(refused, 400, "sign_count_regressed")
    listed = keys.http.get("/client/user-authenticators", headers=bearer(added["accessToken"]))
    assert listed.json()[0]["errorCode"] == "possible_clone"


def test_an_expired_challenge_is_refused(
    server: LiveServer, tenant: Tenant, keys: SecurityKeys, tmp_path: Path
) -> None:
    key = SoftwareAuthenticator(tmp_path / "key.bin")
    keys.enrol(key, "sk-late")
    token = keys.track("sk-late")
    options = keys.options(token, registration=False)

    async def expired(db: Db) -> str:
        row = await tenants.get_tenant(db, tenant.id)
        purpose = challenges.Purpose.SECURITY_KEY_AUTHENTICATION
        return challenges.issue(row, purpose, timedelta(seconds=-1), utcnow()).id

    late = b64url(server.run(expired).encode())
    assert_error(
        keys.verify(token, key.get({**options, "challenge": late})), 400, "challenge_expired"
    )
