"""A tenant's users in the console: finding one, their passkeys named from the AAGUID list
(with its icon), renaming and deleting a passkey (seen by the Client API too), push devices,
recent actions, deleting the user; each change audited."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from authsignal.client import AuthsignalClient

from passgate import AuthsignalSync
from passgate.authenticators import DeviceKeyStore, SoftwareAuthenticator
from tests.console.helpers import Console, alerts, audit_events, enrolled_console
from tests.live_server import LiveServer, Tenant
from tests.passkeys.helpers import Ceremony, bearer

ONE_PASSWORD = "bada5566-a7aa-401f-bd96-45619a55120d"


@pytest.fixture
def console(server: LiveServer, tmp_path: Path) -> Iterator[Console]:
    made = enrolled_console(server, tmp_path, f"users-{tmp_path.name}@example.com")
    yield made
    made.close()


def test_find_a_user_and_manage_their_passkeys(
    server: LiveServer,
    console: Console,
    tenant: Tenant,
    authsignal: AuthsignalClient,
    tmp_path: Path,
) -> None:
    user_id = "user 1?odd&chars+é"
    authsignal.update_user(user_id, {"email": "odd@example.com", "username": "odd"})
    device = SoftwareAuthenticator(tmp_path / "1password.bin")
    device.device.vault.aaguid = ONE_PASSWORD.replace("-", "")
    ceremony = Ceremony(server.api_url, tenant.id, authsignal)
    added = ceremony.register(device, user_id)
    authsignal.track(user_id, "payment", {"custom": {"amount": 42}, "ipAddress": "203.0.113.9"})

    base = f"/admin/tenants/{tenant.id}"
    for query in ("user 1", "odd@example.com", "odd"):
        found = console.get(base + "/users", q=query)
        assert f"?id={quote(user_id, safe='')}" in found.text, query
    assert "No users" in console.get(base + "/users", q="nobody").text

    page = console.get(base + "/user", id=user_id)
    assert page.status_code == 200
    assert "<strong>1Password</strong>" in page.text
    assert re.search(r'<img class="icon" src="data:image/svg\+xml;base64,[^"]+" alt="">', page.text)
    assert "payment" in page.text and "203.0.113.9" in page.text and "42" in page.text
    authenticator_id = added["userAuthenticatorId"]

    form = {"user_id": user_id, "authenticator_id": authenticator_id}
    too_long = console.post(base + "/user/passkeys/rename", {**form, "name": "x" * 101})
    assert too_long.status_code == 400 and "at most 100" in alerts(too_long)[0]
    renamed = console.post(base + "/user/passkeys/rename", {**form, "name": "Work laptop"})
    assert renamed.status_code == 303
    page = console.get(base + "/user", id=user_id)
    assert "<strong>Work laptop</strong>" in page.text and "(1Password)" in page.text
    listed = ceremony.http.get("/client/user-authenticators", headers=bearer(added["accessToken"]))
    credential = listed.json()[0]["webauthnCredential"]
    assert credential["name"] == "Work laptop"
    assert credential["aaguidMapping"]["name"] == "1Password"

    deleted = console.post(base + "/user/authenticators/delete", form)
    assert deleted.status_code == 303
    assert "No passkeys." in console.get(base + "/user", id=user_id).text
    assert authsignal.get_authenticators(user_id) == []
    ceremony.close()

    actions = [(e.action, e.target_id) for e in audit_events(server, tenant_id=tenant.id)]
    assert actions == [
        ("user.passkey.deleted", user_id),
        ("user.passkey.renamed", user_id),
        ("user.passkey.added", user_id),  # by the user's browser, at C3
    ]


def test_push_devices_and_deleting_the_user(
    server: LiveServer,
    console: Console,
    tenant: Tenant,
    authsignal: AuthsignalClient,
    tmp_path: Path,
) -> None:
    phone = AuthsignalSync(
        tenant.id, server.api_url, device_keys=DeviceKeyStore(tmp_path / "phone.pem")
    )
    token = authsignal.track("pat", "enrollPush", {"scope": "add:authenticators"})["token"]
    assert phone.push.add_credential(token, device_name="Pat's phone").ok
    phone.close()
    base = f"/admin/tenants/{tenant.id}"
    page = console.get(base + "/user", id="pat")
    assert "Pat&#39;s phone" in page.text

    unconfirmed = console.post(base + "/user/delete", {"user_id": "pat"})
    assert unconfirmed.status_code == 400
    assert console.get(base + "/user", id="pat").status_code == 200
    deleted = console.post(base + "/user/delete", {"user_id": "pat", "confirm": "on"})
    assert deleted.status_code == 303
    assert console.get(base + "/user", id="pat").status_code == 404
    assert authsignal.get_user("pat")["is_enrolled"] is False
    (event,) = audit_events(server, tenant_id=tenant.id, action_prefix="user.deleted")
    assert (event.actor_id, event.target_id) == (console.email, "pat")
