"""Driving the console over HTTP as a browser would: a cookie jar, the console's own
`Origin` on every request, and a software authenticator on Passgate's relying party (the
host of its public URL) making and using the admin's passkeys."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from passgate.authenticators import SoftwareAuthenticator
from passgate.server.services import audit
from passgate.server.services.admins import accounts
from passgate.server.store.db import Db
from passgate.server.store.tables import AuditEvent
from tests.live_server import LiveServer

CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
ALERT = re.compile(r'class="field-error" role="alert"[^>]*>([^<]+)<')


def create_admin(server: LiveServer, email: str) -> str:
    """What `passgate admin create` does; returns the enrolment link's token."""

    async def work(db: Db) -> str:
        _admin, token = await accounts.create_admin(db, audit.cli_actor(), email)
        return token

    return server.run(work)


def audit_events(server: LiveServer, **filters: Any) -> list[AuditEvent]:
    async def work(db: Db) -> list[AuditEvent]:
        return list((await audit.list_events(db, limit=200, **filters)).events)

    return server.run(work)


def alerts(response: httpx.Response) -> list[str]:
    """The refusals a page shows above its forms."""
    return [text.replace("&#39;", "'") for text in ALERT.findall(response.text)]


class Console:
    """One browser: its cookies, and the passkeys on its authenticator."""

    def __init__(self, server: LiveServer, device_path: Path, *, origin: str | None = None):
        self.server = server
        self.origin = origin or str(server.settings.public_origin)
        self.http = httpx.Client(base_url=server.url, headers={"Origin": self.origin}, timeout=10)
        self.device = SoftwareAuthenticator(device_path, origin=self.origin)
        self.csrf_token = ""
        self.email = ""  # the admin it enrolled, when it did

    def close(self) -> None:
        self.http.close()

    def enrol(self, token: str) -> httpx.Response:
        started = self.http.post("/admin/enrol/options", json={"token": token})
        if started.status_code != 200:
            return started
        return self._finish("/admin/enrol/finish", started.json(), self.device.create)

    def sign_in(self, next_page: str | None = None) -> httpx.Response:
        started = self.http.post("/admin/sign-in/options", json={})
        assert started.status_code == 200, started.text
        return self._finish("/admin/sign-in/finish", started.json(), self.device.get, next_page)

    def add_passkey(self, device: SoftwareAuthenticator) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf()}
        started = self.http.post("/admin/account/passkeys/options", json={}, headers=headers)
        assert started.status_code == 200, started.text
        body = started.json()
        credential = device.create(body["options"])
        return self.http.post(
            "/admin/account/passkeys/finish",
            json={"challengeId": body["challengeId"], "credential": credential},
            headers=headers,
        )

    def _finish(
        self, path: str, started: dict[str, Any], make: Any, next_page: str | None = None
    ) -> httpx.Response:
        credential = make(started["options"])
        body = {"challengeId": started["challengeId"], "credential": credential}
        if next_page:
            body["next"] = next_page
        return self.http.post(path, json=body)

    def get(self, path: str, **params: str) -> httpx.Response:
        response = self.http.get(path, params=params)
        found = CSRF.search(response.text)
        if found:
            self.csrf_token = found.group(1)
        return response

    def csrf(self) -> str:
        if not self.csrf_token:
            page = self.get("/admin/account")
            assert page.status_code == 200, page.text
        return self.csrf_token

    def post(self, path: str, data: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        """A form post with the session's CSRF token (unless `data` names its own)."""
        form = {"csrf_token": self.csrf(), **(data or {})}
        return self.http.post(path, data=form, **kwargs)

    def signed_in(self) -> bool:
        response = self.http.get("/admin/account")
        if response.status_code == 303:
            assert response.headers["location"].startswith("/admin/sign-in")
            return False
        assert response.status_code == 200, response.text
        return True


def enrolled_console(server: LiveServer, tmp_path: Path, email: str) -> Console:
    """A console signed in as a new admin, enrolled from their link."""
    console = Console(server, tmp_path / f"{email}.bin")
    enrolled = console.enrol(create_admin(server, email))
    assert enrolled.status_code == 200, enrolled.text
    console.email = email
    return console
