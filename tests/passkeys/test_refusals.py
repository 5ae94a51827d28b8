"""Every refused passkey ceremony is a 4xx with its own error code, and changes nothing
except that its challenge is used up (and a possible clone stays flagged)."""

from __future__ import annotations

import base64
import hashlib
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from authsignal.client import AuthsignalClient
from fido2 import cbor

from passgate.authenticators import SoftwareAuthenticator
from passgate.server.services import audit, challenges, tenants, tokens
from passgate.server.store.db import Db
from passgate.server.store.tables import utcnow
from tests.console.helpers import enrolled_console
from tests.live_server import LiveServer, Tenant
from tests.passkeys.helpers import Ceremony, b64url, basic, bearer, with_client_data
from tests.server.test_refusals import assert_error


@pytest.fixture
def device(tmp_path: Path) -> SoftwareAuthenticator:
    return SoftwareAuthenticator(tmp_path / "device.bin")


def test_wrong_origin(
    server: LiveServer, tenant: Tenant, ceremony: Ceremony, tmp_path: Path
) -> None:
    phishing = SoftwareAuthenticator(tmp_path / "p.bin", origin="https://login.localhost")
    token, challenge_id, options = ceremony.registration_options("u-origin")
    response = ceremony.add(token, challenge_id, phishing.create(options))
    assert_error(response, 400, "origin_mismatch")
    # A security event for the tenant's audit log (actor "system").
    assert (audit.ORIGIN_REFUSED, challenge_id) in security_events(server, tenant)


def test_wrong_rp_id(server: LiveServer, authsignal: AuthsignalClient, tmp_path: Path) -> None:
    tenant = server.create_tenant(origins=["https://sub.localhost"])
    client = AuthsignalClient(api_secret_key=tenant.secret_key, api_url=server.api_url)
    flow = Ceremony(server.api_url, tenant.id, client)
    token, challenge_id, options = flow.registration_options("u-rp")
    device = SoftwareAuthenticator(tmp_path / "rp.bin")
    credential = device.create({**options, "rp": {**options["rp"], "id": "sub.localhost"}})
    assert_error(flow.add(token, challenge_id, credential), 400, "rp_id_mismatch")
    flow.close()
    client.session.close()


def test_cross_origin_is_refused(ceremony: Ceremony, device: SoftwareAuthenticator) -> None:
    token, challenge_id, options = ceremony.registration_options("u-iframe")
    credential = with_client_data(device.create(options), crossOrigin=True)
    assert_error(ceremony.add(token, challenge_id, credential), 400, "cross_origin_refused")


def without_attestation(credential: dict[str, Any]) -> dict[str, Any]:
    """The credential with a "none" attestation, as most browsers send it: nothing then signs
    clientDataJSON at registration, so a test can set its fields as a browser would."""
    attestation = cbor.decode(
        base64.urlsafe_b64decode(credential["response"]["attestationObject"] + "==")
    )
    none = cbor.encode({"fmt": "none", "attStmt": {}, "authData": attestation["authData"]})
    return {**credential, "response": {**credential["response"], "attestationObject": b64url(none)}}


def test_only_passgates_own_page_may_be_framed_by_the_tenant(
    server: LiveServer, tmp_path: Path
) -> None:
    """The hosted page in the browser SDK's popup mode runs in an iframe on the app's page, so
    clientData says crossOrigin with the app as topOrigin: accepted for Passgate's own origin
    framed by one of the tenant's origins, refused everywhere else."""
    app = "https://shop.localhost"
    tenant = server.create_tenant(origins=[app])
    client = AuthsignalClient(api_secret_key=tenant.secret_key, api_url=server.api_url)
    flow = Ceremony(server.api_url, tenant.id, client)
    hosted = SoftwareAuthenticator(tmp_path / "hosted.bin", origin=server.public_url)
    shop = SoftwareAuthenticator(tmp_path / "shop.bin", origin=app)
    cases = [
        (hosted, {"crossOrigin": True, "topOrigin": app}, 200, None),
        (hosted, {}, 200, None),  # redirect and window mode: the page is the top
        (hosted, {"crossOrigin": True, "topOrigin": "https://evil.example"}, 400, "cross"),
        (hosted, {"crossOrigin": True}, 400, "cross_origin_refused"),
        (shop, {"crossOrigin": True, "topOrigin": app}, 400, "cross_origin_refused"),
        (shop, {"topOrigin": "https://evil.example"}, 400, "cross_origin_refused"),
    ]
    for number, (device, changes, status, code) in enumerate(cases):
        token, challenge_id, options = flow.registration_options(f"u-framed-{number}")
        credential = with_client_data(without_attestation(device.create(options)), **changes)
        response = flow.add(token, challenge_id, credential)
        assert response.status_code == status, (changes, response.text)
        if code:
            assert response.json()["errorCode"].startswith(code), response.text
    flow.close()
    client.session.close()


