"""Tenants in the console, over HTTP: creating one (its key shown once and working), each
settings form saving and being audited, and bad input refused inline with nothing saved."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from authsignal.client import ApiException, AuthsignalClient

from passgate.authenticators import SoftwareAuthenticator
from passgate.server.services import passkey_policy, tenants
from passgate.server.services.push.settings import push_settings
from passgate.server.store.db import Db
from passgate.server.store.tables import Tenant as TenantRow
from tests.console.helpers import Console, alerts, audit_events, enrolled_console
from tests.live_server import LiveServer, Tenant
from tests.passkeys.helpers import Ceremony

FINGERPRINT = ":".join(["5A"] * 32)
SECRET = re.compile(r'id="(?:secret-key|new-secret)">([^<]+)<')


@pytest.fixture
def console(server: LiveServer, tmp_path: Path) -> Iterator[Console]:
    made = enrolled_console(server, tmp_path, f"tenants-{tmp_path.name}@example.com")
    yield made
    made.close()


def stored(server: LiveServer, tenant_id: str) -> TenantRow:
    async def work(db: Db) -> TenantRow:
        return await tenants.get_tenant(db, tenant_id)

    return server.run(work)


def key_works(server: LiveServer, secret_key: str) -> bool:
    client = AuthsignalClient(api_secret_key=secret_key, api_url=server.api_url, timeout=10)
    try:
        client.get_user("console-user")
    except ApiException as exc:
        assert exc.status_code == 401
        return False
    finally:
        client.session.close()
    return True


def test_create_tenant_shows_its_key_once(server: LiveServer, console: Console) -> None:
    created = console.post(
        "/admin/tenants",
        {"name": "Console shop", "rp_id": "localhost", "origins": "https://shop.localhost"},
    )
    assert created.status_code == 200, created.text
    (secret_key,) = SECRET.findall(created.text)
    tenant_id = re.search(r'id="tenant-id">([^<]+)<', created.text)
    assert tenant_id is not None
    assert key_works(server, secret_key)
    page = console.get(f"/admin/tenants/{tenant_id.group(1)}")
    assert page.status_code == 200 and secret_key not in page.text
    assert stored(server, tenant_id.group(1)).origins == [
        "https://localhost",
        "https://shop.localhost",
    ]
    (event,) = audit_events(server, tenant_id=tenant_id.group(1))
    assert (event.action, event.actor_type, event.actor_id) == (
        "tenant.created",
        "admin",
        console.email,
    )
    assert event.source == "127.0.0.1"
    assert secret_key not in str(event.details)


def test_bad_input_is_refused_inline_and_nothing_is_saved(
    server: LiveServer, console: Console, tenant: Tenant
) -> None:
    before = stored(server, tenant.id)
    path = f"/admin/tenants/{tenant.id}"
    refusals = {
        # An origin that is not one, after a good one: neither is saved.
        "/relying-party": (
            {"rp_id": "localhost", "origins": "https://localhost\nhttps://ok.localhost\nftp://x"},
            "is not an origin",
        ),
        # An rp id that is not a registrable suffix of the origins.
        "/relying-party#2": (
            {"rp_id": "example.com", "origins": "https://example.com\nhttps://app.localhost"},
            "is not a registrable suffix",
        ),
        "/general": (
            {"name": "Renamed", "rp_name": "Renamed", "token_lifetime": "soon"},
            "must be a whole number",
        ),
        "/general#2": (
            {"name": "Renamed", "rp_name": "Renamed", "token_lifetime": "5"},
            "token lifetime must be",
        ),
        # A colour that could carry CSS: only #rrggbb reaches the page's style block.
        "/general#3": (
            {
                "name": "Renamed",
                "rp_name": "Renamed",
                "token_lifetime": "300",
                "accent_color": "red; }",
            },
            "must be #rrggbb",
        ),
        "/outcomes": ({"action_code": "bad code!", "outcome": "ALLOW"}, "may only use"),
    }
    for route, (form, reason) in refusals.items():
        refused = console.post(path + route.split("#")[0], form)
        assert refused.status_code == 400, route
        (shown,) = alerts(refused)
        assert reason in shown, (route, shown)
        # What was typed is kept in the form.
        assert form[next(iter(form))].split("\n")[0] in refused.text

    apps = console.post(
        path + "/apps",
        {"android_apps": "com.example.app 5A:5A:zz", "ios_apps": "", "intent": "save"},
    )
    assert apps.status_code == 400 and "is not a SHA-256 fingerprint" in alerts(apps)[0]
    push = console.post(
        path + "/push",
        {
            "challenge_expiry_seconds": "2",
            "code_digits": "2",
            "rate_limit": "5",
            "rate_limit_window_seconds": "600",
        },
    )
    assert push.status_code == 400 and "challenge expiry must be" in alerts(push)[0]

    after = stored(server, tenant.id)
    assert (after.name, after.rp_id, after.origins, after.token_lifetime_seconds) == (
        before.name,
        before.rp_id,
        before.origins,
        before.token_lifetime_seconds,
    )
    assert after.settings == before.settings
    assert audit_events(server, tenant_id=tenant.id) == []


def test_settings_forms_save_and_are_audited(
    server: LiveServer, console: Console, tenant: Tenant
) -> None:
    path = f"/admin/tenants/{tenant.id}"
    general = console.post(
        path + "/general",
        {"name": "Shop", "rp_name": "Shop Inc", "token_lifetime": "300", "accent_color": "#7A2E8F"},
    )
    assert general.status_code == 303
    assert general.headers["location"] == f"{path}?saved=general#general"
    origins = console.post(
        path + "/relying-party",
        {"rp_id": "localhost", "origins": "https://localhost\nhttps://app.localhost"},
    )
    assert origins.status_code == 303
    outcome = console.post(path + "/outcomes", {"action_code": "signIn", "outcome": "ALLOW"})
    assert outcome.status_code == 303
    push = console.post(
        path + "/push",
        {
            "challenge_on_track": "on",
            "challenge_expiry_seconds": "90",
            "code_digits": "3",
            "rate_limit": "4",
            "rate_limit_window_seconds": "300",
            "webhook_url": "https://hooks.example/push",
        },
    )
    assert push.status_code == 303, push.text

    row = stored(server, tenant.id)
    assert (row.name, row.rp_name, row.token_lifetime_seconds) == ("Shop", "Shop Inc", 300)
    assert row.origins == ["https://localhost", "https://app.localhost"]
    assert row.settings["actionOutcomes"] == {"signIn": "ALLOW"}
    settings = push_settings(row)
    assert (settings.challenge_expiry_seconds, settings.number_matching) == (90, False)
    assert settings.webhook_url == "https://hooks.example/push" and settings.webhook_secret
    page = console.get(path + "/push")
    assert 'value="90"' in page.text and settings.webhook_secret not in page.text

    events = {e.action: e for e in audit_events(server, tenant_id=tenant.id)}
    assert set(events) == {
        "tenant.updated",
        "tenant.branding.changed",
        "tenant.action_outcome.changed",
        "tenant.push.changed",
    }
    assert row.settings["branding"] == {"accentColor": "#7a2e8f"}
    assert events["tenant.branding.changed"].details == {
        "accentColor": {"from": None, "to": "#7a2e8f"}
    }
    push_details = events["tenant.push.changed"].details or {}
    assert push_details["challenge_expiry_seconds"] == {"from": 120, "to": 90}
    assert settings.webhook_secret not in str(push_details)
    updates = audit_events(server, tenant_id=tenant.id, action_prefix="tenant.updated")
    assert {"from": 600, "to": 300} in [e.details.get("tokenLifetimeSeconds") for e in updates]  # type: ignore[union-attr]


def test_a_new_rp_id_needs_the_count_of_passkeys_it_orphans(
    server: LiveServer,
    console: Console,
    tenant: Tenant,
    authsignal: AuthsignalClient,
    tmp_path: Path,
) -> None:
    ceremony = Ceremony(server.api_url, tenant.id, authsignal)
    ceremony.register(SoftwareAuthenticator(tmp_path / "user.bin"), "orphan-to-be")
    ceremony.close()
    path = f"/admin/tenants/{tenant.id}/relying-party"
    form = {"rp_id": "shop.localhost", "origins": "https://shop.localhost"}
    refused = console.post(path, form)
    assert refused.status_code == 400
    assert "1 passkeys" in alerts(refused)[0]
    assert 'name="confirm_passkeys"' in refused.text
    wrong = console.post(path, {**form, "confirm_passkeys": "2"})
    assert wrong.status_code == 400 and stored(server, tenant.id).rp_id == "localhost"
    confirmed = console.post(path, {**form, "confirm_passkeys": "1"})
    assert confirmed.status_code == 303
    assert stored(server, tenant.id).rp_id == "shop.localhost"
    (event,) = audit_events(server, tenant_id=tenant.id, action_prefix="tenant.updated")
    assert event.details and event.details["rpId"] == {"from": "localhost", "to": "shop.localhost"}


def test_apps_preview_shows_the_well_known_files_before_saving(
    server: LiveServer, console: Console, tenant: Tenant
) -> None:
    path = f"/admin/tenants/{tenant.id}/apps"
    form = {
        "ios_apps": "ABCDE12345.com.example.app",
        "android_apps": f"com.example.app {FINGERPRINT}",
    }
    preview = console.post(path, {**form, "intent": "preview"})
    assert preview.status_code == 200
    proposed = re.search(
        r'<pre data-file="assetlinks.json" data-version="proposed">([^<]+)</pre>', preview.text
    )
    assert proposed and "com.example.app" in proposed.group(1) and FINGERPRINT in proposed.group(1)
    current = re.search(
        r'<pre data-file="assetlinks.json" data-version="current">([^<]+)</pre>', preview.text
    )
    assert current and current.group(1).strip() == "[]"
    assert passkey_policy.read_settings(stored(server, tenant.id)).android_apps == []

    saved = console.post(path, {**form, "intent": "save"})
    assert saved.status_code == 303
    served = httpx.get(f"{server.url}/.well-known/assetlinks.json", headers={"Host": "localhost"})
    assert served.json()[0]["target"]["package_name"] == "com.example.app"
    page = console.get(path)
    assert f"com.example.app {FINGERPRINT}" in page.text and "unchanged" in page.text
    (event,) = audit_events(server, tenant_id=tenant.id, action_prefix="tenant.passkeys")
    assert event.details and event.details["iosApps"] == {
        "from": [],
        "to": ["ABCDE12345.com.example.app"],
    }


def test_rotating_keys_with_a_grace_period(
    server: LiveServer, console: Console, tenant: Tenant
) -> None:
    path = f"/admin/tenants/{tenant.id}/keys"
    refused = console.post(path + "/secret", {"grace": "5"})
    assert refused.status_code == 400 and "grace periods offered" in alerts(refused)[0]
    assert key_works(server, tenant.secret_key)

    rotated = console.post(path + "/secret", {"grace": "3600"})
    assert rotated.status_code == 200
    (new_key,) = SECRET.findall(rotated.text)
    assert "keeps working until" in rotated.text
    assert key_works(server, new_key) and key_works(server, tenant.secret_key)
    assert new_key not in console.get(path).text

    no_webhook = console.post(path + "/webhook", {"grace": "3600"})
    assert no_webhook.status_code == 400 and "no webhook" in alerts(no_webhook)[0]

    immediate = console.post(path + "/secret", {"grace": "0"})
    (newest,) = SECRET.findall(immediate.text)
    assert not key_works(server, new_key) and not key_works(server, tenant.secret_key)
    assert key_works(server, newest)
    details = [e.details for e in audit_events(server, tenant_id=tenant.id)]
    assert details == [{"graceSeconds": 0}, {"graceSeconds": 3600}]
