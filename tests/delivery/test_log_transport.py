"""The development-only log transport: `passgate serve --dev` gives its dev tenant one for the
email and SMS it has no sender for, a tenant set to it has its codes written to the server's
log (and sent nowhere else) through the outbox as usual, the codes read from that log verify,
and the commands, the start-up and the console warn about it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from passgate.cli._dev import ensure_dev_tenant
from passgate.server.services import audit
from passgate.server.services.delivery import config
from passgate.server.store.db import Db
from tests.cli.serve_process import ServeProcess
from tests.console.helpers import Console, enrolled_console
from tests.delivery.conftest import audit_events
from tests.fresh_postgres import fresh_postgres_database
from tests.live_server import LiveServer, Tenant
from tests.receivers import SmtpReceiver
from tests.tenant_client import TenantClient

WARNING = "written to the server's log, codes and links included, not sent"


def passgate(
    workdir: Path, database_url: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """A command as the developer runs it beside `passgate serve --dev` (the same directory,
    so the same master key)."""
    return subprocess.run(
        [sys.executable, "-m", "passgate.cli", *args, "--database-url", database_url],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, done.stderr
    return done


def logged_message(server: ServeProcess, head: str, timeout: float = 20) -> str:
    """The rest of the server's `dev delivery: <head>` log line, waiting for it."""
    pattern = re.compile(rf"dev delivery: {re.escape(head)}(.*)")
    deadline = time.monotonic() + timeout
    while not (found := pattern.search(server.output())):
        assert time.monotonic() < deadline, f"no dev delivery to {head}:\n{server.output()}"
        time.sleep(0.1)
    return found[1]


def code_in(text: str) -> str:
    found = re.search(r"\b(\d{6}) is your Dev verification code", text)
    assert found, text
    return found[1]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def dev_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / '.passgate' / 'passgate.db'}"
        return
    with fresh_postgres_database("passgate_devlog") as url:
        yield url