def test_passgates_own_origin_needs_the_rp_id_to_fit(server: LiveServer, tmp_path: Path) -> None:
    """Passgate's pages run on localhost here: a tenant whose rp id is another domain cannot
    use them, so that origin is refused for it."""
    tenant = server.create_tenant(rp_id="shop.example")
    client = AuthsignalClient(api_secret_key=tenant.secret_key, api_url=server.api_url)
    flow = Ceremony(server.api_url, tenant.id, client)
    token, challenge_id, options = flow.registration_options("u-elsewhere")
    hosted = SoftwareAuthenticator(tmp_path / "hosted.bin", origin=server.public_url)
    credential = hosted.create({**options, "rp": {**options["rp"], "id": "localhost"}})
    assert_error(flow.add(token, challenge_id, credential), 400, "origin_mismatch")
    flow.close()
    client.session.close()


def test_replayed_challenge(ceremony: Ceremony, device: SoftwareAuthenticator) -> None:
    ceremony.register(device, "u-replay")
    challenge_id, assertion = ceremony.assertion(device)
    assert ceremony.verify(challenge_id, assertion).status_code == 200
    assert_error(ceremony.verify(challenge_id, assertion), 400, "challenge_already_used")


def test_replayed_registration(ceremony: Ceremony, device: SoftwareAuthenticator) -> None:
    token, challenge_id, options = ceremony.registration_options("u-replay-reg")
    credential = device.create(options)
    assert ceremony.add(token, challenge_id, credential).status_code == 200
    assert_error(ceremony.add(token, challenge_id, credential), 400, "challenge_already_used")


def test_expired_challenge(
    server: LiveServer, ceremony: Ceremony, device: SoftwareAuthenticator
) -> None:
    """A challengeId is a signed message with its expiry inside: one made by the tenant's own
    key, but already expired, is refused as expired (and not spent)."""
    ceremony.register(device, "u-expired")
    _challenge_id, options = ceremony.authentication_options()

    async def expired(db: Db) -> str:
        tenant = await tenants.get_tenant(db, ceremony.tenant_id)
        made = challenges.issue(
            tenant, challenges.Purpose.AUTHENTICATION, timedelta(seconds=-1), utcnow()
        )
        return made.id

    challenge_id = server.run(expired)
    digest = hashlib.sha256(challenge_id.encode()).digest()
    assertion = device.get({**options, "challenge": b64url(digest)})
    assert_error(ceremony.verify(challenge_id, assertion), 400, "challenge_expired")


def test_unknown_challenge(ceremony: Ceremony, device: SoftwareAuthenticator) -> None:
    ceremony.register(device, "u-unknown-challenge")
    _challenge_id, assertion = ceremony.assertion(device)
    response = ceremony.verify("00000000-0000-0000-0000-000000000000", assertion)
    assert_error(response, 400, "challenge_not_found")


def test_another_tenants_credential(
    server: LiveServer, ceremony: Ceremony, device: SoftwareAuthenticator
) -> None:
    ceremony.register(device, "u-tenant-a")
    other = server.create_tenant(name="other")
    client = AuthsignalClient(api_secret_key=other.secret_key, api_url=server.api_url)
    flow = Ceremony(server.api_url, other.id, client)
    challenge_id, assertion = flow.assertion(device)  # same rpId, other tenant
    assert_error(flow.verify(challenge_id, assertion), 400, "unknown_credential")
    # and the challenge of one tenant means nothing to the other
    mine, _options = ceremony.authentication_options()
    assert_error(flow.verify(mine, assertion), 400, "challenge_not_found")
    flow.close()
    client.session.close()


def test_counter_going_backwards_flags_the_passkey(
    server: LiveServer,
    tenant: Tenant,
    ceremony: Ceremony,
    device: SoftwareAuthenticator,
    tmp_path: Path,
) -> None:
    added = ceremony.register(device, "u-clone")
    challenge_id, assertion = ceremony.assertion(device)
    assert ceremony.verify(challenge_id, assertion).status_code == 200
    shutil.copy(tmp_path / "device.bin", tmp_path / "clone.bin")
    shutil.copy(tmp_path / "device.bin.key", tmp_path / "clone.bin.key")
    challenge_id, assertion = ceremony.assertion(device)  # counter 2
    assert ceremony.verify(challenge_id, assertion).status_code == 200
    clone = SoftwareAuthenticator(tmp_path / "clone.bin")  # still at 1, will say 2
    challenge_id, assertion = ceremony.assertion(clone)
    assert_error(ceremony.verify(challenge_id, assertion), 400, "sign_count_regressed")
    listed = ceremony.http.get("/client/user-authenticators", headers=bearer(added["accessToken"]))
    (passkey,) = listed.json()
    assert passkey["errorCode"] == "possible_clone"
    assert passkey["erroredAt"]
    events = security_events(server, tenant)
    assert (audit.SIGN_COUNT_REGRESSED, added["credentialId"]) in events
    assert (audit.CHALLENGE_BURNT, challenge_id) in events


