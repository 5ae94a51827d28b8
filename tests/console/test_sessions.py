"""Admins, their passkeys and their sessions, over HTTP against the real server: enrolment
links that work once and expire, sign-in and sign-out, session cookies, idle and absolute
expiry, revocation, CSRF and Origin refusals, ceremonies bound to the browser."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from passgate.authenticators import SoftwareAuthenticator
from passgate.server.store.db import Db
from passgate.server.store.tables import AdminLink, AdminSession, utcnow
from tests.console.helpers import Console, audit_events, create_admin, enrolled_console
from tests.live_server import LiveServer


@pytest.fixture
def console(server: LiveServer, tmp_path: Path) -> Iterator[Console]:
    made = Console(server, tmp_path / "admin.bin")
    yield made
    made.close()


def age_sessions(server: LiveServer, email: str, **changes: object) -> None:
    """Move an admin's sessions in time, as waiting would."""

    async def work(db: Db) -> None:
        from passgate.server.store.tables import Admin

        await db.execute(
            update(AdminSession)
            .where(AdminSession.admin_id == Admin.id, Admin.email == email)
            .values(**changes)
        )

    server.run(work)


def test_enrolment_link_works_once(server: LiveServer, console: Console) -> None:
    token = create_admin(server, "once@example.com")
    assert "once@example.com" in console.get("/admin/enrol", token=token).text
    enrolled = console.enrol(token)
    assert enrolled.status_code == 200, enrolled.text
    assert enrolled.json() == {"redirect": "/admin/account?enrolled=1"}
    (cookie,) = [c for c in enrolled.headers.get_list("set-cookie") if "passgate_admin=" in c]
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert {"httponly", "path=/admin", "samesite=strict"} <= set(flags)
    assert "secure" not in flags  # the public URL is http://localhost here
    assert console.signed_in()

    again = console.get("/admin/enrol", token=token)
    assert again.status_code == 400 and "already been used" in again.text
    refused = console.http.post("/admin/enrol/options", json={"token": token})
    assert refused.status_code == 400 and refused.json()["errorCode"] == "link_used"
    actions = [e.action for e in audit_events(server, actor_id="once@example.com")]
    assert actions == ["admin.signed_in", "admin.passkey.added"]
    created = audit_events(server, action_prefix="admin.created")
    assert any(e.target_id == "once@example.com" and e.source == "cli" for e in created)


def expire_links(server: LiveServer) -> None:
    async def work(db: Db) -> None:
        past = utcnow() - timedelta(seconds=1)
        await db.execute(update(AdminLink).values(expires_at=past))

    server.run(work)


def test_enrolment_link_expires(server: LiveServer, console: Console, tmp_path: Path) -> None:
    token = create_admin(server, "late@example.com")
    started = console.http.post("/admin/enrol/options", json={"token": token})
    assert started.status_code == 200
    expire_links(server)  # 15 minutes later
    page = console.get("/admin/enrol", token=token)
    assert page.status_code == 400 and "expired" in page.text
    # A ceremony started in time cannot finish once the link has expired.
    body = started.json()
    finished = console.http.post(
        "/admin/enrol/finish",
        json={
            "challengeId": body["challengeId"],
            "credential": console.device.create(body["options"]),
        },
    )
    assert finished.status_code == 400 and finished.json()["errorCode"] == "link_used"
    assert not console.signed_in()
    assert console.get("/admin/enrol", token="made-up").status_code == 400


def test_sign_in_sign_out(server: LiveServer, tmp_path: Path) -> None:
    console = enrolled_console(server, tmp_path, "in-out@example.com")
    cookie = console.http.cookies["passgate_admin"]
    signed_out = console.post("/admin/sign-out")
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/admin/sign-in?signed_out=1"
    assert not console.signed_in()
    # The old cookie, replayed, is refused: its session was revoked.
    console.http.cookies.set("passgate_admin", cookie)
    assert not console.signed_in()
    console.http.cookies.clear()

    signed_in = console.sign_in(next_page="/admin/activity")
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json() == {"redirect": "/admin/activity"}
    assert console.signed_in()
    # `next` never leaves the console.
    console.http.cookies.clear()
    assert console.sign_in(next_page="https://evil.example/").json()["redirect"] == "/admin/tenants"
    actions = [e.action for e in audit_events(server, actor_id="in-out@example.com")]
    assert actions.count("admin.signed_in") == 3 and "admin.signed_out" in actions
    console.close()


def test_pages_need_a_session(server: LiveServer, console: Console) -> None:
    for path in ("/admin/tenants", "/admin/activity", "/admin/admins", "/admin/account"):
        response = console.http.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == f"/admin/sign-in?next={path}"
    refused = console.http.post("/admin/tenants", data={"name": "x", "rp_id": "localhost"})
    assert refused.status_code == 303


def test_idle_and_absolute_limits(server: LiveServer, tmp_path: Path) -> None:
    console = enrolled_console(server, tmp_path, "limits@example.com")
    idle = timedelta(minutes=server.settings.console_idle_minutes)
    age_sessions(server, "limits@example.com", last_seen_at=utcnow() - idle + timedelta(minutes=1))
    assert console.signed_in()  # used within the idle limit: still live, and touched
    age_sessions(server, "limits@example.com", last_seen_at=utcnow() - idle)
    assert not console.signed_in()

    assert console.sign_in().status_code == 200
    assert console.signed_in()
    age_sessions(server, "limits@example.com", expires_at=utcnow() - timedelta(seconds=1))
    assert not console.signed_in()  # however recently used
    console.close()


