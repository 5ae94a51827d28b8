"""One rule for adding an authenticator, the same for passkeys (C2/C3) and push devices (P2)
(docs/wire.md#scopes): a user with none enrols with any token of theirs; an enrolled user only
with a token scoped `add:authenticators`, or of an action a challenge verified within the
tenant's window and not yet validated; each token's action adds one authenticator, once."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from authsignal.client import AuthsignalClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import update

from passgate.authenticators import SoftwareAuthenticator
from passgate.server.services import enrolment, tenants
from passgate.server.services.enums import ActionOutcome
from passgate.server.store.db import Db
from passgate.server.store.tables import Action, utcnow
from tests.cli.test_cli import passgate
from tests.live_server import LiveServer, Tenant
from tests.passkeys.helpers import bearer
from tests.server.test_refusals import assert_error

PASSKEY = "/client/user-authenticators/passkey"
PUSH = "/client/user-authenticators/push"
SCOPED = {"scope": "add:authenticators"}


class Methods:
    """Adding a passkey and adding a push device, each with a given token, as an app does."""

    def __init__(self, server: LiveServer, tmp_path: Path) -> None:
        self.http = httpx.Client(base_url=server.api_url, timeout=10)
        self.tmp_path = tmp_path
        self.made = 0
        self.last_device: SoftwareAuthenticator | None = None

    def passkey(self, token: str) -> httpx.Response:
        """C2 then C3; the refusal of whichever step refused."""
        self.made += 1
        device = self.last_device = SoftwareAuthenticator(self.tmp_path / f"pk-{self.made}.bin")
        options = self.http.post(f"{PASSKEY}/registration-options", headers=bearer(token), json={})
        if options.status_code != 200:
            return options
        body = options.json()
        return self.http.post(
            PASSKEY,
            headers=bearer(token),
            json={
                "challengeId": body["challengeId"],
                "registrationCredential": device.create(body["options"]),
            },
        )

    def push(self, token: str) -> httpx.Response:
        """P2 with a new device key."""
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        spki = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return self.http.post(
            PUSH, headers=bearer(token), json={"publicKey": base64.b64encode(spki).decode()}
        )

    def close(self) -> None:
        self.http.close()


Add = Callable[[Methods, str], httpx.Response]
METHODS = [pytest.param(Methods.passkey, id="passkey"), pytest.param(Methods.push, id="push")]


@pytest.fixture
def methods(server: LiveServer, tmp_path: Path) -> Iterator[Methods]:
    made = Methods(server, tmp_path)
    yield made
    made.close()


def enrolled(authsignal: AuthsignalClient, methods: Methods, user_id: str) -> SoftwareAuthenticator:
    """Give `user_id` a first passkey (any token of theirs will do) and return its device."""
    token = authsignal.track(user_id, "signUp")["token"]
    assert methods.passkey(token).status_code == 200
    assert methods.last_device is not None
    return methods.last_device


def sign_in(methods: Methods, device: SoftwareAuthenticator, token: str) -> str:
    """Verify the token's action with the passkey (C4 and C5 with Bearer): its accessToken."""
    started = methods.http.post(f"{PASSKEY}/authentication-options", headers=bearer(token), json={})
    assert started.status_code == 200, started.text
    verified = methods.http.post(
        "/client/verify/passkey",
        headers=bearer(token),
        json={
            "challengeId": started.json()["challengeId"],
            "authenticationCredential": device.get(started.json()["options"]),
        },
    )
    assert verified.status_code == 200, verified.text
    return str(verified.json()["accessToken"])


def count(authsignal: AuthsignalClient, user_id: str) -> int:
    return len(authsignal.get_authenticators(user_id))


@pytest.mark.parametrize("add", METHODS)
def test_an_allowed_actions_token_adds_nothing_to_an_enrolled_user(
    server: LiveServer, tenant: Tenant, authsignal: AuthsignalClient, methods: Methods, add: Add
) -> None:
    """A rule's ALLOW verified nobody: its token is no licence to add an authenticator."""

    async def allow(db: Db) -> None:
        await tenants.set_action_outcome(db, tenant.id, "login", ActionOutcome.ALLOW)

    server.run(allow)
    enrolled(authsignal, methods, "al")
    tracked = authsignal.track("al", "login")
    assert tracked["state"] == "ALLOW"
    assert_error(add(methods, tracked["token"]), 403, "forbidden")
    assert count(authsignal, "al") == 1


@pytest.mark.parametrize("add", METHODS)
def test_a_scoped_token_adds_one_authenticator(
    authsignal: AuthsignalClient, methods: Methods, add: Add
) -> None:
    enrolled(authsignal, methods, "bo")
    scoped = authsignal.track("bo", "addAuthenticator", SCOPED)["token"]
    assert add(methods, scoped).status_code == 200
    assert_error(add(methods, scoped), 403, "forbidden")  # used up
    assert count(authsignal, "bo") == 2