def test_synced_passkeys_may_send_zero_forever(ceremony: Ceremony, tmp_path: Path) -> None:
    synced = SoftwareAuthenticator(tmp_path / "synced.bin", synced=True)
    added = ceremony.register(synced, "u-synced")
    for _ in range(3):
        challenge_id, assertion = ceremony.assertion(synced)
        assert ceremony.verify(challenge_id, assertion).status_code == 200
    listed = ceremony.http.get("/client/user-authenticators", headers=bearer(added["accessToken"]))
    credential = listed.json()[0]["webauthnCredential"]
    assert credential["credentialBackedUp"] is True
    assert credential["credentialDeviceType"] == "multi_device"


def _bend(credential: dict[str, Any], field: str, value: str) -> dict[str, Any]:
    return {**credential, "response": {**credential["response"], field: value}}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("attestationObject", b64url(b"\xff\x00 not cbor")),
        ("attestationObject", "***not base64***"),
        ("clientDataJSON", "***not base64***"),
        ("clientDataJSON", b64url(b"not json")),
    ],
)
def test_malformed_registration(
    ceremony: Ceremony, device: SoftwareAuthenticator, field: str, value: str
) -> None:
    token, challenge_id, options = ceremony.registration_options("u-malformed")
    credential = _bend(device.create(options), field, value)
    assert_error(ceremony.add(token, challenge_id, credential), 400, "malformed_credential")


@pytest.mark.parametrize(
    ("field", "value"),
    [("authenticatorData", b64url(b"short")), ("signature", "***"), ("clientDataJSON", "%%")],
)
def test_malformed_assertion(
    ceremony: Ceremony, device: SoftwareAuthenticator, field: str, value: str
) -> None:
    ceremony.register(device, f"u-malformed-{field}")
    challenge_id, assertion = ceremony.assertion(device)
    assert_error(
        ceremony.verify(challenge_id, _bend(assertion, field, value)), 400, "malformed_credential"
    )


def test_tampered_signature(ceremony: Ceremony, device: SoftwareAuthenticator) -> None:
    ceremony.register(device, "u-tampered")
    challenge_id, assertion = ceremony.assertion(device)
    tampered = with_client_data(assertion, extra="x")
    assert_error(ceremony.verify(challenge_id, tampered), 400, "verification_failed")


def test_sign_up_needs_a_token(ceremony: Ceremony) -> None:
    response = ceremony.http.post(
        "/client/user-authenticators/passkey/registration-options", json={}
    )
    assert_error(response, 401, "unauthorized")


def test_expired_token(server: LiveServer, ceremony: Ceremony, tenant: Tenant) -> None:
    async def old_token(db: Db) -> str:
        row = await tenants.get_tenant(db, tenant.id)
        an_hour_ago = int(time.time()) - 3600
        return tokens.issue_token(
            row, user_id="u-exp", action_code="signUp", idempotency_key="k", now=an_hour_ago
        )

    response = ceremony.http.post(
        "/client/user-authenticators/passkey/registration-options",
        headers=bearer(server.run(old_token)),
        json={},
    )
    assert_error(response, 401, "expired_token")


def test_excluded_and_duplicate_credentials(
    ceremony: Ceremony, device: SoftwareAuthenticator
) -> None:
    added = ceremony.register(device, "u-dup")
    # C3's accessToken has added its passkey (used up for enrolment): a second one needs a
    # token tracked with the scope (docs/wire.md#scopes).
    scoped = ceremony.authsignal.track("u-dup", "addPasskey", {"scope": "add:authenticators"})
    response = ceremony.http.post(
        "/client/user-authenticators/passkey/registration-options",
        headers=bearer(scoped["token"]),
        json={},
    )
    options = response.json()["options"]
    assert [c["id"] for c in options["excludeCredentials"]] == [added["credentialId"]]


