"""Signature algorithms, end to end: a software authenticator makes a real key of each
algorithm, registers and signs in through the real server; a tenant's choice of algorithms
is enforced at registration and at sign-in, and narrowing it warns with counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from passgate.authenticators import SoftwareAuthenticator
from passgate.server.services import cose_algorithms, passkey_policy, tenants
from passgate.server.store.db import Db
from passgate.server.store.tables import PasskeyCredential
from tests.cli.test_cli import passgate
from tests.live_server import LiveServer, Tenant
from tests.passkeys.helpers import Ceremony
from tests.server.test_refusals import assert_error

NAMES = [algorithm.name for algorithm in cose_algorithms.available()]


def stored(server: LiveServer, credential_id: str) -> Any:
    async def work(db: Db) -> Any:
        query = select(PasskeyCredential).where(PasskeyCredential.credential_id == credential_id)
        return (await db.execute(query)).one()

    return server.run(work)


def webauthn_command(
    server: LiveServer, tenant: Tenant, *options: str
) -> tuple[dict[str, Any], str]:
    result = passgate(
        "tenant", "webauthn", tenant.id, *options, "--database-url", server.database_url, "--json"
    )
    assert result.returncode == 0, result.stderr
    tenants.forget(tenant.id)  # the server (this process) would see it within CACHE_SECONDS
    return json.loads(result.stdout), result.stderr


def test_every_algorithm_of_cryptography_is_offered() -> None:
    """ES256 first; ML-DSA whenever this cryptography's OpenSSL has it (it does here)."""
    assert NAMES[0] == "ES256"
    assert set(NAMES) >= {"ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"}
    assert cose_algorithms.ml_dsa_available()
    assert {"ML-DSA-44", "ML-DSA-65", "ML-DSA-87"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_register_and_sign_in_with(
    name: str, server: LiveServer, ceremony: Ceremony, tmp_path: Path
) -> None:
    device = SoftwareAuthenticator(tmp_path / "device.bin", algorithms=(name,))
    user_id = f"user-{name}"
    ceremony.register(device, user_id)
    row = stored(server, device.credential_ids()[0])
    assert row.public_key_algorithm == cose_algorithms.BY_NAME[name.lower()].cose_id
    assert row.attestation_verified is False  # packed self attestation: no chain
    challenge_id, assertion = ceremony.assertion(device)
    verified = ceremony.verify(challenge_id, assertion)
    assert verified.status_code == 200, verified.text
    assert verified.json()["userId"] == user_id


def test_an_algorithm_the_tenant_does_not_accept_is_refused(
    server: LiveServer, tenant: Tenant, ceremony: Ceremony, tmp_path: Path
) -> None:
    edwards = SoftwareAuthenticator(tmp_path / "eddsa.bin", algorithms=("EdDSA",))
    ceremony.register(edwards, "edwards")

    shown, warning = webauthn_command(server, tenant, "--algorithms", "es256,ES384")
    assert shown["algorithms"] == ["ES256", "ES384"]
    assert shown["noLongerAccepted"] == {"EdDSA": 1}
    assert "warning: 1 passkey of this tenant uses EdDSA" in warning

    # Sign-in with the passkey made before the change: refused before its signature counts.
    challenge_id, assertion = ceremony.assertion(edwards)
    body = assert_error(ceremony.verify(challenge_id, assertion), 400, "algorithm_not_accepted")
    assert "EdDSA" in body["errorDescription"]

    # Options offer only what is accepted; a client that creates an EdDSA key anyway is refused.
    token, challenge_id, options = ceremony.registration_options("edwards-2")
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-7, -35]
    another = SoftwareAuthenticator(tmp_path / "eddsa-2.bin", algorithms=("EdDSA",))
    bent = {**options, "pubKeyCredParams": [{"type": "public-key", "alg": -8}]}
    refused = ceremony.add(token, challenge_id, another.create(bent))
    assert_error(refused, 400, "algorithm_not_accepted")

    shown, warning = webauthn_command(server, tenant, "--algorithms", ",".join(NAMES))
    assert shown["noLongerAccepted"] == {} and warning == ""
    challenge_id, assertion = ceremony.assertion(edwards)
    assert ceremony.verify(challenge_id, assertion).status_code == 200


def test_rows_without_a_recorded_algorithm_read_it_from_their_key(
    server: LiveServer, tenant: Tenant, ceremony: Ceremony, tmp_path: Path
) -> None:
    """Passkeys registered before the algorithm was recorded count, and are refused, alike."""
    rsa = SoftwareAuthenticator(tmp_path / "rsa.bin", algorithms=("RS256",))
    ceremony.register(rsa, "legacy")
    (credential_id,) = rsa.credential_ids()

    async def forget(db: Db) -> dict[int, int]:
        await db.execute(
            update(PasskeyCredential)
            .where(PasskeyCredential.credential_id == credential_id)
            .values(public_key_algorithm=None)
        )
        return await passkey_policy.passkeys_by_algorithm(db, tenant.id)

    assert server.run(forget) == {-257: 1}
    remaining = ",".join(name for name in NAMES if name != "RS256")
    shown, warning = webauthn_command(server, tenant, "--algorithms", remaining)
    assert shown["noLongerAccepted"] == {"RS256": 1}
    assert "1 passkey of this tenant uses RS256" in warning
    challenge_id, assertion = ceremony.assertion(rsa)
    assert_error(ceremony.verify(challenge_id, assertion), 400, "algorithm_not_accepted")


def test_unknown_algorithms_are_refused_by_the_command(server: LiveServer, tenant: Tenant) -> None:
    result = passgate(
        "tenant", "webauthn", tenant.id, "--algorithms", "ES256,HS256",
        "--database-url", server.database_url,
    )  # fmt: skip
    assert result.returncode != 0
    assert "HS256" in result.stderr and "Traceback" not in result.stderr
