"""The Python SDK against a real server on loopback, as an app uses it: sign up, sign in
(discoverable, for an action, with a token), validate with Authsignal's own server SDK,
restart the authenticator from its file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from authsignal.client import AuthsignalClient

from passgate import Authsignal, AuthsignalSync
from passgate.authenticators import SoftwareAuthenticator
from tests.live_server import LiveServer, Tenant


@pytest.fixture
def device(tmp_path: Path) -> SoftwareAuthenticator:
    return SoftwareAuthenticator(tmp_path / "passkeys.bin", "correct horse")


@pytest.fixture
def app(
    server: LiveServer, tenant: Tenant, device: SoftwareAuthenticator
) -> Iterator[AuthsignalSync]:
    client = AuthsignalSync(tenant.id, server.api_url, passkey_authenticator=device)
    yield client
    client.close()


def sign_up(authsignal: AuthsignalClient, app: AuthsignalSync, user_id: str) -> str:
    tracked = authsignal.track(user_id, "signUp", {"username": f"{user_id}@example.com"})
    result = app.passkey.sign_up(tracked["token"], f"{user_id}@example.com")
    assert result.error is None, result
    assert result.data is not None and result.data.token
    return result.data.token


def test_sign_up_then_validate(authsignal: AuthsignalClient, app: AuthsignalSync) -> None:
    token = sign_up(authsignal, app, "alice")
    validated = authsignal.validate_challenge({"token": token})
    assert validated["is_valid"] is True
    assert validated["user_id"] == "alice"
    assert validated["action"] == "signUp"
    assert validated["verification_method"] == "PASSKEY"
    assert authsignal.validate_challenge({"token": token})["is_valid"] is False  # once
    methods = authsignal.get_user("alice")["enrolled_verification_methods"]
    assert methods == ["PASSKEY"]


def test_discoverable_sign_in(
    server: LiveServer,
    tenant: Tenant,
    authsignal: AuthsignalClient,
    app: AuthsignalSync,
    device: SoftwareAuthenticator,
) -> None:
    sign_up(authsignal, app, "bob")
    fresh = AuthsignalSync(tenant.id, server.api_url, passkey_authenticator=device)
    result = fresh.passkey.sign_in()
    fresh.close()
    assert result.error is None, result
    assert result.data is not None and result.data.is_verified
    assert result.data.user_id == "bob"
    assert result.data.username == "bob@example.com"
    validated = authsignal.validate_challenge({"token": result.data.token})
    assert validated["is_valid"] and validated["action"] == "signInWithPasskey"


def test_sign_in_for_an_action(
    server: LiveServer, tenant: Tenant, authsignal: AuthsignalClient, app: AuthsignalSync
) -> None:
    sign_up(authsignal, app, "carol")
    app2 = AuthsignalSync(
        tenant.id, server.api_url, passkey_authenticator=app.passkey._authenticator
    )
    result = app2.passkey.sign_in(action="approvePayment")
    app2.close()
    assert result.data is not None, result
    validated = authsignal.validate_challenge(
        {"token": result.data.token, "action": "approvePayment"}
    )
    assert validated["is_valid"] and validated["user_id"] == "carol"


def test_sign_in_with_a_tracked_token(authsignal: AuthsignalClient, app: AuthsignalSync) -> None:
    sign_up(authsignal, app, "dave")
    tracked = authsignal.track("dave", "withdraw")
    assert tracked["state"] == "CHALLENGE_REQUIRED"
    result = app.passkey.sign_in(token=tracked["token"])
    assert result.data is not None, result
    assert authsignal.validate_challenge({"token": result.data.token})["is_valid"]
    action = authsignal.get_action("dave", "withdraw", tracked["idempotency_key"])
    assert action["state"] == "CHALLENGE_SUCCEEDED"


def test_a_decided_action_is_not_overturned_by_a_passkey(
    authsignal: AuthsignalClient, app: AuthsignalSync
) -> None:
    """The one rule for challenge results (services/actions.settle), shared with push: only
    an action waiting for a challenge takes a result."""
    sign_up(authsignal, app, "erin")
    tracked = authsignal.track("erin", "withdraw")
    authsignal.update_action(
        "erin", "withdraw", tracked["idempotency_key"], {"state": "CHALLENGE_FAILED"}
    )
    result = app.passkey.sign_in(token=tracked["token"])
    assert result.data is None
    assert result.error_code == "forbidden"
    action = authsignal.get_action("erin", "withdraw", tracked["idempotency_key"])
    assert action["state"] == "CHALLENGE_FAILED"
    assert authsignal.validate_challenge({"token": tracked["token"]})["is_valid"] is False


def test_authenticator_restarts_from_its_file(
    server: LiveServer,
    tenant: Tenant,
    authsignal: AuthsignalClient,
    app: AuthsignalSync,
    tmp_path: Path,
) -> None:
    sign_up(authsignal, app, "erin")
    restarted = SoftwareAuthenticator(tmp_path / "passkeys.bin", "correct horse")
    client = AuthsignalSync(tenant.id, server.api_url, passkey_authenticator=restarted)
    assert client.passkey.should_prompt_to_create_passkey().data is False
    result = client.passkey.sign_in()
    client.close()
    assert result.data is not None and result.data.user_id == "erin"


async def test_async_client(
    server: LiveServer, tenant: Tenant, authsignal: AuthsignalClient, tmp_path: Path
) -> None:
    device = SoftwareAuthenticator(tmp_path / "a.bin", algorithms=["EdDSA"])
    async with Authsignal(tenant.id, server.api_url, passkey_authenticator=device) as client:
        assert await client.passkey.is_supported()
        assert (await client.passkey.should_prompt_to_create_passkey()).data is True
        tracked = authsignal.track("frank", "signUp")
        up = await client.passkey.sign_up(tracked["token"], "frank")
        assert up.data is not None, up
        client.set_token("")
        client._token = None
        signed_in = await client.passkey.sign_in()
        assert signed_in.data is not None and signed_in.data.user_id == "frank"
        assert (await client.passkey.is_available_on_device()).data is True


def test_deleting_the_authenticator_or_the_user_forgets_the_passkey(
    server: LiveServer, tenant: Tenant, authsignal: AuthsignalClient, app: AuthsignalSync
) -> None:
    sign_up(authsignal, app, "gina")
    (passkey,) = authsignal.get_authenticators("gina")
    # The Server API shows the WebAuthn half too, as Authsignal's UserAuthenticator does.
    assert passkey["verification_method"] == "PASSKEY"
    assert passkey["webauthn_credential"]["credential_id"]
    assert passkey["webauthn_credential"]["credential_backed_up"] is False
    authsignal.delete_authenticator("gina", passkey["user_authenticator_id"])
    fresh = AuthsignalSync(
        tenant.id, server.api_url, passkey_authenticator=app.passkey._authenticator
    )
    assert fresh.passkey.sign_in().error_code == "unknown_credential"
    sign_up(authsignal, fresh, "gina")
    authsignal.delete_user("gina")
    assert fresh.passkey.sign_in(action="again").error_code == "unknown_credential"
    fresh.close()


def test_a_sign_in_records_when_the_passkey_last_verified(
    server: LiveServer,
    tenant: Tenant,
    authsignal: AuthsignalClient,
    app: AuthsignalSync,
    device: SoftwareAuthenticator,
) -> None:
    """The write after a verified assertion (one statement on PostgreSQL with the action's,
    one per table on SQLite) records lastVerifiedAt, and a later sign-in moves it on."""
    sign_up(authsignal, app, "erin")

    def last_verified() -> str | None:
        found = authsignal.get_authenticators("erin")
        passkeys = [a for a in found if a["verification_method"] == "PASSKEY"]
        assert len(passkeys) == 1
        value = passkeys[0].get("last_verified_at")
        return str(value) if value is not None else None

    before = last_verified()
    seen = []
    for _ in range(2):
        fresh = AuthsignalSync(tenant.id, server.api_url, passkey_authenticator=device)
        result = fresh.passkey.sign_in()
        fresh.close()
        assert result.data is not None and result.data.user_id == "erin", result
        seen.append(last_verified())
    assert seen[0] is not None and seen[0] != before
    assert seen[1] is not None and seen[1] > seen[0]
