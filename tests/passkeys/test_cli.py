"""`passgate tenant passkeys`, `passgate wellknown` and `passgate doctor`, run as commands
against a real server's database, and the .well-known files that server hosts."""

from __future__ import annotations

import json

import httpx

from tests.cli.test_cli import passgate
from tests.live_server import LiveServer

SIGNING_CERT_SHA256 = "373B4FFAC7CDAB2DBF5C87B87AB9B8A91FB0E1E449D8397A25DB856CF0981E29"
FINGERPRINT = ":".join(f"{byte:02X}" for byte in bytes.fromhex(SIGNING_CERT_SHA256))
# The worked example of docs/wire.md#native-app-association.
APK_ORIGIN = "android:apk-key-hash:NztP-sfNqy2_XIe4erm4qR-w4eRJ2Dl6JduFbPCYHik"


def configure(server: LiveServer, tenant_id: str, *options: str) -> dict[str, object]:
    result = passgate(
        "tenant", "passkeys", tenant_id, *options, "--database-url", server.database_url, "--json"
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_apps_become_origins_and_well_known_files(server: LiveServer) -> None:
    tenant = server.create_tenant(rp_id="127.0.0.1")
    shown = configure(
        server,
        tenant.id,
        "--ios-app",
        "ABCDE12345.com.example.app",
        "--android-app",
        f"com.example.app={FINGERPRINT.lower()}",
        "--user-verification",
        "required",
    )
    assert shown["userVerification"] == "required"
    assert shown["origins"] == ["https://127.0.0.1", APK_ORIGIN]

    aasa = httpx.get(f"{server.url}/.well-known/apple-app-site-association")
    assert aasa.status_code == 200
    assert aasa.headers["content-type"] == "application/json"
    assert aasa.json() == {"webcredentials": {"apps": ["ABCDE12345.com.example.app"]}}
    links = httpx.get(f"{server.url}/.well-known/assetlinks.json").json()
    assert links[0]["target"] == {
        "namespace": "android_app",
        "package_name": "com.example.app",
        "sha256_cert_fingerprints": [FINGERPRINT],
    }
    assert "delegate_permission/common.get_login_creds" in links[0]["relation"]

    printed = passgate("wellknown", tenant.id, "--database-url", server.database_url)
    assert printed.returncode == 0, printed.stderr
    assert "https://127.0.0.1/.well-known/assetlinks.json" in printed.stdout
    assert FINGERPRINT in printed.stdout

    doctor = passgate(
        "doctor", tenant.id, "--url", server.url, "--database-url", server.database_url
    )
    lines = doctor.stdout.splitlines()
    assert "ok    apple-app-site-association lists iOS app ABCDE12345.com.example.app" in lines
    assert f"ok    com.example.app has fingerprint {FINGERPRINT}" in lines
    # The only complaint about Passgate's own files: a loopback test server is not https.
    assert [line for line in lines if line.startswith("WRONG")] == [
        f"WRONG {server.url} is not https (apps require it)"
    ]
    assert doctor.returncode == 1


def test_doctor_names_what_does_not_match(server: LiveServer) -> None:
    hosted = server.create_tenant(rp_id="127.0.0.1")
    configure(server, hosted.id, "--ios-app", "ZZZZZ99999.com.other.app")
    wanted = server.create_tenant(rp_id="127.0.0.1", name="wanted")
    configure(server, wanted.id, "--android-app", f"com.example.app={FINGERPRINT}")
    configure(server, wanted.id, "--clear-apps")
    configure(server, wanted.id, "--ios-app", "ABCDE12345.com.example.app")
    doctor = passgate(
        "doctor", wanted.id, "--url", server.url, "--database-url", server.database_url
    )
    assert doctor.returncode == 1
    assert "WRONG apple-app-site-association lists iOS app ABCDE12345.com.example.app" not in (
        doctor.stdout
    )  # served merged for every tenant on this host, so it is there
    assert "ZZZZZ99999.com.other.app, which the tenant does not know" in doctor.stdout


def test_bad_settings_are_refused(server: LiveServer) -> None:
    tenant = server.create_tenant()
    for options in (
        ["--ios-app", "not-an-app-id"],
        ["--android-app", "com.example.app=12:34"],
        ["--user-verification", "sometimes"],
        ["--max-passkeys", "0"],
    ):
        result = passgate(
            "tenant", "passkeys", tenant.id, *options, "--database-url", server.database_url
        )
        assert result.returncode != 0
        assert "invalid passkey settings" in result.stderr


def test_unknown_host_has_no_well_known_files(server: LiveServer) -> None:
    response = httpx.get(
        f"{server.url}/.well-known/assetlinks.json", headers={"Host": "nobody.example"}
    )
    assert response.status_code == 404
    assert response.json()["errorCode"] == "not_found"
