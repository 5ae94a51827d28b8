"""One rule for adding an authenticator, the same for passkeys (C2/C3) and push devices (P2)
(docs/wire.md#scopes): a user with none enrols with any token of theirs; an enrolled user only
with a token scoped `add:authenticators`, or of an action a challenge verified within the
tenant's window and not yet validated, by a strong method or one of the tenant's recovery
methods (docs/recovery.md); each token's action adds one authenticator, once."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from authsignal.client import AuthsignalClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import update

from passgate.authenticators import SoftwareAuthenticator
from passgate.server.services import audit, enrolment, recovery, tenants
from passgate.server.services.enums import ActionOutcome, VerificationMethod
from passgate.server.services.errors import InvalidRequest
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


# Recovery methods: a fresh verification by a fallback method gives leave only when the tenant
# lists that method among its recovery methods (EMAIL_OTP unless set); a strong one always.


def verified_by(server: LiveServer, tenant: Tenant, idempotency_key: str, method: str) -> None:
    """Settle the tracked action as a verify by `method` does (the fallback methods' own
    routes are tested in their own suites; here only the rule's reading of the result)."""

    async def settle(db: Db) -> None:
        await db.execute(
            update(Action)
            .where(Action.tenant_id == tenant.id, Action.idempotency_key == idempotency_key)
            .values(
                state="CHALLENGE_SUCCEEDED", verification_method=method, state_updated_at=utcnow()
            )
        )

    server.run(settle)


def set_recovery(server: LiveServer, tenant: Tenant, *names: str) -> None:
    async def work(db: Db) -> None:
        await recovery.set_methods(db, audit.cli_actor(), tenant.id, names)

    server.run(work)


def recovery_events(http: httpx.Client, user_id: str) -> list[dict[str, Any]]:
    listed = http.get("/audit-events", params={"limit": 200})
    assert listed.status_code == 200, listed.text
    return [
        event
        for event in listed.json()["events"]
        if event["action"] == "user.recovery.used" and event["targetId"] == user_id
    ]


@pytest.mark.parametrize("add", METHODS)
def test_an_email_code_recovers_by_default_and_is_recorded(
    server: LiveServer,
    tenant: Tenant,
    authsignal: AuthsignalClient,
    methods: Methods,
    add: Add,
    http: httpx.Client,
) -> None:
    enrolled(authsignal, methods, "jo")
    tracked = authsignal.track("jo", "signIn")
    verified_by(server, tenant, tracked["idempotency_key"], "EMAIL_OTP")
    assert add(methods, tracked["token"]).status_code == 200
    assert count(authsignal, "jo") == 2
    [event] = recovery_events(http, "jo")
    assert event["details"]["verificationMethod"] == "EMAIL_OTP"
    assert event["details"]["idempotencyKey"] == tracked["idempotency_key"]
    added = {a["user_authenticator_id"] for a in authsignal.get_authenticators("jo")}
    assert event["details"]["authenticatorId"] in added


@pytest.mark.parametrize("add", METHODS)
@pytest.mark.parametrize("method", ["SMS", "AUTHENTICATOR_APP", "EMAIL_MAGIC_LINK"])
def test_a_method_the_tenant_did_not_list_does_not_recover(
    server: LiveServer,
    tenant: Tenant,
    authsignal: AuthsignalClient,
    methods: Methods,
    add: Add,
    method: str,
    http: httpx.Client,
) -> None:
    enrolled(authsignal, methods, "ka")
    tracked = authsignal.track("ka", "signIn")
    verified_by(server, tenant, tracked["idempotency_key"], method)
    refused = assert_error(add(methods, tracked["token"]), 403, "forbidden")
    assert "recovery methods" in refused["errorDescription"]
    assert count(authsignal, "ka") == 1
    # Listed, the same verification now gives leave.
    set_recovery(server, tenant, "EMAIL_OTP", method)
    assert add(methods, tracked["token"]).status_code == 200
    assert [e["details"]["verificationMethod"] for e in recovery_events(http, "ka")] == [method]


def test_a_tenant_without_recovery_methods_needs_a_strong_method(
    server: LiveServer, tenant: Tenant, authsignal: AuthsignalClient, methods: Methods
) -> None:
    device = enrolled(authsignal, methods, "lu")
    set_recovery(server, tenant)
    tracked = authsignal.track("lu", "signIn")
    verified_by(server, tenant, tracked["idempotency_key"], "EMAIL_OTP")
    assert_error(methods.passkey(tracked["token"]), 403, "forbidden")
    # A passkey's verification always counts, and is no recovery.
    access_token = sign_in(methods, device, authsignal.track("lu", "signIn")["token"])
    assert methods.push(access_token).status_code == 200
    for strong in ("PUSH", "SECURITY_KEY"):
        tracked = authsignal.track("lu", "signIn")
        verified_by(server, tenant, tracked["idempotency_key"], strong)
        assert methods.push(tracked["token"]).status_code == 200
    assert count(authsignal, "lu") == 4


def test_a_scoped_token_after_an_email_code_is_no_recovery(
    server: LiveServer,
    tenant: Tenant,
    authsignal: AuthsignalClient,
    methods: Methods,
    http: httpx.Client,
) -> None:
    enrolled(authsignal, methods, "mo")
    tracked = authsignal.track("mo", "addAuthenticator", SCOPED)
    verified_by(server, tenant, tracked["idempotency_key"], "EMAIL_OTP")
    assert methods.passkey(tracked["token"]).status_code == 200
    assert recovery_events(http, "mo") == []


def test_recovery_methods_are_checked(server: LiveServer, tenant: Tenant) -> None:
    async def attempt(db: Db, names: tuple[str, ...]) -> object:
        return await recovery.set_methods(db, audit.cli_actor(), tenant.id, names)

    for names, words in [
        (("PASSKEY",), "always lets a user add"),
        (("FAX",), "is not a recovery method"),
        (("VERIFF",), "is not a recovery method"),
    ]:
        with pytest.raises(InvalidRequest, match=words):
            server.run(lambda db, names=names: attempt(db, names))  # type: ignore[misc]
    chosen = server.run(lambda db: attempt(db, ("recovery_code", "EMAIL_OTP", "RECOVERY_CODE")))
    assert chosen == (VerificationMethod.RECOVERY_CODE, VerificationMethod.EMAIL_OTP)


def test_recovery_methods_are_a_tenant_setting_of_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    created = passgate(
        "tenant", "create", "--name", "Shop", "--rp-id", "shop.example",
        "--database-url", url, "--json",
    )  # fmt: skip
    tenant_id = json.loads(created.stdout)["tenantId"]

    def methods(*options: str) -> subprocess.CompletedProcess[str]:
        return passgate("tenant", "recovery", tenant_id, *options, "--database-url", url)

    assert methods().stdout == "recovery methods: EMAIL_OTP\n"
    chosen = methods("--method", "EMAIL_OTP", "--method", "RECOVERY_CODE")
    assert chosen.stdout == "recovery methods: EMAIL_OTP, RECOVERY_CODE\n"
    refused = methods("--method", "PUSH")
    assert refused.returncode == 1 and "always lets a user add" in refused.stderr
    assert methods("--none").stdout == "recovery methods: none\n"
    assert json.loads(methods("--json").stdout)["recoveryMethods"] == []
    events = passgate("audit", "list", tenant_id, "--json", "--database-url", url)
    changed = [
        event["details"]["recoveryMethods"]
        for event in json.loads(events.stdout)["events"]
        if event["action"] == "tenant.recovery_methods.changed"
    ]
    assert changed == [
        {"from": ["EMAIL_OTP", "RECOVERY_CODE"], "to": []},
        {"from": ["EMAIL_OTP"], "to": ["EMAIL_OTP", "RECOVERY_CODE"]},
    ]
