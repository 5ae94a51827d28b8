"""The hosted challenge page without a browser: what track accepts as a `redirectUrl`, which
tokens and actions get a page, what it offers, its headers; and the rules behind them
(redirect origins, accent colours, languages) as plain functions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from authsignal.client import ApiException, AuthsignalClient
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from passgate.server.pages.translations import (
    ENGLISH,
    MAGIC_LINK,
    PUSH_ENROLMENT,
    TRANSLATIONS,
    accepted_languages,
    choose_language,
    page_language,
    texts,
)
from passgate.server.services import (
    branding,
    hosted_page,
    origins,
    redirects,
    secrets_box,
    tenants,
)
from passgate.server.services.enums import ActionOutcome
from passgate.server.services.errors import InvalidRequest
from passgate.server.store.db import Db
from tests.live_server import LiveServer, Tenant

APP = "http://localhost:3000"


@pytest.fixture
def shop(server: LiveServer) -> Tenant:
    """A tenant whose web app runs on APP (rp id localhost, like Passgate's own host)."""
    return server.create_tenant(name="Web shop", rp_id="localhost", origins=[APP])


@pytest.fixture
def backend(server: LiveServer, shop: Tenant) -> Iterator[AuthsignalClient]:
    client = AuthsignalClient(api_secret_key=shop.secret_key, api_url=server.api_url, timeout=10)
    yield client
    client.session.close()


def page(server: LiveServer, token: str, **params: str) -> httpx.Response:
    return httpx.get(f"{server.public_url}/challenge", params={"token": token, **params})


# Track -----------------------------------------------------------------------------------


def test_track_refuses_a_redirect_url_off_the_tenants_origins(
    server: LiveServer, shop: Tenant, backend: AuthsignalClient
) -> None:
    for url in ("https://evil.example/back", f"{APP}.evil.example/", "/relative", "javascript:1"):
        with pytest.raises(ApiException) as refused:
            backend.track("rd-ann", "signIn", {"redirectUrl": url})
        assert (refused.value.status_code, refused.value.error_code) == (400, "invalid_request")
        assert "redirectUrl" in str(refused.value.error_description)
    raw = httpx.post(
        f"{server.api_url}/users/rd-ann/actions/signIn",
        json={"redirectUrl": "https://evil.example/"},
        auth=(shop.secret_key, ""),
    )
    assert raw.status_code == 400 and raw.headers["content-type"] == "application/json"
    assert set(raw.json()) == {"error", "errorCode", "errorDescription"}
    # Nothing was recorded for the refused calls.
    assert backend.get_user("rd-ann")["is_enrolled"] is False
    assert not httpx.get(
        f"{server.api_url}/users/rd-ann/actions", auth=(shop.secret_key, "")
    ).json()
    assert backend.track("rd-ann", "signIn", {"redirectUrl": f"{APP}/x?y=1#z"})["token"]


# Which tokens get a page ---------------------------------------------------------------


def test_forged_and_other_tenants_tokens_are_refused(
    server: LiveServer, shop: Tenant, backend: AuthsignalClient
) -> None:
    genuine = backend.track("rd-bea", "signIn")["token"]
    claims = jwt.decode(genuine, options={"verify_signature": False})
    forged = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    other = server.create_tenant(name="Other shop")

    async def signing_key(db: Db) -> tuple[str, str]:
        tenant = await tenants.get_tenant(db, other.id)
        pem = secrets_box.open_sealed(
            tenant.signing_private_key, tenant_id=tenant.id, field=secrets_box.SIGNING_KEY
        )
        return pem, tenant.signing_key_id

    # Signed with another tenant's own key, claiming to be this tenant's.
    pem, key_id = server.run(signing_key)
    other_tenants = jwt.encode(claims, pem, algorithm="ES256", headers={"kid": key_id})
    for token in (forged, other_tenants, genuine[:-4], "not-a-token", ""):
        response = page(server, token, mode="popup")
        assert response.status_code == 401, token
        assert "This link is not valid." in response.text
        # Nothing of the tenant's shows, and no tenant page may frame it.
        assert "Web shop" not in response.text
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert page(server, genuine).status_code == 200


def test_used_blocked_and_settled_actions_are_refused(
    server: LiveServer, shop: Tenant, backend: AuthsignalClient
) -> None:
    tracked = backend.track("rd-cy", "signIn")
    backend.update_action("rd-cy", "signIn", tracked["idempotency_key"], {"state": "BLOCK"})
    assert page(server, tracked["token"]).status_code == 403

    tracked = backend.track("rd-cy", "payment")
    key = tracked["idempotency_key"]
    backend.update_action("rd-cy", "payment", key, {"state": "CHALLENGE_FAILED"})
    refused = page(server, tracked["token"])
    assert refused.status_code == 410 and "This link has already been used." in refused.text

    async def allow(db: Db) -> None:
        await tenants.set_action_outcome(db, shop.id, "addPasskey", ActionOutcome.ALLOW)

    server.run(allow)
    # An allowed action still takes a passkey when the token may add one; else nothing to do.
    enrolment = backend.track("rd-cy", "addPasskey", {"scope": "add:authenticators"})
    assert page(server, enrolment["token"]).status_code == 200
    assert page(server, backend.track("rd-cy", "addPasskey")["token"]).status_code == 410

    expired = server.expired_token(shop.id, "rd-cy")
    response = page(server, expired, mode="popup")
    assert response.status_code == 401 and "This link has expired." in response.text
    # Verifiably the tenant's: its pages may frame the message and hear the error.
    assert f"frame-ancestors https://localhost {APP}" in response.headers["content-security-policy"]


# What a page offers ----------------------------------------------------------------------


def test_no_passkeys_when_the_rp_id_does_not_fit_passgates_origin(server: LiveServer) -> None:
    elsewhere = server.create_tenant(name="Far away", rp_id="example.com")
    client = AuthsignalClient(api_secret_key=elsewhere.secret_key, api_url=server.api_url)
    token = client.track("rd-dee", "signUp")["token"]
    client.session.close()
    response = page(server, token)
    host = server.public_url.removeprefix("http://")
    assert response.status_code == 200
    assert f"Passkeys for example.com cannot be used on {host}" in response.text
    assert '<section id="enrol" class="method" hidden>' in response.text
    assert "There is no way to confirm it&#39;s you on this page." in response.text


def test_security_headers_branding_and_language(
    server: LiveServer, shop: Tenant, backend: AuthsignalClient
) -> None:
    async def brand(db: Db) -> None:
        await branding.set_accent_color(db, shop.id, "#7A2E8F")

    server.run(brand)
    tracked = backend.track("rd-eve", "signIn", {"locale": "fr-CA"})
    redirect_mode = page(server, tracked["token"])
    popup_mode = page(server, tracked["token"], mode="popup")
    for response in (redirect_mode, popup_mode):
        assert response.status_code == 200
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
        assert "publickey-credentials-get=(self)" in response.headers["permissions-policy"]
        policy = response.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "unsafe-inline" not in policy
        assert "default-src 'none'" in policy and "connect-src 'self';" in policy
    assert "frame-ancestors 'none'" in redirect_mode.headers["content-security-policy"]
    assert redirect_mode.headers["x-frame-options"] == "DENY"
    assert (
        f"frame-ancestors https://localhost {APP}" in popup_mode.headers["content-security-policy"]
    )
    assert "x-frame-options" not in popup_mode.headers
    assert "--accent: #7a2e8f;" in redirect_mode.text
    assert '<html lang="fr">' in redirect_mode.text and ">Annuler</button>" in redirect_mode.text
    # Metrics name the route, never the URL with its token.
    metrics = httpx.get(f"{server.public_url}/metrics").text
    assert 'route="/challenge"' in metrics and tracked["token"] not in metrics


# The rules as functions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://app.example.com/done", True),
        ("https://APP.example.com:443/done?x=1#y", True),
        ("http://localhost:3000/back", True),
        # Loopback pages are on the user's own machine: accepted whatever the tenant lists.
        ("http://localhost:5000/back", True),
        ("http://127.0.0.1:8080/", True),
        ("http://[::1]:8080/", True),
        ("http://shop.localhost/", True),
        ("http://localhost.evil.example/", False),
        ("https://app.example.com:8443/done", False),
        ("http://app.example.com/done", False),
        ("https://evil.example/done", False),
        ("https://app.example.com@evil.example/", False),
        ("https://user@app.example.com/", False),
        ("https://app.example.com\\@evil.example/", False),
        ("https://app.example.com/ done", False),
        ("javascript:alert(1)//https://app.example.com/", False),
        ("//app.example.com/done", False),
        ("", False),
    ],
)
def test_redirect_urls_must_be_on_a_tenant_origin(url: str, allowed: bool) -> None:
    origins = ["https://app.example.com", "http://localhost:3000"]
    assert redirects.is_allowed(origins, url) is allowed