def test_revoke_one_session_or_all(server: LiveServer, tmp_path: Path) -> None:
    first = enrolled_console(server, tmp_path, "many@example.com")
    second = Console(server, tmp_path / "many@example.com.bin")  # the same passkey, another browser
    assert second.sign_in().status_code == 200
    admin_page = first.get("/admin/account")
    admin_path = admin_page.text.split('href="/admin/admins/')[1].split('"')[0]
    listed = first.get(f"/admin/admins/{admin_path}")
    assert listed.text.count('name="session_id"') == 2

    rows = listed.text.split("<tr>")[1:]
    row = next(r for r in rows if 'name="session_id"' in r and "(this one)" not in r)
    other = row.split('name="session_id" value="')[1].split('"')[0]
    revoked = first.post(f"/admin/admins/{admin_path}/sessions/revoke", {"session_id": other})
    assert revoked.status_code == 303
    assert first.signed_in()
    assert not second.signed_in()

    assert second.sign_in().status_code == 200
    revoked_all = first.post(f"/admin/admins/{admin_path}/sessions/revoke")
    assert revoked_all.status_code == 303
    assert not first.signed_in() and not second.signed_in()
    details = [e.details for e in audit_events(server, action_prefix="admin.sessions.revoked")]
    assert {"sessionId": other} in details and {"all": True, "count": 2} in details
    first.close()
    second.close()


def test_forms_need_the_sessions_csrf_token_and_origin(server: LiveServer, tmp_path: Path) -> None:
    console = enrolled_console(server, tmp_path, "csrf@example.com")
    other = enrolled_console(server, tmp_path, "other-csrf@example.com")
    form = {"name": "Forged", "rp_id": "localhost"}
    for token in ("", "forged", other.csrf()):
        refused = console.post("/admin/tenants", {**form, "csrf_token": token})
        assert refused.status_code == 403, token
        assert "security token" in refused.text
    foreign = console.post("/admin/tenants", form, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "own pages" in foreign.text
    null_origin = console.post("/admin/tenants", form, headers={"Origin": "null"})
    assert null_origin.status_code == 403
    assert "Forged" not in console.get("/admin/tenants").text

    # console.js's JSON calls: the token in X-CSRF-Token.
    no_header = console.http.post("/admin/account/passkeys/options", json={})
    assert no_header.status_code == 403 and no_header.json()["errorCode"] == "csrf_refused"
    cross_site = console.http.post(
        "/admin/sign-in/options", json={}, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403 and cross_site.json()["errorCode"] == "origin_refused"
    assert console.post("/admin/tenants", form).status_code == 200  # the real thing works
    console.close()
    other.close()


def test_a_ceremony_finishes_only_in_its_browser(server: LiveServer, tmp_path: Path) -> None:
    owner = enrolled_console(server, tmp_path, "bound@example.com")
    owner.http.cookies.clear()
    started = owner.http.post("/admin/sign-in/options", json={}).json()
    assertion = owner.device.get(started["options"])
    thief = Console(server, tmp_path / "thief.bin")
    stolen = thief.http.post(
        "/admin/sign-in/finish",
        json={"challengeId": started["challengeId"], "credential": assertion},
    )
    assert stolen.status_code == 403
    assert stolen.json()["errorCode"] == "challenge_cookie_mismatch"
    assert not thief.signed_in()
    owner.close()
    thief.close()


def test_second_passkey(server: LiveServer, tmp_path: Path) -> None:
    console = enrolled_console(server, tmp_path, "two@example.com")
    laptop = SoftwareAuthenticator(tmp_path / "laptop.bin", origin=console.origin)
    added = console.add_passkey(laptop)
    assert added.status_code == 200, added.text
    account = console.get("/admin/account")
    assert account.text.count("/delete") == 2

    # The second passkey signs in on its own.
    elsewhere = Console(server, tmp_path / "laptop.bin")
    assert elsewhere.sign_in().status_code == 200
    assert elsewhere.signed_in()

    # Either may go, but not both.
    delete_paths = [
        part.split('"')[0] for part in account.text.split('action="/admin/account/passkeys/')[1:]
    ]
    removed = console.post(f"/admin/account/passkeys/{delete_paths[0]}")
    assert removed.status_code == 303
    account = console.get("/admin/account")
    assert account.text.count("/delete") == 0  # the last one has no remove button
    last = delete_paths[1].removesuffix("/delete")
    refused = console.post(f"/admin/account/passkeys/{last}/delete")
    assert refused.status_code == 400 and "only passkey" in refused.text
    console.close()
    elsewhere.close()


def test_unknown_passkeys_do_not_sign_in(server: LiveServer, tmp_path: Path) -> None:
    stranger = Console(server, tmp_path / "stranger.bin")
    started = stranger.http.post("/admin/sign-in/options", json={}).json()
    # A passkey of the right relying party that no admin registered.
    options = {**started["options"], "allowCredentials": []}
    stranger.device.create(
        {
            "rp": {"id": options["rpId"], "name": "x"},
            "user": {"id": "c3RyYW5nZXI", "name": "s", "displayName": "s"},
            "challenge": options["challenge"],
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
            "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
        }
    )
    assertion = stranger.device.get(options)
    refused = stranger.http.post(
        "/admin/sign-in/finish",
        json={"challengeId": started["challengeId"], "credential": assertion},
    )
    assert refused.status_code == 400 and refused.json()["errorCode"] == "unknown_passkey"
    stranger.close()
