"""Email magic links (ML1-ML3) against a real server on both databases, the link delivered by
the tenant's SMTP server to a real SMTP receiver on loopback and opened as a browser would:
GET shows the page and changes nothing, its button's POST confirms, and only the token of
the action that asked finalizes it, once."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from passgate.server.services import audit, users
from passgate.server.services.delivery.config import configure_email
from passgate.server.services.pruning import GRACE, prune
from passgate.server.store.db import Db
from passgate.server.store.tables import Authenticator, MagicLink, utcnow
from tests.live_server import LiveServer, Tenant
from tests.receivers import SmtpReceiver
from tests.tenant_client import ENROL_SCOPE, TenantClient

ENROL = "/user-authenticators/email-magic-link"
CHALLENGE = "/challenge/email-magic-link"
FINALIZE = "/verify/email-magic-link/finalize"
_SECRET = re.compile(r'name="secret" value="([^"]+)"')


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture
def client(server: LiveServer, tenant: Tenant, smtp: SmtpReceiver) -> Iterator[TenantClient]:
    """The tenant's backend and app; the tenant sends email to `smtp`."""

    async def work(db: Db) -> None:
        await configure_email(
            db,
            audit.Actor(type="admin", id="test"),
            tenant.id,
            host=smtp.host,
            port=smtp.port,
            security="none",
            sender="Shop <no-reply@example.com>",
        )

    server.run(work)
    with TenantClient(server.api_url, tenant) as tenant_client:
        yield tenant_client