@given(st.text(max_size=300))
def test_any_redirect_url_is_judged_without_error(url: str) -> None:
    allowed = redirects.is_allowed(["https://app.example.com"], url)
    origin = redirects.redirect_origin(url)
    host = origins.host_of(origin) if origin else None
    loopback = host is not None and (
        host in ("localhost", "127.0.0.1", "::1") or host.endswith(".localhost")
    )
    assert allowed == (origin == "https://app.example.com" or loopback)


def test_accent_colours() -> None:
    assert branding.check_accent_color(" #A1B2C3 ") == "#a1b2c3"
    for bad in ("red", "#abc", "#abcdefa", "#12345g", "#123456; }", ""):
        with pytest.raises(InvalidRequest):
            branding.check_accent_color(bad)
    light = branding.Accent(color="#ffee00", text_on_color="#000000", as_text="#1b1f24")
    assert branding.accent(_tenant_with({"accentColor": "#ffee00"})) == light
    dark = branding.accent(_tenant_with({"accentColor": "#1a237e"}))
    assert dark == branding.Accent(color="#1a237e", text_on_color="#ffffff", as_text="#1a237e")
    assert branding.accent(_tenant_with({"accentColor": "#1a237e;}"})) is None
    assert branding.accent(_tenant_with({})) is None