def test_the_dev_server_writes_codes_to_its_log_and_they_verify(
    tmp_path: Path, dev_database_url: str
) -> None:
    server = ServeProcess(tmp_path, "--dev", "--database-url", dev_database_url).wait_ready()
    try:
        tenant = Tenant(server.printed("Dev tenant"), server.printed("Secret key"), "localhost")
        startup = server.output()
        assert f"tenant {tenant.id} (Dev) writes its email and sms messages to this log" in startup

        def command(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
            return passgate(tmp_path, dev_database_url, "tenant", *args, tenant.id, **env)

        shown = ok(command("email", "--json"))
        assert json.loads(shown.stdout) == {"transport": "log", "templates": "built-in"}
        assert WARNING in shown.stderr
        shown = ok(command("sms"))
        assert re.search(r"^transport\s+log \(development only\)$", shown.stdout, re.MULTILINE)
        assert WARNING in shown.stderr

        with SmtpReceiver() as smtp:
            # A real SMTP server first, then --log again: the log replaces it.
            smtp_options = ["--smtp-host", smtp.host, "--smtp-port", str(smtp.port)]
            smtp_options += ["--smtp-security", "none", "--smtp-from", "dev@example.com"]
            ok(command("email", *smtp_options))
            refused = command("email", "--log", "--smtp-host", smtp.host)
            assert refused.returncode != 0 and "--log replaces the SMTP settings" in refused.stderr
            switched = ok(command("email", "--log"))
            assert WARNING in switched.stderr
            assert "log (development only)" in switched.stdout
            assert "smtpHost" not in switched.stdout

            # An email enrolment (Client API): the code is in the log, and verifies.
            with TenantClient(f"{server.url}/v1", tenant) as apps:
                token = apps.token("ana", "signUp")
                enrolled = apps.client(
                    "POST",
                    "/user-authenticators/email-otp",
                    token=token,
                    json={"email": "Ana@Example.com"},
                )
                assert enrolled.status_code == 200, enrolled.text
                line = logged_message(server, "email to Ana@example.com: ")
                code = code_in(line)
                assert line.startswith(f"{code} is your Dev verification code | ")
                verified = apps.client(
                    "POST", "/verify/email-otp", token=token, json={"verificationCode": code}
                )
                assert verified.status_code == 200, verified.text
                assert verified.json()["isVerified"] is True

                # An SMS code for a backend (Server API): logged, and verifies.
                started = apps.server(
                    "POST",
                    "/challenge",
                    json={"verificationMethod": "SMS", "phoneNumber": "+64 21 765 4321"},
                )
                assert started.status_code == 200, started.text
                sms_code = code_in(logged_message(server, "sms to +64217654321: "))
                checked = apps.server(
                    "POST",
                    "/verify",
                    json={
                        "challengeId": started.json()["challengeId"],
                        "verificationCode": sms_code,
                    },
                )
                assert checked.json()["isVerified"] is True
            # Logged in place of sending: the SMTP server saw nothing.
            assert smtp.messages == []
    finally:
        server.kill()


def test_the_dev_tenant_gets_the_log_only_where_it_has_no_sender(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dev' / 'passgate.db'}"
    tenant_id = ensure_dev_tenant(url, 8000)["tenantId"]

    def shown(kind: str) -> dict[str, Any]:
        done = ok(passgate(tmp_path, url, "tenant", kind, tenant_id, "--json"))
        return dict(json.loads(done.stdout))

    assert shown("email") == {"transport": "log", "templates": "built-in"}
    assert shown("sms") == {"transport": "log", "allowedCountryCodes": []}

    # The developer sets an SMTP server and clears SMS: the next start keeps the SMTP server
    # and gives SMS the log again (its allowed countries kept).
    smtp = ["--smtp-host", "mail.example.com", "--smtp-from", "dev@example.com"]
    ok(passgate(tmp_path, url, "tenant", "email", tenant_id, *smtp))
    ok(passgate(tmp_path, url, "tenant", "sms", tenant_id, "--clear"))
    ok(passgate(tmp_path, url, "tenant", "sms", tenant_id, "--allowed-country-codes", "+64"))
    assert shown("sms") == {"allowedCountryCodes": ["+64"]}
    ensure_dev_tenant(url, 8000)
    assert shown("email")["smtpHost"] == "mail.example.com"
    assert shown("sms") == {"transport": "log", "allowedCountryCodes": ["+64"]}

    # A webhook replaces the log, and stays through the next start.
    hook = "https://sms.example.com/passgate"
    ok(passgate(tmp_path, url, "tenant", "sms", tenant_id, "--webhook-url", hook))
    ensure_dev_tenant(url, 8000)
    assert shown("email")["smtpHost"] == "mail.example.com"
    assert shown("sms")["webhookUrl"] == hook and "transport" not in shown("sms")


@pytest.fixture
def console(live: LiveServer, tmp_path: Path) -> Iterator[Console]:
    made = enrolled_console(live, tmp_path, f"devlog-{tmp_path.name}@example.com")
    yield made
    made.close()


def test_the_console_shows_the_log_and_stops_it(
    live: LiveServer, shop: Tenant, console: Console
) -> None:
    async def use_log(db: Db) -> None:
        for kind in (config.EMAIL, config.SMS):
            await config.use_log(db, audit.cli_actor(), shop.id, kind)

    live.run(use_log)
    [changed] = audit_events(live, shop.id, "tenant.email.changed")
    assert changed["transport"] == {"from": None, "to": "log"}
    page = console.get(f"/admin/tenants/{shop.id}/delivery")
    assert page.status_code == 200
    assert 'id="email-log"><strong>Transport: log (development only).' in page.text
    assert 'id="sms-log"><strong>Transport: log (development only).' in page.text
    assert page.text.count("Transport: log (development only).") == 2

    stopped = console.post(
        f"/admin/tenants/{shop.id}/delivery/sms",
        {"allowed_country_codes": "+64", "sms_log_stop": "on"},
    )
    assert stopped.status_code == 303, stopped.text
    removed = console.post(f"/admin/tenants/{shop.id}/delivery/email", {"email_remove": "on"})
    assert removed.status_code == 303, removed.text
    page = console.get(f"/admin/tenants/{shop.id}/delivery")
    assert "log (development only)" not in page.text and "Not configured" in page.text