class Browser:
    """Whoever opens the link: any device, no cookies, no token. The link names the public
    URL (localhost); requests go to the server's loopback address."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=10, follow_redirects=False)

    def path(self, link: str) -> str:
        assert link.startswith(self.server.public_url + "/magic-link/"), link
        return link.removeprefix(self.server.public_url)

    def open(self, link: str) -> httpx.Response:
        return self.http.get(self.path(link))

    def confirm(self, link: str, secret: str | None = None) -> httpx.Response:
        """Press the page's button: POST its form, which carries the link's secret (or
        another secret)."""
        _, _, link_id, link_secret = self.path(link).split("/")
        form = {"secret": link_secret if secret is None else secret}
        return self.http.post(f"/magic-link/{link_id}", data=form)


@pytest.fixture
def browser(server: LiveServer) -> Iterator[Browser]:
    opened = Browser(server)
    yield opened
    opened.http.close()


def finalize(client: TenantClient, token: str) -> httpx.Response:
    return client.client("POST", FINALIZE, token=token, json={})


def finalized(client: TenantClient, token: str) -> dict[str, Any]:
    response = finalize(client, token)
    assert response.status_code == 200, response.text
    return dict(response.json())


def enrol(client: TenantClient, token: str, email: str) -> dict[str, Any]:
    response = client.client("POST", ENROL, token=token, json={"email": email})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_enrol_confirm_on_another_device_finalize_once(
    client: TenantClient, smtp: SmtpReceiver, browser: Browser
) -> None:
    token = client.token("ml-alice", "signUp")
    added = enrol(client, token, "Alice@Example.COM")
    assert added["userId"] == "ml-alice"
    # The address as stored and sent to: the domain lower-cased.
    message = smtp.wait(to="Alice@example.com")
    assert message.link is not None
    link = message.link
    assert link in message.html  # the HTML body carries the same link

    # Not enrolled until the link is confirmed and finalized.
    user = client.server("GET", "/users/ml-alice").json()
    assert "EMAIL_MAGIC_LINK" not in user.get("enrolledVerificationMethods", [])
    assert finalized(client, token) == {"isVerified": False}

    # Opening the link (a mail scanner, a preview) confirms nothing.
    page = browser.open(link)
    assert page.status_code == 200
    assert 'method="post"' in page.text and 'id="confirm"' in page.text
    form_secret = _SECRET.search(page.text)
    assert form_secret is not None and link.endswith("/" + form_secret.group(1))
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert finalized(client, token) == {"isVerified": False}

    # A POST without the secret (a cross-site form, say) confirms nothing either.
    wrong = browser.confirm(link, secret="A" * 43)
    assert wrong.status_code == 404
    assert finalized(client, token) == {"isVerified": False}

    confirmed = browser.confirm(link)
    assert confirmed.status_code == 200, confirmed.text
    assert "return to the device you started on" in confirmed.text

    # Another token of the same user (another action) never sees the link.
    other = client.token("ml-alice", "signIn")
    refused = finalize(client, other)
    assert refused.status_code == 404 and "accessToken" not in refused.text
    assert refused.json()["errorCode"] == "challenge_not_found"

    done = finalized(client, token)
    assert done["isVerified"] is True
    authenticator = done["userAuthenticator"]
    assert authenticator["verificationMethod"] == "EMAIL_MAGIC_LINK"
    assert authenticator["userAuthenticatorId"] == added["userAuthenticatorId"]
    assert authenticator["email"] == "Alice@example.com"
    assert authenticator["verifiedAt"]
    # Once: the next poll gets no token.
    again = finalized(client, token)
    assert again["isVerified"] is False and "accessToken" not in again

    valid = client.validate(done["accessToken"]).json()
    assert valid["isValid"] is True, valid
    assert valid["verificationMethod"] == "EMAIL_MAGIC_LINK"
    assert valid["action"] == "signUp"
    user = client.server("GET", "/users/ml-alice").json()
    assert "EMAIL_MAGIC_LINK" in user["enrolledVerificationMethods"]

    # The link works once.
    assert browser.open(link).status_code == 410
    assert "already been used" in browser.confirm(link).text
    assert browser.confirm(link).status_code == 410

    # ML2: a link to the enrolled address, for a later sign-in.
    sign_in = client.token("ml-alice", "signIn")
    started = client.client("POST", CHALLENGE, token=sign_in)  # no body, no content type
    assert started.status_code == 200, started.text
    assert started.json()["challengeId"]
    second = smtp.wait(to="Alice@example.com", count=2)
    assert second.link is not None and second.link != link
    assert finalized(client, sign_in) == {"isVerified": False}
    assert browser.confirm(second.link).status_code == 200
    signed_in = finalized(client, sign_in)
    assert signed_in["isVerified"] is True and "userAuthenticator" not in signed_in
    valid = client.validate(signed_in["accessToken"]).json()
    assert (valid["isValid"], valid["action"]) == (True, "signIn")


def test_an_expired_link_is_refused_and_pruned(
    server: LiveServer, client: TenantClient, smtp: SmtpReceiver, browser: Browser
) -> None:
    token = client.token("ml-bob", "signUp")
    enrol(client, token, "bob@example.com")
    link = smtp.wait(to="bob@example.com").link
    assert link is not None
    expired_at = utcnow() - timedelta(seconds=1)

    async def expire(db: Db) -> None:
        await db.execute(
            update(MagicLink.__table__).where(MagicLink.user_id == "ml-bob"),
            {"expires_at": expired_at},
        )

    server.run(expire)
    page = browser.open(link)
    assert page.status_code == 410 and "expired" in page.text
    assert 'method="post"' not in page.text
    assert browser.confirm(link).status_code == 410
    assert finalized(client, token) == {
        "isVerified": False,
        "failureReason": "CODE_INVALID_OR_EXPIRED",
    }

    # Pruned once its grace has passed; the link is then unknown.
    loop = server._loop
    assert loop is not None
    later = utcnow() + GRACE + timedelta(seconds=1)
    pruning = prune(server.app.state.engines, action_retention_days=0, now=later)
    counts = asyncio.run_coroutine_threadsafe(pruning, loop).result(timeout=30)
    assert counts["magicLinks"] >= 1
    assert browser.open(link).status_code == 404
    assert finalize(client, token).status_code == 404


def test_the_enrolment_rule_and_refusals(
    client: TenantClient, smtp: SmtpReceiver, browser: Browser
) -> None:
    # A user with a verified authenticator (enrolled by the backend).
    enrolled = client.server(
        "POST",
        "/users/ml-carol/authenticators",
        json={"verificationMethod": "EMAIL_MAGIC_LINK", "email": "carol@example.com"},
    )
    assert enrolled.status_code == 200, enrolled.text

    # A second address without add:authenticators: refused before anything is sent.
    plain = client.token("ml-carol", "signIn")
    refused = client.client("POST", ENROL, token=plain, json={"email": "carol2@example.com"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["errorCode"] == "forbidden"
    # With the scope it is sent.
    scoped = client.token("ml-carol", "addEmail", scope=ENROL_SCOPE)
    enrol(client, scoped, "carol2@example.com")
    assert smtp.wait(to="carol2@example.com").link

    # The address already enrolled: use the challenge instead.
    again = client.client("POST", ENROL, token=scoped, json={"email": "carol@example.com"})
    assert again.status_code == 409, again.text

    # Not an email address; no token; no verified address to send a challenge to.
    bad = client.client("POST", ENROL, token=plain, json={"email": "not an address"})
    assert bad.status_code == 400 and bad.json()["errorCode"] == "invalid_request"
    anonymous = client.client("POST", ENROL, json={"email": "x@example.com"})
    assert anonymous.status_code == 401
    nobody = client.client("POST", CHALLENGE, token=client.token("ml-nobody", "signIn"))
    assert nobody.status_code == 404
    assert nobody.json()["errorCode"] == "authenticator_not_found"
    assert browser.http.get("/magic-link/nope/nope").status_code == 404
    assert browser.http.post("/magic-link/nope", data={"secret": "x"}).status_code == 404


def test_a_tenant_that_does_not_allow_magic_links_refuses_them(
    server: LiveServer, tenant: Tenant, client: TenantClient
) -> None:
    async def work(db: Db) -> None:
        await users.set_allowed_methods(db, tenant.id, ["PASSKEY", "EMAIL_OTP"])

    server.run(work)
    token = client.token("ml-erin", "signUp")
    refused = client.client("POST", ENROL, token=token, json={"email": "erin@example.com"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["errorCode"] == "method_not_allowed"
    challenged = client.client("POST", CHALLENGE, token=token)
    assert challenged.json()["errorCode"] == "method_not_allowed"


def test_links_per_action_are_limited(client: TenantClient, smtp: SmtpReceiver) -> None:
    token = client.token("ml-dave", "signUp")
    for _ in range(5):
        enrol(client, token, "dave@example.com")
    sixth = client.client("POST", ENROL, token=token, json={"email": "dave@example.com"})
    assert sixth.status_code == 429, sixth.text
    assert sixth.json()["errorCode"] == "too_many_requests"
    assert smtp.wait(to="dave@example.com", count=5).link


def test_the_users_own_email_is_verified_by_its_link(
    client: TenantClient, smtp: SmtpReceiver, browser: Browser
) -> None:
    token = client.token("ml-fay", "signUp", email="fay@example.com")
    assert client.server("GET", "/users/ml-fay").json()["emailVerified"] is False
    enrol(client, token, "fay@example.com")
    link = smtp.wait(to="fay@example.com").link
    assert link is not None and browser.confirm(link).status_code == 200
    assert finalized(client, token)["isVerified"] is True
    assert client.server("GET", "/users/ml-fay").json()["emailVerified"] is True


def test_a_tenant_without_smtp_sends_nothing(server: LiveServer, other_tenant: Tenant) -> None:
    with TenantClient(server.api_url, other_tenant) as other:
        token = other.token("ml-gus", "signUp")
        refused = other.client("POST", ENROL, token=token, json={"email": "gus@example.com"})
        assert refused.status_code == 400, refused.text
        assert refused.json()["errorCode"] == "delivery_not_configured"
        # Nothing was kept: no authenticator (not even an unverified one), no link.
        assert finalize(other, token).status_code == 404

    async def rows(db: Db) -> int:
        query = select(func.count()).where(Authenticator.user_id == "ml-gus")
        return int(await db.scalar(query))

    assert server.run(rows) == 0


def test_the_page_speaks_the_browsers_language(
    client: TenantClient, smtp: SmtpReceiver, browser: Browser
) -> None:
    token = client.token("ml-greta", "signUp")
    enrol(client, token, "greta@example.com")
    link = smtp.wait(to="greta@example.com").link
    assert link is not None
    german = {"Accept-Language": "de-AT,de;q=0.9,en;q=0.5"}
    page = browser.http.get(browser.path(link), headers=german)
    assert page.status_code == 200
    assert '<html lang="de">' in page.text and "Ja, ich bin es" in page.text
    assert "mit greta@example.com anmeldet" in page.text
    _, _, link_id, secret = browser.path(link).split("/")
    confirmed = browser.http.post(f"/magic-link/{link_id}", data={"secret": secret}, headers=german)
    assert confirmed.status_code == 200 and "Bestätigt. Sie können diesen Tab" in confirmed.text
    used = browser.http.get(browser.path(link), headers={"Accept-Language": "fr"})
    assert used.status_code == 410 and "Lien déjà utilisé" in used.text
    # A language we lack reads English.
    unknown = browser.http.get("/magic-link/nope/nope", headers={"Accept-Language": "pt-BR"})
    assert unknown.status_code == 404 and '<html lang="en">' in unknown.text
    assert "Link not valid" in unknown.text