def _tenant_with(settings: dict[str, Any]) -> Any:
    return type("TenantStub", (), {"settings": {"branding": settings}})()


def test_setting_and_clearing_the_accent_colour(server: LiveServer, shop: Tenant) -> None:
    def set_accent(color: str | None) -> str | None:
        async def work(db: Db) -> str | None:
            accent = branding.accent(await branding.set_accent_color(db, shop.id, color))
            return accent.color if accent else None

        return server.run(work)

    assert set_accent("#00AA55") == "#00aa55"
    assert set_accent(None) is None
    with pytest.raises(InvalidRequest):
        set_accent("green")


def test_languages() -> None:
    assert accepted_languages("fr-CH, fr;q=0.9, en;q=0.8") == ["fr-CH", "fr", "en"]
    assert choose_language(["de-CH"]) == "de"
    assert choose_language([None, "pt-BR", "fr_FR"]) == "fr"
    assert choose_language(["xx", ""]) == "en"
    for language, translation in TRANSLATIONS.items():
        assert set(translation) == set(ENGLISH), language
    # The other hosted pages' catalogues: the same languages, every text in each.
    for catalogue in (MAGIC_LINK, PUSH_ENROLMENT):
        assert set(catalogue) == set(TRANSLATIONS)
        for language, translation in catalogue.items():
            assert set(translation) == set(catalogue["en"]), language
    assert texts("de", MAGIC_LINK, tenant="Laden")["ready"].endswith("bei Laden anmeldet.")
    assert page_language("fr-CH, de;q=0.8", None, "de-DE") == "de"
    assert page_language("pt, fr;q=0.8") == "fr"
    german = texts("de", tenant="Laden")
    assert german["intro_sign_in"] == "Laden muss bestätigen, dass Sie es sind."
    assert texts("en")["returning"] == "Returning you to …"


def test_the_claimed_tenant_is_read_without_trusting_it() -> None:
    token = jwt.encode({"other": {"tenantId": "t-1"}}, "k" * 32, algorithm="HS256")
    assert hosted_page.claimed_tenant_id(token) == "t-1"
    for garbage in ("", "a.b.c", "not-a-token", jwt.encode({"other": "x"}, "k" * 32)):
        assert hosted_page.claimed_tenant_id(garbage) is None
