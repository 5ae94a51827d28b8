"""Tenant isolation, route by route: tenant A's secret key, tokens, device key and passkey,
pointed at tenant B's objects on every Server API and Client API route.

The table `CASES` has one probe per route, and the routes come from the app itself (walked with
FastAPI's route contexts and cross-checked against /openapi.json): a route without a case fails
`test_every_route_has_a_case`, so a new route cannot ship without its isolation probe.

Each probe runs with a new attacker tenant A, so probes never see each other's leftovers, against
one victim tenant B per database. User ids are namespaces per tenant: A's backend may well have
its own user with B's user id (the probes give A such a user, to tempt a missing tenant filter),
so a Server API call that names only a user id answers from A's own namespace. Every answer is
then one of
- refused: a 4xx in Authsignal's error shape (any status; never 2xx, never 5xx);
- A's own: any non-5xx, showing only A's data;
- public by design (B's JWKS): any non-5xx, no secret.
and in none of them does anything of B's appear: no identifier or secret of B's (ids of users,
actions, challenges, credentials, authenticators, devices; tokens; the secret key; the email)
other than what the request itself sent (an error may name the key it did not find). After
each probe B's data reads exactly as before it, and after all of them B's open ceremonies
still complete. B's user has every fallback method too (a security key, an authenticator app,
recovery codes, a magic link address), with open ceremonies of its own; the rows behind them
(codes, secrets, links, guess counters), which the API shows only in part, are read from the
database."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.routing import iter_route_contexts
from sqlalchemy import or_, select

from passgate.authenticators import SoftwareAuthenticator
from passgate.sdk._push_protocol import public_key_param, removal_message, sign
from passgate.server.app import create_app
from passgate.server.services.push import settings as push_settings
from passgate.server.settings import Settings
from passgate.server.store.db import Db
from passgate.server.store.tables import (
    MagicLink,
    OtpChallenge,
    PasskeyCredential,
    RateLimitWindow,
    RecoveryCode,
    TotpSecret,
)
from tests.live_server import LiveServer, Tenant
from tests.passkeys.helpers import b64url
from tests.receivers import SmtpReceiver, use_smtp
from tests.tenant_client import (
    ENROL_SCOPE,
    PASSKEY_PATH,
    PUSH_PATH,
    TenantClient,
    device_public_key,
    new_device_key,
)
from tests.totp.helpers import RECOVERY_PATH, TOTP_PATH, App, CodesClient, current_step

API_PREFIX = "/v1/"
SECURITY_KEY_PATH = "/user-authenticators/security-key"
MAGIC_LINK_PATH = "/user-authenticators/email-magic-link"
REMOVE_SCOPE = "remove:authenticators"
_LINK_SECRET = re.compile(r"/magic-link/([^/]+)/([^/\s]+)$")
# B's rows in the tables that the API shows only in part (codes, secrets, links, counters).
_TABLES = (OtpChallenge, MagicLink, TotpSecret, RecoveryCode, PasskeyCredential)


@dataclass
class Fallbacks:
    """B's fallback methods, all for B's shared user (whose id A's user has too), and B's open
    ceremonies with them."""

    security_key: SoftwareAuthenticator
    security_key_authenticator_id: str
    security_key_credential_id: str
    key_registration_token: str  # SK1 made for it: B adds a second key at the end
    key_registration: dict[str, Any]
    key_token: str  # SK3 made for it: B's key answers at the end
    key_authentication: dict[str, Any]
    app: App  # B's authenticator app (TOTP), verified
    app_authenticator_id: str
    recovery_code: str  # one of B's ten, unused
    recovery_authenticator_id: str
    link_authenticator_id: str  # B's verified email magic link address
    link_action: str  # an ML2 link for this action, confirmed in the mail, not finalized
    link_key: str
    link_token: str
    link_challenge_id: str

    @property
    def identifiers(self) -> dict[str, str]:
        return {
            "B's security key credential id": self.security_key_credential_id,
            "B's security key authenticator id": self.security_key_authenticator_id,
            "B's SK1 challenge": self.key_registration["challenge"],
            "B's SK3 challenge": self.key_authentication["challenge"],
            "B's SK1 token": self.key_registration_token,
            "B's SK3 token": self.key_token,
            "B's TOTP secret": self.app.secret,
            "B's TOTP authenticator id": self.app_authenticator_id,
            "B's recovery code": self.recovery_code,
            "B's recovery code authenticator id": self.recovery_authenticator_id,
            "B's magic link authenticator id": self.link_authenticator_id,
            "B's magic link action key": self.link_key,
            "B's magic link token": self.link_token,
            "B's magic link challenge id": self.link_challenge_id,
        }


@dataclass
class Victim:
    """Tenant B and everything of its that A's probes aim at."""

    server: LiveServer
    tenant: Tenant
    client: CodesClient
    smtp: SmtpReceiver  # B's mail (A's too, when a probe gives A a mail server)
    key: ec.EllipticCurvePrivateKey
    passkey: SoftwareAuthenticator
    shared_user: str  # also a user of A's: the same id in both namespaces
    own_user: str  # B's alone
    email: str
    passkey_authenticator_id: str
    credential_id: str
    device_authenticator_id: str
    email_authenticator_id: str
    push_challenge_id: str
    verification_code: str
    pending_key: str  # the idempotency key of the action the push challenge is for
    pending_token: str
    succeeded_key: str
    succeeded_token: str  # not yet redeemed
    c1_challenge_id: str
    registration_token: str
    registration: dict[str, Any]  # C2: challengeId and options
    authentication: dict[str, Any]  # C4: challengeId and options
    web_authentication: dict[str, Any]  # C4 /web: bound to B's browser cookie
    fallbacks: Fallbacks
    snapshot: dict[str, Any] = field(default_factory=dict)

    @property
    def identifiers(self) -> dict[str, str]:
        """What must never appear in an answer to A (the shared user id is A's too)."""
        return {
            "B's tenant id": self.tenant.id,
            "B's secret key": self.tenant.secret_key,
            "B's own user id": self.own_user,
            "B's user's email": self.email,
            "B's user handle": self.registration["options"]["user"]["id"],
            "B's credential id": self.credential_id,
            "B's passkey authenticator id": self.passkey_authenticator_id,
            "B's push authenticator id": self.device_authenticator_id,
            "B's email authenticator id": self.email_authenticator_id,
            "B's device public key": device_public_key(self.key),
            "B's device public key (query form)": public_key_param(self.key),
            "B's push challenge id": self.push_challenge_id,
            "B's pending action key": self.pending_key,
            "B's succeeded action key": self.succeeded_key,
            "B's pending token": self.pending_token,
            "B's succeeded token": self.succeeded_token,
            "B's registration token": self.registration_token,
            "B's C1 challenge id": self.c1_challenge_id,
            "B's C2 challenge id": self.registration["challengeId"],
            "B's C4 challenge id": self.authentication["challengeId"],
            "B's C4 /web challenge id": self.web_authentication["challengeId"],
            **self.fallbacks.identifiers,
        }

    def read(self) -> dict[str, Any]:
        """B's data as B's own backend and device see it."""
        b = self.client
        seen: dict[str, Any] = {}
        for user in (self.shared_user, self.own_user):
            for path in (
                f"/users/{user}",
                f"/users/{user}/authenticators",
                f"/users/{user}/actions",
            ):
                response = b.server("GET", path)
                assert response.status_code == 200, response.text
                seen[path] = response.json()
        pending = b.pending(self.key)
        assert pending.status_code == 200, pending.text
        seen["pending push challenge"] = pending.json().get("challengeId")
        found = b.client("GET", PASSKEY_PATH, params={"credentialId": self.credential_id})
        assert found.status_code == 200, found.text
        seen["passkey lookup"] = found.json()
        seen.update(self.server.run(self._rows))
        return seen

    async def _rows(self, db: Db) -> dict[str, Any]:
        """B's rows of the tables behind the fallback methods (codes, secrets, links: what
        the API does not show) and B's users' guess counters."""
        seen: dict[str, Any] = {}
        for table in _TABLES:
            columns = table.__table__
            rows = await db.all(select(columns).where(columns.c.tenant_id == self.tenant.id))
            seen[table.__tablename__] = sorted(repr(sorted(dict(row).items())) for row in rows)
        users = [
            hashlib.sha256(f"{self.tenant.id}\0{user}".encode()).hexdigest()[:32]
            for user in (self.shared_user, self.own_user)
        ]
        counters = await db.all(
            select(RateLimitWindow.bucket, RateLimitWindow.hits).where(
                or_(*(RateLimitWindow.bucket.contains(f":user:{user}:") for user in users))
            )
        )
        seen["B's users' guess counters"] = sorted(tuple(row.values()) for row in counters)
        return seen


def _configure_push(server: LiveServer, tenant: Tenant, **changes: Any) -> None:
    async def work(db: Db) -> None:
        await push_settings.configure(db, tenant.id, **changes)

    server.run(work)


def _confirm_link(server: LiveServer, smtp: SmtpReceiver, email: str, count: int) -> None:
    """Press the button of the `count`-th link mailed to `email`, as its page's form does."""
    link = smtp.wait(to=email, count=count).link
    found = _LINK_SECRET.search(link or "")
    assert found is not None, link
    link_id, secret = found.groups()
    confirmed = httpx.post(f"{server.url}/magic-link/{link_id}", data={"secret": secret})
    assert confirmed.status_code == 200, confirmed.text


def _give_fallbacks(
    server: LiveServer, b: CodesClient, smtp: SmtpReceiver, user: str, email: str, home: Path
) -> Fallbacks:
    """B's user gets a security key, an authenticator app, recovery codes and a magic link
    address, each verified, and open ceremonies with the key and a magic link."""
    key = SoftwareAuthenticator(home / "security-key.bin")
    token = b.token(user, "addSecurityKey", scope=ENROL_SCOPE)
    options = b.client("POST", f"{SECURITY_KEY_PATH}/registration-options", token=token, json={})
    assert options.status_code == 200, options.text
    added = b.client("POST", SECURITY_KEY_PATH, token=token, json=key.create(options.json()))
    assert added.status_code == 200, added.text
    key_registration_token = b.token(user, "addSecondKey", scope=ENROL_SCOPE)
    key_registration = b.client(
        "POST",
        f"{SECURITY_KEY_PATH}/registration-options",
        token=key_registration_token,
        json={},
    )
    assert key_registration.status_code == 200, key_registration.text
    key_token = b.token(user, "signInWithKey")
    key_authentication = b.client(
        "POST", f"{SECURITY_KEY_PATH}/authentication-options", token=key_token, json={}
    )
    assert key_authentication.status_code == 200, key_authentication.text

    app, totp = b.add_app(user, scope=ENROL_SCOPE)
    codes = b.server(
        "POST", f"/users/{user}/authenticators", json={"verificationMethod": "RECOVERY_CODE"}
    )
    assert codes.status_code == 200, codes.text

    token = b.token(user, "addEmailLink", scope=ENROL_SCOPE)
    enrolled = b.client("POST", MAGIC_LINK_PATH, token=token, json={"email": email})
    assert enrolled.status_code == 200, enrolled.text
    _confirm_link(server, smtp, email, 1)
    finalized = b.client("POST", "/verify/email-magic-link/finalize", token=token, json={})
    assert finalized.status_code == 200 and finalized.json()["isVerified"], finalized.text
    tracked = b.track(user, "signInWithLink").json()
    sent = b.client("POST", "/challenge/email-magic-link", token=tracked["token"])
    assert sent.status_code == 200, sent.text
    _confirm_link(server, smtp, email, 2)

    return Fallbacks(
        security_key=key,
        security_key_authenticator_id=added.json()["userAuthenticatorId"],
        security_key_credential_id=added.json()["credentialId"],
        key_registration_token=key_registration_token,
        key_registration=key_registration.json(),
        key_token=key_token,
        key_authentication=key_authentication.json(),
        app=app,
        app_authenticator_id=totp["userAuthenticator"]["userAuthenticatorId"],
        recovery_code=codes.json()["recoveryCodes"][0],
        recovery_authenticator_id=codes.json()["authenticator"]["userAuthenticatorId"],
        link_authenticator_id=enrolled.json()["userAuthenticatorId"],
        link_action="signInWithLink",
        link_key=tracked["idempotencyKey"],
        link_token=tracked["token"],
        link_challenge_id=sent.json()["challengeId"],
    )


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def victim(
    server: LiveServer, smtp: SmtpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Victim]:
    tenant = server.create_tenant(name="victim")
    # Long enough for the whole matrix: B's push challenge must still be pending at the end.
    # Each action B tracks for its user sends the device a challenge: let them all through.
    _configure_push(server, tenant, challenge_expiry_seconds=3600, rate_limit=50)
    use_smtp(server, tenant.id, smtp)
    b = CodesClient(server.api_url, tenant)
    tag = secrets.token_hex(4)
    shared_user, own_user = f"shared-{tag}", f"victim-{tag}"
    email = f"victim-{tag}@example.com"
    assert b.server("PATCH", f"/users/{shared_user}", json={"email": email}).status_code == 200
    home = tmp_path_factory.mktemp("victim")
    passkey = SoftwareAuthenticator(home / "passkeys.bin")
    registered = b.register_passkey(passkey, shared_user)
    key = new_device_key()
    device = b.add_device(key, shared_user)
    emailed = b.server(
        "POST",
        f"/users/{own_user}/authenticators",
        json={"verificationMethod": "EMAIL_OTP", "email": email},
    )
    assert emailed.status_code == 200, emailed.text
    # Before B's pending push challenge: nothing tracked after it may stand in its way.
    fallbacks = _give_fallbacks(server, b, smtp, shared_user, email, home)

    pending = b.track(shared_user, "payment", idempotencyKey=f"victim-pay-{tag}").json()
    assert pending["state"] == "CHALLENGE_REQUIRED" and pending["challengeId"], pending
    succeeded = b.track(own_user, "signIn", idempotencyKey=f"victim-in-{tag}").json()
    settled = b.server(
        "PATCH",
        f"/users/{own_user}/actions/signIn/{succeeded['idempotencyKey']}",
        json={"state": "CHALLENGE_SUCCEEDED"},
    )
    assert settled.status_code == 200, settled.text
    c1 = b.client("POST", "/challenge", json={"action": "signIn"})
    assert c1.status_code == 200, c1.text
    registration_token = b.token(shared_user, "addPasskey", scope=ENROL_SCOPE)
    registration = b.registration_options(registration_token)
    assert registration.status_code == 200, registration.text
    authentication = b.authentication_options()
    assert authentication.status_code == 200, authentication.text
    # B's browser: its binding cookie stays in B's client's cookie jar.
    web = b.client("POST", f"{PASSKEY_PATH}/authentication-options/web", json={})
    assert web.status_code == 200 and b.http.cookies, web.text

    world = Victim(
        server=server,
        tenant=tenant,
        client=b,
        smtp=smtp,
        key=key,
        passkey=passkey,
        shared_user=shared_user,
        own_user=own_user,
        email=email,
        passkey_authenticator_id=registered.authenticator_id,
        credential_id=str(registered.credential_id),
        device_authenticator_id=device.authenticator_id,
        email_authenticator_id=emailed.json()["authenticator"]["userAuthenticatorId"],
        push_challenge_id=pending["challengeId"],
        verification_code=pending["verificationCode"],
        pending_key=pending["idempotencyKey"],
        pending_token=pending["token"],
        succeeded_key=succeeded["idempotencyKey"],
        succeeded_token=succeeded["token"],
        c1_challenge_id=c1.json()["challengeId"],
        registration_token=registration_token,
        registration=registration.json(),
        authentication=authentication.json(),
        web_authentication=web.json(),
        fallbacks=fallbacks,
    )
    world.snapshot = world.read()
    yield world
    b.close()


class Attacker:
    """Tenant A, new for each probe, with what an attacker who runs a tenant holds: its
    secret key, tokens its backend mints, a device key and a passkey. Its user has B's shared
    user id. The device and passkey are enrolled only when a probe asks for them."""

    def __init__(self, server: LiveServer, victim: Victim, tmp_path: Path) -> None:
        self.server = server
        self.tenant = server.create_tenant(name="attacker")
        self.client = TenantClient(server.api_url, self.tenant)
        self.user = victim.shared_user
        self.tmp_path = tmp_path
        self._passkey: SoftwareAuthenticator | None = None
        self._key: ec.EllipticCurvePrivateKey | None = None

    def token(self, action: str = "signIn") -> str:
        """A fresh token of A's for A's user, allowed to add authenticators."""
        return self.client.token(self.user, action, scope=ENROL_SCOPE)

    def passkey(self) -> SoftwareAuthenticator:
        """A's passkey, registered for A's user on first use."""
        if self._passkey is None:
            self._passkey = SoftwareAuthenticator(self.tmp_path / "attacker-passkeys.bin")
            self.client.register_passkey(self._passkey, self.user)
        return self._passkey

    def key(self) -> ec.EllipticCurvePrivateKey:
        """A's device key, enrolled for A's user on first use."""
        if self._key is None:
            self._key = new_device_key()
            self.client.add_device(self._key, self.user)
        return self._key

    def nonce(self) -> str:
        """A P4 message issued to A's own device."""
        response = self.client.nonce(self.key())
        assert response.status_code == 200, response.text
        return str(response.json()["message"])


class Expect:
    """Judges each answer a probe gets, as it gets it."""

    def __init__(self, victim: Victim) -> None:
        self.victim = victim
        self.judged = 0

    def refused(self, response: httpx.Response) -> None:
        self._judge(response)
        assert 400 <= response.status_code < 500, self._describe(response, "should be refused")
        assert "errorCode" in response.json(), self._describe(response, "not in the error shape")
        self._nothing_of_b(response)

    def own(self, response: httpx.Response) -> None:
        """An answer from A's own namespace."""
        self._judge(response)
        self._nothing_of_b(response)

    def public(self, response: httpx.Response) -> None:
        self._judge(response)
        secrets_of_b = {
            name: value
            for name, value in self.victim.identifiers.items()
            if "token" in name or "secret" in name
        }
        self._absent(response, secrets_of_b)
        for key in response.json().get("keys", []):
            assert "d" not in key, self._describe(response, "shows a private key")

    def _judge(self, response: httpx.Response) -> None:
        self.judged += 1
        assert response.status_code < 500, self._describe(response, "is a server error")

    def _nothing_of_b(self, response: httpx.Response) -> None:
        """Anything of B's that A sent may be echoed (an error naming the key it did not find):
        A knew it. Nothing else of B's may appear."""
        sent = unquote(str(response.request.url)) + response.request.content.decode()
        self._absent(
            response,
            {name: value for name, value in self.victim.identifiers.items() if value not in sent},
        )

    def _absent(self, response: httpx.Response, forbidden: dict[str, str]) -> None:
        shown = [name for name, value in forbidden.items() if value in response.text]
        assert not shown, self._describe(response, f"shows {', '.join(shown)}")

    @staticmethod
    def _describe(response: httpx.Response, problem: str) -> str:
        request = response.request
        return f"{request.method} {request.url} {problem}: {response.status_code} {response.text}"


Probe = Callable[[Attacker, Victim, Expect], None]


def _with_credential_id(credential: dict[str, Any], credential_id: str) -> dict[str, Any]:
    """A's assertion, claiming to be made by B's passkey."""
    return {**credential, "id": credential_id, "rawId": credential_id}


# Server API: A's secret key.


def track(a: Attacker, b: Victim, expect: Expect) -> None:
    """A's own action with B's key: the same answer as with a key B never used (not B's
    action replayed, whose state a token of A's would then carry)."""
    for user, action, key in (
        (b.shared_user, "payment", b.pending_key),
        (b.own_user, "signIn", b.succeeded_key),
    ):
        response = a.client.track(user, action, idempotencyKey=key)
        expect.own(response)
        control = a.client.track(user, action, idempotencyKey=secrets.token_hex(8))
        assert response.status_code == control.status_code == 200, response.text
        assert response.json()["state"] == control.json()["state"], response.text
        assert "challengeId" not in response.json(), response.text


def get_action(a: Attacker, b: Victim, expect: Expect) -> None:
    expect.refused(
        a.client.server("GET", f"/users/{b.shared_user}/actions/payment/{b.pending_key}")
    )
    expect.refused(a.client.server("GET", f"/users/{b.own_user}/actions/signIn/{b.succeeded_key}"))


def update_action(a: Attacker, b: Victim, expect: Expect) -> None:
    for path in (
        f"/users/{b.shared_user}/actions/payment/{b.pending_key}",
        f"/users/{b.own_user}/actions/signIn/{b.succeeded_key}",
    ):
        for state in ("CHALLENGE_FAILED", "CHALLENGE_SUCCEEDED", "REVIEW_SUCCEEDED"):
            expect.refused(a.client.server("PATCH", path, json={"state": state}))


def query_actions(a: Attacker, b: Victim, expect: Expect) -> None:
    for user in (b.shared_user, b.own_user):
        response = a.client.server("GET", f"/users/{user}/actions")
        expect.own(response)
        assert response.json() == [], response.text


def get_user(a: Attacker, b: Victim, expect: Expect) -> None:
    for user in (b.shared_user, b.own_user):
        response = a.client.server("GET", f"/users/{user}")
        expect.own(response)
        assert response.json()["isEnrolled"] is False, response.text


def update_user(a: Attacker, b: Victim, expect: Expect) -> None:
    for user in (b.shared_user, b.own_user):
        expect.own(a.client.server("PATCH", f"/users/{user}", json={"displayName": "mallory"}))


def delete_user(a: Attacker, b: Victim, expect: Expect) -> None:
    for user in (b.shared_user, b.own_user):
        expect.own(a.client.server("DELETE", f"/users/{user}"))


def query_users(a: Attacker, b: Victim, expect: Expect) -> None:
    for params in ({"email": b.email}, {"username": b.shared_user}, {"limit": 1000}):
        response = a.client.server("GET", "/users", params=params)
        expect.own(response)
        assert response.json()["users"] == [], response.text
    for token in (b.succeeded_token, b.pending_token):
        expect.refused(a.client.server("GET", "/users", params={"token": token}))


def audit_events(a: Attacker, b: Victim, expect: Expect) -> None:
    """A's key reads A's log only. B's log holds B's authenticator ids and user ids, so a
    missing tenant filter would show them; B's own cursor pages A's log, nothing else."""
    b_log = b.client.server("GET", "/audit-events", params={"limit": 200})
    assert b.device_authenticator_id in b_log.text, b_log.text
    b_cursor = b.client.server("GET", "/audit-events", params={"limit": 1}).json()["nextCursor"]
    a.key()  # one event of A's own: its device enrolment
    for params in ({"limit": 200}, {"limit": 1, "before": b_cursor}):
        response = a.client.server("GET", "/audit-events", params=params)
        expect.own(response)
        assert all(event["targetId"] == a.user for event in response.json()["events"])
    response = a.client.server("GET", "/audit-events", params={"limit": 200})
    assert [event["action"] for event in response.json()["events"]] == [
        "user.authenticator.added"
    ], response.text


def get_authenticators(a: Attacker, b: Victim, expect: Expect) -> None:
    for user in (b.shared_user, b.own_user):
        response = a.client.server("GET", f"/users/{user}/authenticators")
        expect.own(response)
        assert response.json() == [], response.text


def enroll_authenticator(a: Attacker, b: Victim, expect: Expect) -> None:
    for user in (b.shared_user, b.own_user):
        expect.own(
            a.client.server(
                "POST",
                f"/users/{user}/authenticators",
                json={"verificationMethod": "EMAIL_OTP", "email": "mallory@example.com"},
            )
        )


def delete_authenticator(a: Attacker, b: Victim, expect: Expect) -> None:
    for user, authenticator_id in (
        (b.shared_user, b.passkey_authenticator_id),
        (b.shared_user, b.device_authenticator_id),
        (b.own_user, b.email_authenticator_id),
    ):
        path = f"/users/{user}/authenticators/{authenticator_id}"
        expect.refused(a.client.server("DELETE", path))


def validate(a: Attacker, b: Victim, expect: Expect) -> None:
    for token in (b.succeeded_token, b.pending_token, b.registration_token):
        expect.refused(a.client.validate(token))
    response = a.client.server(
        "POST",
        "/validate",
        json={"token": b.succeeded_token, "userId": b.own_user, "action": "signIn"},
    )
    expect.refused(response)


# Client API: A's tenant id (Basic), A's tokens (Bearer), A's device key and passkey.


def jwks(a: Attacker, b: Victim, expect: Expect) -> None:
    """Public by design: anyone may verify B's tokens. Still: nothing secret in it."""
    response = a.client.http.get(f"/client/public/{b.tenant.id}/.well-known/jwks")
    expect.public(response)
    assert response.status_code == 200, response.text


def _c1(path: str) -> Probe:
    def probe(a: Attacker, b: Victim, expect: Expect) -> None:
        body = {"action": "payment", "idempotencyKey": b.pending_key}
        expect.own(a.client.client("POST", path, json=body))
        expect.own(a.client.client("POST", path, token=a.token(), json=body))

    return probe


def _c2(path: str) -> Probe:
    def probe(a: Attacker, b: Victim, expect: Expect) -> None:
        a.passkey()  # A's user has a passkey: its excludeCredentials are A's only.
        for body in ({}, {"username": b.own_user}):
            response = a.client.client("POST", path, token=a.token("addPasskey"), json=body)
            expect.own(response)
            assert response.status_code == 200, response.text

    return probe


def add_passkey(a: Attacker, b: Victim, expect: Expect) -> None:
    """B's registration challenge, answered by a new passkey of A's with A's token."""
    forged = SoftwareAuthenticator(a.tmp_path / "forged.bin").create(b.registration["options"])
    token = a.token("addPasskey")
    expect.refused(a.client.add_passkey(token, b.registration["challengeId"], forged))


def authentication_options(a: Attacker, b: Victim, expect: Expect) -> None:
    for challenge_id in (b.c1_challenge_id, b.authentication["challengeId"]):
        expect.refused(a.client.authentication_options(challengeId=challenge_id))
        expect.refused(
            a.client.client(
                "POST",
                f"{PASSKEY_PATH}/authentication-options",
                token=a.token(),
                json={"challengeId": challenge_id},
            )
        )


def authentication_options_web(a: Attacker, b: Victim, expect: Expect) -> None:
    a.passkey()  # A's user has a passkey: the options list A's credentials only.
    path = f"{PASSKEY_PATH}/authentication-options/web"
    expect.own(a.client.client("POST", path, json={}))
    expect.own(a.client.client("POST", path, token=a.token(), json={}))


def verify_passkey(a: Attacker, b: Victim, expect: Expect) -> None:
    # A's passkey answering B's challenges.
    expect.refused(
        a.client.verify_passkey(
            b.authentication["challengeId"], a.passkey().get(b.authentication["options"])
        )
    )
    own = a.client.authentication_options().json()
    expect.refused(a.client.verify_passkey(b.c1_challenge_id, a.passkey().get(own["options"])))
    # B's cookie-bound challenge, with A's own binding cookie (from A's own /web call).
    web = a.client.client("POST", f"{PASSKEY_PATH}/authentication-options/web", json={})
    assert web.status_code == 200 and a.client.http.cookies, web.text
    answer = a.passkey().get(b.web_authentication["options"])
    expect.refused(a.client.verify_passkey(b.web_authentication["challengeId"], answer))
    # A's challenge, A's signature, claiming B's credential id.
    forged = _with_credential_id(a.passkey().get(own["options"]), b.credential_id)
    expect.refused(a.client.verify_passkey(own["challengeId"], forged))


def find_passkey(a: Attacker, b: Victim, expect: Expect) -> None:
    for params in (
        {"credentialId": b.credential_id},
        {"credentialIds": f"{b.credential_id},{b64url(b'nothing')}"},
    ):
        expect.refused(a.client.client("GET", PASSKEY_PATH, params=params))
        expect.refused(a.client.client("GET", PASSKEY_PATH, token=a.token(), params=params))


def list_authenticators(a: Attacker, b: Victim, expect: Expect) -> None:
    a.passkey()
    response = a.client.client("GET", "/user-authenticators", token=a.token())
    expect.own(response)
    assert len(response.json()) == 1, response.text


def _b_public_keys(b: Victim) -> list[str]:
    return [public_key_param(b.key), device_public_key(b.key)]


def get_device(a: Attacker, b: Victim, expect: Expect) -> None:
    for public_key in _b_public_keys(b):
        expect.refused(a.client.client("GET", PUSH_PATH, params={"publicKey": public_key}))


def enrol_device(a: Attacker, b: Victim, expect: Expect) -> None:
    """B's public key is public: A may enrol it in A, where A (without B's private key) can do
    nothing with it. It must neither fail with an error about B nor touch B's device."""
    body = {"publicKey": device_public_key(b.key), "deviceName": "mallory"}
    expect.own(a.client.client("POST", PUSH_PATH, token=a.token("enrollPush"), json=body))


def remove_device(a: Attacker, b: Victim, expect: Expect) -> None:
    for signer in (a.key(), new_device_key()):
        body = {
            "publicKey": device_public_key(b.key),
            "signature": sign(signer, removal_message()),
        }
        expect.refused(a.client.client("POST", f"{PUSH_PATH}/remove", json=body))


def _message_for_b(path: str) -> Probe:
    def probe(a: Attacker, b: Victim, expect: Expect) -> None:
        for public_key in _b_public_keys(b):
            expect.refused(a.client.client("POST", path, params={"publicKey": public_key}))

    return probe


def get_push_challenge(a: Attacker, b: Victim, expect: Expect) -> None:
    signature = sign(a.key(), a.nonce())
    for public_key in _b_public_keys(b):
        expect.refused(
            a.client.client(
                "GET",
                f"{PUSH_PATH}/challenge",
                params={"publicKey": public_key},
                headers={"X-Authsignal-Signature": signature},
            )
        )


def answer_push_challenge(a: Attacker, b: Victim, expect: Expect) -> None:
    # A's own device answering B's challenge, with B's number.
    expect.refused(a.client.answer(a.key(), b.push_challenge_id, code=b.verification_code))
    expect.refused(a.client.answer(a.key(), b.push_challenge_id, approved=False))
    # Claiming B's device, signed by A's key.
    body = {
        "publicKey": device_public_key(b.key),
        "challengeId": b.push_challenge_id,
        "signature": sign(a.key(), b.push_challenge_id),
        "approved": True,
        "verificationCode": b.verification_code,
    }
    expect.refused(a.client.client("POST", f"{PUSH_PATH}/challenge", json=body))


def update_device(a: Attacker, b: Victim, expect: Expect) -> None:
    response = a.client.client(
        "POST", f"{PUSH_PATH}/sign", params={"publicKey": public_key_param(a.key())}
    )
    assert response.status_code == 200, response.text
    message = response.json()["message"]
    body = {
        "challengeId": message,
        "publicKey": device_public_key(b.key),
        "signature": sign(a.key(), message),
        "pushToken": "mallory",
        "resetExpiry": True,
    }
    expect.refused(a.client.client("PATCH", PUSH_PATH, json=body))


def start_push(a: Attacker, b: Victim, expect: Expect) -> None:
    a.key()  # A's user has a device, so A's action needs a challenge
    for body in (
        {"userAuthenticatorId": b.device_authenticator_id},
        {"userAuthenticatorId": b.device_authenticator_id, "action": "signIn"},
    ):
        expect.refused(a.client.client("POST", "/challenge/push", token=a.token(), json=body))


def verify_push(a: Attacker, b: Victim, expect: Expect) -> None:
    body = {"challengeId": b.push_challenge_id}
    expect.refused(a.client.client("POST", "/verify/push", token=a.token(), json=body))
    expect.refused(a.client.client("POST", "/verify/push", token=a.token("payment"), json=body))


# One-time codes: A's token or key, aimed at B's users, contacts and challenge ids (B's
# ceremonies' ids stand in for any challenge id of B's: none may be found, claimed or read).


def otp_enrol(a: Attacker, b: Victim, expect: Expect) -> None:
    """A enrols B's address or a number for A's own user: A's own business (no tenant of B's
    is involved, and A sends nothing it cannot send)."""
    token = a.token()
    expect.own(
        a.client.client(
            "POST", "/user-authenticators/email-otp", token=token, json={"email": b.email}
        )
    )
    body = {"phoneNumber": "+6421555987"}
    expect.own(a.client.client("POST", "/user-authenticators/sms", token=token, json=body))


def _otp_challenge(kind: str) -> Probe:
    def probe(a: Attacker, b: Victim, expect: Expect) -> None:
        expect.refused(a.client.client("POST", f"/challenge/{kind}", token=a.token()))

    return probe


def _otp_verify(kind: str) -> Probe:
    def probe(a: Attacker, b: Victim, expect: Expect) -> None:
        for code in (b.verification_code, "123456"):
            body = {"verificationCode": code}
            response = a.client.client("POST", f"/verify/{kind}", token=a.token(), json=body)
            expect.own(response)
            assert response.json()["isVerified"] is False, response.text

    return probe


def otp_server_challenge(a: Attacker, b: Victim, expect: Expect) -> None:
    for body in (
        {"userId": b.shared_user, "verificationMethod": "EMAIL_OTP"},
        {"userId": b.own_user, "email": b.email},
    ):
        expect.own(a.client.server("POST", "/challenge", json=body))


def otp_server_verify(a: Attacker, b: Victim, expect: Expect) -> None:
    for challenge_id in (b.push_challenge_id, b.c1_challenge_id):
        body = {"challengeId": challenge_id, "verificationCode": b.verification_code}
        response = a.client.server("POST", "/verify", json=body)
        expect.own(response)  # a C1 challenge id is too long to be one: 400
        assert response.json().get("isVerified") is not True, response.text


def otp_claim(a: Attacker, b: Victim, expect: Expect) -> None:
    for challenge_id in (b.push_challenge_id, b.c1_challenge_id):
        for skip in (False, True):
            body = {
                "challengeId": challenge_id,
                "userId": b.shared_user,
                "skipVerificationCheck": skip,
            }
            expect.refused(a.client.server("POST", "/claim", json=body))


def otp_find(a: Attacker, b: Victim, expect: Expect) -> None:
    for params in (
        {"challengeId": b.push_challenge_id},
        {"userId": b.own_user},
        {"userId": b.shared_user, "action": "payment"},
    ):
        response = a.client.server("GET", "/challenges", params=params)
        expect.own(response)
        assert response.json() == {}, response.text


# Fallback methods: A's token for A's user (who has B's shared user's id), answered with B's
# challenges, keys, codes and links, and naming B's authenticators.


def _key_options(a: Attacker, kind: str, token: str) -> httpx.Response:
    return a.client.client("POST", f"{SECURITY_KEY_PATH}/{kind}-options", token=token, json={})


def _security_key(a: Attacker) -> tuple[SoftwareAuthenticator, str]:
    """A security key of A's, enrolled for A's user: the key and its credential id."""
    key = SoftwareAuthenticator(a.tmp_path / "attacker-key.bin")
    token = a.token("addSecurityKey")
    options = _key_options(a, "registration", token)
    assert options.status_code == 200, options.text
    added = a.client.client("POST", SECURITY_KEY_PATH, token=token, json=key.create(options.json()))
    assert added.status_code == 200, added.text
    return key, str(added.json()["credentialId"])


def key_registration_options(a: Attacker, b: Victim, expect: Expect) -> None:
    """B's user's keys and passkey are not A's user's: nothing to exclude."""
    response = _key_options(a, "registration", a.token())
    expect.own(response)
    assert response.status_code == 200, response.text
    assert response.json().get("excludeCredentials", []) == [], response.text


def add_security_key(a: Attacker, b: Victim, expect: Expect) -> None:
    """B's SK1 challenge (signed by B's tenant, for B's token) answered by a new key of A's."""
    forged = SoftwareAuthenticator(a.tmp_path / "forged.bin").create(b.fallbacks.key_registration)
    token = a.token("addSecurityKey")
    expect.refused(a.client.client("POST", SECURITY_KEY_PATH, token=token, json=forged))


def key_authentication_options(a: Attacker, b: Victim, expect: Expect) -> None:
    expect.refused(_key_options(a, "authentication", a.token()))  # B's user's keys are B's
    _, credential_id = _security_key(a)
    response = _key_options(a, "authentication", a.token())
    expect.own(response)
    assert [c["id"] for c in response.json()["allowCredentials"]] == [credential_id]


def verify_security_key(a: Attacker, b: Victim, expect: Expect) -> None:
    mine = b.fallbacks
    key, _ = _security_key(a)
    path = "/verify/security-key"
    # A's key over B's SK3 challenge (issued to B's token), with A's token.
    answer = key.get({**mine.key_authentication, "allowCredentials": []})
    expect.refused(a.client.client("POST", path, token=a.token(), json=answer))
    # A's own challenge answered by B's key (registered with B only), then by A's key
    # claiming B's credential id.
    token = a.token()
    options = _key_options(a, "authentication", token)
    assert options.status_code == 200, options.text
    by_b = mine.security_key.get({**options.json(), "allowCredentials": []})
    expect.refused(a.client.client("POST", path, token=token, json=by_b))
    token = a.token()
    options = _key_options(a, "authentication", token)
    assert options.status_code == 200, options.text
    forged = _with_credential_id(key.get(options.json()), mine.security_key_credential_id)
    expect.refused(a.client.client("POST", path, token=token, json=forged))


def _b_app_code(b: Victim) -> str:
    """The code B's authenticator app shows, for a step B's server has not accepted yet."""
    app = b.fallbacks.app
    return app.code(max(current_step(), app.used + 1))


def enrol_app(a: Attacker, b: Victim, expect: Expect) -> None:
    response = a.client.client("POST", TOTP_PATH, token=a.token())
    expect.own(response)
    assert response.status_code == 200, response.text


def verify_app(a: Attacker, b: Victim, expect: Expect) -> None:
    path = "/verify/totp"
    # A's user has no app: B's user's code is nothing to A.
    body = {"verificationCode": _b_app_code(b)}
    expect.refused(a.client.client("POST", path, token=a.token(), json=body))
    # A's app being enrolled: B's code is wrong for it; A's own code completes it, which
    # removes A's user's other apps (A's only).
    token = a.token()
    enrolled = a.client.client("POST", TOTP_PATH, token=token)
    assert enrolled.status_code == 200, enrolled.text
    for code, verified in (
        (_b_app_code(b), False),
        (App(enrolled.json()["secret"]).next_code(), True),
    ):
        response = a.client.client("POST", path, token=token, json={"verificationCode": code})
        expect.own(response)
        assert response.json()["isVerified"] is verified, response.text


def enrol_recovery_codes(a: Attacker, b: Victim, expect: Expect) -> None:
    """A new set replaces the user's codes: A's user's, not B's."""
    response = a.client.client("POST", RECOVERY_PATH, token=a.token())
    expect.own(response)
    assert response.status_code == 200, response.text


def verify_recovery_code(a: Attacker, b: Victim, expect: Expect) -> None:
    body = {"verificationCode": b.fallbacks.recovery_code}
    path = "/verify/recovery-code"
    expect.refused(a.client.client("POST", path, token=a.token(), json=body))  # A has none
    made = a.client.server(
        "POST", f"/users/{a.user}/authenticators", json={"verificationMethod": "RECOVERY_CODE"}
    )
    assert made.status_code == 200, made.text
    response = a.client.client("POST", path, token=a.token(), json=body)
    expect.own(response)
    assert response.json()["isVerified"] is False, response.text


def enrol_magic_link(a: Attacker, b: Victim, expect: Expect) -> None:
    """A enrols B's address for A's user, mailed by A's own mail server: A's business."""
    use_smtp(a.server, a.tenant.id, b.smtp)
    body = {"email": b.email}
    response = a.client.client("POST", MAGIC_LINK_PATH, token=a.token(), json=body)
    expect.own(response)
    assert response.status_code == 200, response.text


def magic_link_challenge(a: Attacker, b: Victim, expect: Expect) -> None:
    """B's user has a verified magic link address; A's user has none."""
    use_smtp(a.server, a.tenant.id, b.smtp)
    response = a.client.client("POST", "/challenge/email-magic-link", token=a.token())
    expect.refused(response)
    assert response.status_code == 404, response.text


def finalize_magic_link(a: Attacker, b: Victim, expect: Expect) -> None:
    """B's confirmed link waits for its action's poll. A's action with the same user, action
    code and idempotency key sent no link, nor did any other action of A's."""
    mine = b.fallbacks
    twin = a.client.token(a.user, mine.link_action, idempotencyKey=mine.link_key)
    for token in (twin, a.token()):
        response = a.client.client(
            "POST", "/verify/email-magic-link/finalize", token=token, json={}
        )
        expect.refused(response)


def remove_authenticator(a: Attacker, b: Victim, expect: Expect) -> None:
    """A's token, scoped to remove A's user's authenticators and confirmed by A's backend,
    naming each of B's."""
    tracked = a.client.track(a.user, "removeLost", scope=REMOVE_SCOPE).json()
    confirmed = a.client.server(
        "PATCH",
        f"/users/{a.user}/actions/removeLost/{tracked['idempotencyKey']}",
        json={"state": "CHALLENGE_SUCCEEDED"},
    )
    assert confirmed.status_code == 200, confirmed.text
    token = tracked["token"]
    mine = b.fallbacks
    for authenticator_id in (
        b.passkey_authenticator_id,
        b.device_authenticator_id,
        b.email_authenticator_id,
        mine.security_key_authenticator_id,
        mine.app_authenticator_id,
        mine.recovery_authenticator_id,
        mine.link_authenticator_id,
    ):
        response = a.client.client(
            "DELETE", f"/user-authenticators/{authenticator_id}", token=token
        )
        expect.refused(response)
        assert response.status_code == 404, response.text  # the scope was good: not found


def _in_tenant(token: str, tenant_id: str) -> str:
    """A's token, its claims rewritten to name another tenant (the signature still A's)."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["other"] = {**claims["other"], "tenantId": tenant_id, "publishableKey": tenant_id}
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _enrol_with_link(a: Attacker, b: Victim, expect: Expect, link: dict[str, Any]) -> None:
    """A's link enrols a device in A; its token made to name B's tenant enrols nothing."""
    body = {"publicKey": device_public_key(new_device_key()), "deviceName": "mallory"}
    enrolled = a.client.client("POST", PUSH_PATH, token=link["token"], json=body)
    expect.own(enrolled)
    assert enrolled.status_code == 200, enrolled.text
    forged = _in_tenant(link["token"], b.tenant.id)
    expect.refused(a.client.client("POST", PUSH_PATH, token=forged, json=body))


def server_push_link(a: Attacker, b: Victim, expect: Expect) -> None:
    """A's key makes links for A's users that have B's users' ids (the last, the shared one,
    enrols: A's user with B's own user's id is named only where A sent it)."""
    for user in (b.own_user, b.shared_user):
        made = a.client.server("POST", f"/users/{user}/push-enrolment-links")
        expect.own(made)
        assert made.status_code == 200, made.text
    _enrol_with_link(a, b, expect, made.json())


def client_push_link(a: Attacker, b: Victim, expect: Expect) -> None:
    token = a.token()
    path = "/push-enrolment-links"
    expect.refused(a.client.client("POST", path, token=_in_tenant(token, b.tenant.id)))
    made = a.client.client("POST", path, token=token)
    expect.own(made)
    assert made.status_code == 200, made.text
    _enrol_with_link(a, b, expect, made.json())


V1 = "/v1/client"
CASES: dict[str, Probe] = {
    "POST /v1/users/{userId}/actions/{action}": track,
    "GET /v1/users/{userId}/actions/{action}/{idempotencyKey}": get_action,
    "PATCH /v1/users/{userId}/actions/{action}/{idempotencyKey}": update_action,
    "GET /v1/users/{userId}/actions": query_actions,
    "GET /v1/users/{userId}": get_user,
    "PATCH /v1/users/{userId}": update_user,
    "DELETE /v1/users/{userId}": delete_user,
    "GET /v1/users": query_users,
    "GET /v1/users/{userId}/authenticators": get_authenticators,
    "POST /v1/users/{userId}/authenticators": enroll_authenticator,
    "DELETE /v1/users/{userId}/authenticators/{userAuthenticatorId}": delete_authenticator,
    "POST /v1/validate": validate,
    "GET /v1/audit-events": audit_events,
    f"GET {V1}/public/{{tenantId}}/.well-known/jwks": jwks,
    f"POST {V1}/challenge": _c1("/challenge"),
    f"POST {V1}/challenge/web": _c1("/challenge/web"),
    f"POST {V1}/user-authenticators/passkey/registration-options": _c2(
        f"{PASSKEY_PATH}/registration-options"
    ),
    f"POST {V1}/user-authenticators/passkey/registration-options/web": _c2(
        f"{PASSKEY_PATH}/registration-options/web"
    ),
    f"POST {V1}/user-authenticators/passkey": add_passkey,
    f"POST {V1}/user-authenticators/passkey/authentication-options": authentication_options,
    f"POST {V1}/user-authenticators/passkey/authentication-options/web": (
        authentication_options_web
    ),
    f"POST {V1}/verify/passkey": verify_passkey,
    f"GET {V1}/user-authenticators/passkey": find_passkey,
    f"GET {V1}/user-authenticators": list_authenticators,
    f"GET {V1}/user-authenticators/push": get_device,
    f"POST {V1}/user-authenticators/push": enrol_device,
    f"POST {V1}/user-authenticators/push/remove": remove_device,
    f"POST {V1}/user-authenticators/push/challenge/sign": _message_for_b(
        f"{PUSH_PATH}/challenge/sign"
    ),
    f"GET {V1}/user-authenticators/push/challenge": get_push_challenge,
    f"POST {V1}/user-authenticators/push/challenge": answer_push_challenge,
    f"POST {V1}/user-authenticators/push/sign": _message_for_b(f"{PUSH_PATH}/sign"),
    f"PATCH {V1}/user-authenticators/push": update_device,
    f"POST {V1}/challenge/push": start_push,
    f"POST {V1}/verify/push": verify_push,
    f"POST {V1}/user-authenticators/email-otp": otp_enrol,
    f"POST {V1}/user-authenticators/sms": otp_enrol,
    f"POST {V1}/challenge/email-otp": _otp_challenge("email-otp"),
    f"POST {V1}/challenge/sms": _otp_challenge("sms"),
    f"POST {V1}/challenge/whatsapp": _otp_challenge("whatsapp"),
    f"POST {V1}/verify/email-otp": _otp_verify("email-otp"),
    f"POST {V1}/verify/sms": _otp_verify("sms"),
    f"POST {V1}/verify/whatsapp": _otp_verify("whatsapp"),
    "POST /v1/challenge": otp_server_challenge,
    "POST /v1/verify": otp_server_verify,
    "POST /v1/claim": otp_claim,
    "GET /v1/challenges": otp_find,
    f"POST {V1}/user-authenticators/security-key/registration-options": key_registration_options,
    f"POST {V1}/user-authenticators/security-key": add_security_key,
    f"POST {V1}/user-authenticators/security-key/authentication-options": (
        key_authentication_options
    ),
    f"POST {V1}/verify/security-key": verify_security_key,
    f"POST {V1}/user-authenticators/totp": enrol_app,
    f"POST {V1}/verify/totp": verify_app,
    f"POST {V1}/user-authenticators/recovery-code": enrol_recovery_codes,
    f"POST {V1}/verify/recovery-code": verify_recovery_code,
    f"POST {V1}/user-authenticators/email-magic-link": enrol_magic_link,
    f"POST {V1}/challenge/email-magic-link": magic_link_challenge,
    f"POST {V1}/verify/email-magic-link/finalize": finalize_magic_link,
    f"DELETE {V1}/user-authenticators/{{userAuthenticatorId}}": remove_authenticator,
    "POST /v1/users/{userId}/push-enrolment-links": server_push_link,
    f"POST {V1}/push-enrolment-links": client_push_link,
}


def api_routes() -> set[str]:
    """Every Server API and Client API route of the app, as "METHOD /path", from the routes
    themselves (schema or not) and from /openapi.json."""
    app = create_app(Settings(database_url="sqlite:///:memory:"))
    walked = {
        f"{method} {route.path}"
        for route in iter_route_contexts(app.routes)
        if route.path and route.path.startswith(API_PREFIX)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {
        f"{method.upper()} {path}"
        for path, operations in app.openapi()["paths"].items()
        if path.startswith(API_PREFIX)
        for method in operations
    }
    # The walk must see at least what the schema shows (it would miss routes otherwise).
    assert documented <= walked, documented - walked
    return walked


def test_every_route_has_a_case() -> None:
    routes = api_routes()
    assert len(routes) > 30  # the walk found the API, not an empty router
    assert not routes - CASES.keys(), f"routes without an isolation case: {routes - CASES.keys()}"
    assert not CASES.keys() - routes, f"cases for routes that are gone: {CASES.keys() - routes}"


@pytest.mark.parametrize("route", list(CASES))
def test_tenant_a_cannot_reach_tenant_b(
    route: str, server: LiveServer, victim: Victim, tmp_path: Path
) -> None:
    attacker = Attacker(server, victim, tmp_path)
    expect = Expect(victim)
    try:
        CASES[route](attacker, victim, expect)
    finally:
        attacker.client.close()
        # Re-read even when the probe failed: one probe's damage is not blamed on the next.
        before, victim.snapshot = victim.snapshot, victim.read()
    assert expect.judged > 0, "the probe judged no answer"
    changed = {name for name in before if before[name] != victim.snapshot[name]}
    assert not changed, f"B's data changed: {changed}"


def test_b_still_completes_its_own_ceremonies(server: LiveServer, victim: Victim) -> None:
    """After every probe (this module's tests run in order): none of B's open challenges and
    tokens was used up by A's attempts."""
    b = victim.client
    verified = b.verify_passkey(
        victim.authentication["challengeId"], victim.passkey.get(victim.authentication["options"])
    )
    assert verified.status_code == 200, verified.text
    web = victim.web_authentication  # with B's binding cookie, from B's client's jar
    verified = b.verify_passkey(web["challengeId"], victim.passkey.get(web["options"]))
    assert verified.status_code == 200, verified.text
    options = b.authentication_options(challengeId=victim.c1_challenge_id)
    assert options.status_code == 200, options.text
    assert options.json()["challengeId"] == victim.c1_challenge_id
    verified = b.verify_passkey(
        victim.c1_challenge_id, victim.passkey.get(options.json()["options"])
    )
    assert verified.status_code == 200, verified.text
    second = SoftwareAuthenticator(victim.passkey.path + ".second")
    added = b.add_passkey(
        victim.registration_token,
        victim.registration["challengeId"],
        second.create(victim.registration["options"]),
    )
    assert added.status_code == 200, added.text
    answered = b.answer(victim.key, victim.push_challenge_id, code=victim.verification_code)
    assert answered.status_code == 200, answered.text
    assert answered.json()["isVerified"] is True
    for token in (victim.succeeded_token, victim.pending_token):
        validated = b.validate(token)
        assert validated.status_code == 200, validated.text
        assert validated.json()["isValid"] is True
    _b_completes_its_fallbacks(victim)


def _b_completes_its_fallbacks(victim: Victim) -> None:
    b, mine = victim.client, victim.fallbacks
    key = mine.security_key
    verified = b.client(
        "POST",
        "/verify/security-key",
        token=mine.key_token,
        json=key.get(mine.key_authentication),
    )
    assert verified.status_code == 200, verified.text
    second = SoftwareAuthenticator(key.path + ".second")
    added = b.client(
        "POST",
        SECURITY_KEY_PATH,
        token=mine.key_registration_token,
        json=second.create(mine.key_registration),
    )
    assert added.status_code == 200, added.text
    finalized = b.client(
        "POST", "/verify/email-magic-link/finalize", token=mine.link_token, json={}
    )
    assert finalized.status_code == 200 and finalized.json()["isVerified"], finalized.text
    assert b.sign_in_with(mine.app, victim.shared_user)["isVerified"] is True
    recovered = b.verify_recovery_code(b.token(victim.shared_user), mine.recovery_code)
    assert recovered.status_code == 200 and recovered.json()["isVerified"], recovered.text