def test_racing_verifications_have_one_winner(
    ceremony: Ceremony, device: SoftwareAuthenticator
) -> None:
    ceremony.register(device, "u-race")
    challenge_id, assertion = ceremony.assertion(device)
    body = {"challengeId": challenge_id, "authenticationCredential": assertion}
    url = str(ceremony.http.base_url).rstrip("/") + "/client/verify/passkey"

    def attempt(_: int) -> httpx.Response:
        return httpx.post(url, json=body, headers=basic(ceremony.tenant_id), timeout=30)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(attempt, range(8)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [400] * 7, [r.text for r in responses]
    losers = [r.json()["errorCode"] for r in responses if r.status_code == 400]
    assert set(losers) == {"challenge_already_used"}


def security_events(server: LiveServer, tenant: Tenant) -> list[tuple[str, str | None]]:
    """The tenant's security events: (action, challenge or credential id)."""

    async def work(db: Db) -> list[tuple[str, str | None]]:
        page = await audit.list_events(db, tenant_id=tenant.id, action_prefix="security.")
        found = []
        for event in page.events:
            details = event.details or {}
            found.append((event.action, details.get("challengeId") or details.get("credentialId")))
        return found

    return server.run(work)


def test_a_refused_assertion_uses_the_challenge_up(
    server: LiveServer, tenant: Tenant, ceremony: Ceremony, device: SoftwareAuthenticator
) -> None:
    """C5: a bad answer is refused, and the good answer to the same challenge is refused too
    (docs/wire.md#passkey-routes): a challenge gets one attempt."""
    ceremony.register(device, "u-burn-c5")
    challenge_id, assertion = ceremony.assertion(device)
    tampered = with_client_data(assertion, extra="x")
    assert_error(ceremony.verify(challenge_id, tampered), 400, "verification_failed")
    assert_error(ceremony.verify(challenge_id, assertion), 400, "challenge_already_used")
    # A fresh challenge signs in: only the challenge was burnt, not the passkey.
    fresh_id, assertion = ceremony.assertion(device)
    assert ceremony.verify(fresh_id, assertion).status_code == 200
    assert (audit.CHALLENGE_BURNT, challenge_id) in security_events(server, tenant)


def test_a_refused_registration_uses_the_challenge_up(
    ceremony: Ceremony, device: SoftwareAuthenticator
) -> None:
    """C3: a malformed credential is refused, then a good one for the same challenge too, and
    nothing of the attempts is stored."""
    token, challenge_id, options = ceremony.registration_options("u-burn-c3")
    credential = device.create(options)
    bent = _bend(credential, "clientDataJSON", "***not base64***")
    assert_error(ceremony.add(token, challenge_id, bent), 400, "malformed_credential")
    assert_error(ceremony.add(token, challenge_id, credential), 400, "challenge_already_used")
    assert ceremony.authsignal.get_authenticators("u-burn-c3") == []
    # The token was not used up by the refused attempts: a new challenge enrols.
    retry = ceremony.http.post(
        "/client/user-authenticators/passkey/registration-options",
        headers=bearer(token),
        json={},
    )
    assert retry.status_code == 200, retry.text
    added = ceremony.add(token, retry.json()["challengeId"], device.create(retry.json()["options"]))
    assert added.status_code == 200, added.text


def test_a_refused_web_assertion_uses_the_challenge_up(
    server: LiveServer, tenant: Tenant, device: SoftwareAuthenticator, ceremony: Ceremony
) -> None:
    """The /web variant: without its cookie the challenge is someone else's and stays usable;
    with it, a refused answer burns it."""
    ceremony.register(device, "u-burn-web")
    with httpx.Client(base_url=server.api_url, timeout=10) as browser:
        started = browser.post(
            "/client/user-authenticators/passkey/authentication-options/web",
            headers=basic(tenant.id),
            json={},
        )
        assert started.status_code == 200, started.text
        challenge_id = started.json()["challengeId"]
        assertion = device.get(started.json()["options"])
        body = {"challengeId": challenge_id, "authenticationCredential": assertion}
        stranger = httpx.post(
            f"{server.api_url}/client/verify/passkey", json=body, headers=basic(tenant.id)
        )
        assert_error(stranger, 403, "challenge_cookie_mismatch")
        bad = {**body, "authenticationCredential": with_client_data(assertion, extra="x")}
        refused = browser.post("/client/verify/passkey", json=bad, headers=basic(tenant.id))
        assert_error(refused, 400, "verification_failed")
        again = browser.post("/client/verify/passkey", json=body, headers=basic(tenant.id))
        assert_error(again, 400, "challenge_already_used")


def test_a_refused_console_sign_in_uses_the_challenge_up(
    server: LiveServer, tmp_path: Path
) -> None:
    """The console's own ceremonies follow the same rule."""
    console = enrolled_console(server, tmp_path, f"burn-{tmp_path.name}@example.com")
    console.http.cookies.clear()
    started = console.http.post("/admin/sign-in/options", json={}).json()
    assertion = console.device.get(started["options"])
    body = {"challengeId": started["challengeId"], "credential": assertion}
    bad = {**body, "credential": with_client_data(assertion, extra="x")}
    refused = console.http.post("/admin/sign-in/finish", json=bad)
    assert refused.status_code == 400, refused.text
    again = console.http.post("/admin/sign-in/finish", json=body)
    assert again.status_code == 400 and again.json()["errorCode"] == "challenge_not_found"
    assert not console.signed_in()
    assert console.sign_in().status_code == 200  # a new challenge works
    console.close()