@pytest.mark.parametrize("add", METHODS)
def test_a_first_enrolment_uses_the_token_up_too(
    authsignal: AuthsignalClient, methods: Methods, add: Add
) -> None:
    token = authsignal.track("cy", "signUp")["token"]
    assert add(methods, token).status_code == 200
    assert_error(methods.passkey(token), 403, "forbidden")
    assert_error(methods.push(token), 403, "forbidden")
    assert count(authsignal, "cy") == 1


@pytest.mark.parametrize("add", METHODS)
def test_an_action_a_challenge_just_verified_adds_one(
    authsignal: AuthsignalClient, methods: Methods, add: Add
) -> None:
    device = enrolled(authsignal, methods, "di")
    access_token = sign_in(methods, device, authsignal.track("di", "signIn")["token"])
    assert add(methods, access_token).status_code == 200
    assert_error(add(methods, access_token), 403, "forbidden")  # used up
    # The sign-in itself is still the backend's to redeem.
    assert authsignal.validate_challenge({"token": access_token})["is_valid"] is True


@pytest.mark.parametrize("add", METHODS)
def test_a_validated_action_adds_nothing(
    authsignal: AuthsignalClient, methods: Methods, add: Add
) -> None:
    device = enrolled(authsignal, methods, "ed")
    access_token = sign_in(methods, device, authsignal.track("ed", "signIn")["token"])
    assert authsignal.validate_challenge({"token": access_token})["is_valid"] is True
    assert_error(add(methods, access_token), 403, "forbidden")
    assert count(authsignal, "ed") == 1


@pytest.mark.parametrize("add", METHODS)
def test_a_verification_counts_only_within_the_window(
    server: LiveServer, tenant: Tenant, authsignal: AuthsignalClient, methods: Methods, add: Add
) -> None:
    device = enrolled(authsignal, methods, "fi")
    tracked = authsignal.track("fi", "signIn")
    access_token = sign_in(methods, device, tracked["token"])

    async def six_minutes_ago(db: Db) -> None:
        await db.execute(
            update(Action)
            .where(
                Action.tenant_id == tenant.id, Action.idempotency_key == tracked["idempotency_key"]
            )
            .values(state_updated_at=utcnow() - timedelta(minutes=6))
        )

    server.run(six_minutes_ago)  # the default window is 5 minutes
    assert_error(add(methods, access_token), 403, "forbidden")

    async def window(db: Db, minutes: int) -> None:
        await enrolment.set_window(db, tenant.id, minutes)

    server.run(lambda db: window(db, 10))  # a tenant with a longer window
    assert add(methods, access_token).status_code == 200

    server.run(lambda db: window(db, 0))  # a tenant that wants the scope always
    fresh = sign_in(methods, device, authsignal.track("fi", "signIn")["token"])
    assert_error(add(methods, fresh), 403, "forbidden")
    assert count(authsignal, "fi") == 2


@pytest.mark.parametrize("add", METHODS)
def test_a_backends_patch_is_no_verification(
    http: httpx.Client, authsignal: AuthsignalClient, methods: Methods, add: Add
) -> None:
    enrolled(authsignal, methods, "gil")
    tracked = authsignal.track("gil", "signIn")
    patched = http.patch(
        f"/users/gil/actions/signIn/{tracked['idempotency_key']}",
        json={"state": "CHALLENGE_SUCCEEDED"},
    )
    assert patched.status_code == 200, patched.text
    assert_error(add(methods, tracked["token"]), 403, "forbidden")


def test_passkeys_and_push_refuse_alike(authsignal: AuthsignalClient, methods: Methods) -> None:
    enrolled(authsignal, methods, "hu")
    token = authsignal.track("hu", "signIn")["token"]
    passkey = assert_error(methods.passkey(token), 403, "forbidden")
    push = assert_error(methods.push(token), 403, "forbidden")
    assert passkey["errorDescription"] == push["errorDescription"]
    assert "add:authenticators" in push["errorDescription"]


def test_a_token_adds_one_authenticator_across_methods(
    authsignal: AuthsignalClient, methods: Methods
) -> None:
    enrolled(authsignal, methods, "ivo")
    scoped = authsignal.track("ivo", "addAuthenticator", SCOPED)["token"]
    assert methods.push(scoped).status_code == 200
    assert_error(methods.passkey(scoped), 403, "forbidden")
    assert count(authsignal, "ivo") == 2


def test_the_window_is_a_tenant_setting_of_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    created = passgate(
        "tenant", "create", "--name", "Shop", "--rp-id", "shop.example",
        "--database-url", url, "--json",
    )  # fmt: skip
    tenant_id = json.loads(created.stdout)["tenantId"]

    def window(*options: str) -> subprocess.CompletedProcess[str]:
        return passgate("tenant", "enrolment", tenant_id, *options, "--database-url", url)

    assert window().stdout == "enrolment window: 5 min\n"
    assert window("--window-minutes", "0").stdout == "enrolment window: 0 min\n"
    refused = window("--window-minutes", "61")
    assert refused.returncode == 1 and "0-60 minutes" in refused.stderr
    assert window().stdout == "enrolment window: 0 min\n"
