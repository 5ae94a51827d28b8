"""The passkey Client API beyond the happy path of the SDK: native apps' encodings and
origins, lookups (C6, C6b, C7), the per-user cap and the enrolment scope."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

from passgate.authenticators import SoftwareAuthenticator
from passgate.server.services import passkey_policy, relying_party, tenants
from passgate.server.services.enums import ActionOutcome
from passgate.server.store.db import Db
from tests.live_server import LiveServer, Tenant
from tests.passkeys.helpers import Ceremony, basic, bearer
from tests.server.test_refusals import assert_error

SIGNING_CERT_SHA256 = "373B4FFAC7CDAB2DBF5C87B87AB9B8A91FB0E1E449D8397A25DB856CF0981E29"
FINGERPRINT = ":".join(f"{byte:02X}" for byte in bytes.fromhex(SIGNING_CERT_SHA256))
APK_ORIGIN = "android:apk-key-hash:NztP-sfNqy2_XIe4erm4qR-w4eRJ2Dl6JduFbPCYHik"


def set_passkeys(server: LiveServer, tenant: Tenant, **changes: object) -> None:
    async def work(db: Db) -> None:
        row = await tenants.get_tenant(db, tenant.id)
        await passkey_policy.update_settings(db, row, changes)

    server.run(work)


def test_android_app_origin_is_accepted_once_the_app_is_configured(
    server: LiveServer, tenant: Tenant, ceremony: Ceremony, tmp_path: Path
) -> None:
    android = SoftwareAuthenticator(tmp_path / "android.bin", origin=APK_ORIGIN)
    token, challenge_id, options = ceremony.registration_options("droid")
    refused = ceremony.add(token, challenge_id, android.create(options))
    assert_error(refused, 400, "origin_mismatch")
    set_passkeys(
        server,
        tenant,
        androidApps=[{"packageName": "com.example.app", "sha256CertFingerprints": [FINGERPRINT]}],
    )
    ceremony.register(android, "droid")
    challenge_id, assertion = ceremony.assertion(android)
    assert ceremony.verify(challenge_id, assertion).json()["userId"] == "droid"


def test_ios_encodings(ceremony: Ceremony, tmp_path: Path) -> None:
    """iOS: clientDataJSON in standard padded base64, userHandle as the raw string,
    authenticatorAttachment always "cross-platform" (docs/wire.md#webauthn-json)."""
    device = SoftwareAuthenticator(tmp_path / "ios.bin")

    def as_ios(credential: dict[str, Any]) -> dict[str, Any]:
        raw = relying_party.b64decode_any(credential["response"]["clientDataJSON"])
        response = {**credential["response"], "clientDataJSON": base64.b64encode(raw).decode()}
        return {**credential, "response": response, "authenticatorAttachment": "cross-platform"}

    token, challenge_id, options = ceremony.registration_options("ios-user")
    handle = options["user"]["id"]
    uuid.UUID(handle)  # a UUID: iOS passes its UTF-8 bytes, others decode it as base64url
    added = ceremony.add(token, challenge_id, as_ios(device.create(options)))
    assert added.status_code == 200, added.text
    challenge_id, assertion = ceremony.assertion(device)
    assert assertion["response"]["userHandle"] == handle  # iOS's raw string reads the same
    verified = ceremony.verify(challenge_id, as_ios(assertion))
    assert verified.status_code == 200, verified.text
    assert verified.json()["userId"] == "ios-user"
    challenge_id, assertion = ceremony.assertion(device)
    wrong_handle = {**as_ios(assertion)}
    wrong_handle["response"] = {**wrong_handle["response"], "userHandle": str(uuid.uuid4())}
    assert_error(ceremony.verify(challenge_id, wrong_handle), 400, "verification_failed")


def test_lookups(
    server: LiveServer, ceremony: Ceremony, other_tenant: Tenant, tmp_path: Path
) -> None:
    device = SoftwareAuthenticator(tmp_path / "lookup.bin")
    added = ceremony.register(device, "looked-up")
    credential_id = added["credentialId"]
    http = ceremony.http
    path = "/client/user-authenticators/passkey"
    found = http.get(
        path, params={"credentialId": credential_id}, headers=basic(ceremony.tenant_id)
    )
    assert found.status_code == 200
    assert found.json()["credentialId"] == credential_id and found.json()["verifiedAt"]
    many = http.get(
        path, params={"credentialIds": f"nope,{credential_id}"}, headers=basic(ceremony.tenant_id)
    )
    assert many.json()["credentialId"] == credential_id
    unknown = http.get(path, params={"credentialId": "nope"}, headers=basic(ceremony.tenant_id))
    assert_error(unknown, 400, "invalid_credential")
    elsewhere = http.get(
        path, params={"credentialId": credential_id}, headers=basic(other_tenant.id)
    )
    assert_error(elsewhere, 400, "invalid_credential")
    listed = http.get("/client/user-authenticators", headers=bearer(added["accessToken"]))
    (authenticator,) = listed.json()
    assert authenticator["verificationMethod"] == "PASSKEY"
    assert authenticator["userAuthenticatorId"] == added["userAuthenticatorId"]
    assert authenticator["webauthnCredential"]["credentialId"] == credential_id


def test_cap_and_enrolment_scope(
    server: LiveServer, tenant: Tenant, ceremony: Ceremony, tmp_path: Path
) -> None:
    first = SoftwareAuthenticator(tmp_path / "first.bin")
    ceremony.register(first, "capped")
    second = SoftwareAuthenticator(tmp_path / "second.bin")
    plain = ceremony.authsignal.track("capped", "addPasskey")["token"]
    response = ceremony.http.post(
        "/client/user-authenticators/passkey/registration-options", headers=bearer(plain), json={}
    )
    assert_error(response, 403, "forbidden")  # enrolled: needs add:authenticators
    scoped = ceremony.authsignal.track("capped", "addPasskey", {"scope": "add:authenticators"})
    response = ceremony.http.post(
        "/client/user-authenticators/passkey/registration-options",
        headers=bearer(scoped["token"]),
        json={},
    )
    assert response.status_code == 200
    challenge_id, options = response.json()["challengeId"], response.json()["options"]
    assert ceremony.add(scoped["token"], challenge_id, second.create(options)).status_code == 200
    set_passkeys(server, tenant, maxPasskeysPerUser=2)
    again = ceremony.authsignal.track("capped", "addPasskey", {"scope": "add:authenticators"})
    response = ceremony.http.post(
        "/client/user-authenticators/passkey/registration-options",
        headers=bearer(again["token"]),
        json={},
    )
    assert_error(response, 403, "passkey_limit_reached")


def test_a_blocked_action_stays_blocked(
    server: LiveServer, tenant: Tenant, ceremony: Ceremony, tmp_path: Path
) -> None:
    device = SoftwareAuthenticator(tmp_path / "blocked.bin")
    ceremony.register(device, "blocked-user")

    async def block(db: Db) -> None:
        await tenants.set_action_outcome(db, tenant.id, "signInWithPasskey", ActionOutcome.BLOCK)

    server.run(block)
    challenge_id, assertion = ceremony.assertion(device)
    assert_error(ceremony.verify(challenge_id, assertion), 403, "forbidden")
    tracked = ceremony.authsignal.track("blocked-user", "signInWithPasskey")
    assert tracked["state"] == "BLOCK"
