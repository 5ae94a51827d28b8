"""Origins and relying party ids: what a tenant may list, spelled as browsers spell them."""

from __future__ import annotations

from pathlib import Path

import pytest
from authsignal.client import AuthsignalClient

from passgate.authenticators import SoftwareAuthenticator
from passgate.server.services import origins
from passgate.server.services.errors import InvalidRequest
from tests.live_server import LiveServer, Tenant
from tests.passkeys.helpers import Ceremony


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("https://App.Example.com", "https://app.example.com"),
        ("https://app.example.com/", "https://app.example.com"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("https://app.example.com:8443", "https://app.example.com:8443"),
        ("http://localhost:5173", "http://localhost:5173"),
        ("http://127.0.0.1:80", "http://127.0.0.1"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("http://shop.localhost:3000", "http://shop.localhost:3000"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        (
            "android:apk-key-hash:NztP-sfNqy2_XIe4erm4qR-w4eRJ2Dl6JduFbPCYHik",
            "android:apk-key-hash:NztP-sfNqy2_XIe4erm4qR-w4eRJ2Dl6JduFbPCYHik",
        ),
    ],
)
def test_origins_are_spelled_as_browsers_spell_them(given: str, normal: str) -> None:
    assert origins.normalize_origin(given) == normal


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("app.example.com", "is not an origin"),
        ("ftp://app.example.com", "is not an origin"),
        ("https://app.example.com/login", "no path"),
        ("https://app.example.com?x=1", "no path"),
        ("https://user@app.example.com", "no path"),
        ("http://app.example.com", "uses http"),
        ("https://app_example.com", "valid host name"),
        ("https://app.example.com:99999", "is not an origin"),
        ("android:apk-key-hash:short", "not an Android origin"),
    ],
)
def test_what_is_not_an_origin_is_refused_with_the_reason(given: str, reason: str) -> None:
    with pytest.raises(InvalidRequest, match=reason):
        origins.normalize_origin(given)


@pytest.mark.parametrize(
    ("rp_id", "host", "fits"),
    [
        ("example.com", "example.com", True),
        ("example.com", "login.example.com", True),
        ("example.com", "notexample.com", False),
        ("login.example.com", "example.com", False),
        ("localhost", "localhost", True),
        ("localhost", "shop.localhost", True),
        ("github.io", "me.github.io", False),  # a public suffix: every site would share it
        ("co.uk", "shop.co.uk", False),
        ("127.0.0.1", "127.0.0.1", True),
        ("0.1", "127.0.0.1", False),
    ],
)
def test_registrable_suffix(rp_id: str, host: str, fits: bool) -> None:
    assert origins.is_registrable_suffix(rp_id, host) is fits


def test_public_suffixes_are_not_relying_parties() -> None:
    for rp_id in ("com", "github.io", "co.uk"):
        with pytest.raises(InvalidRequest, match="public suffix"):
            origins.check_rp_id(rp_id)
    assert origins.check_rp_id("Example.COM") == "example.com"
    assert origins.check_rp_id("localhost") == "localhost"


def test_a_new_rp_id_must_be_confirmed_with_the_passkeys_it_orphans(
    server: LiveServer, tenant: Tenant, authsignal: AuthsignalClient, tmp_path: Path
) -> None:
    flow = Ceremony(server.api_url, tenant.id, authsignal)
    for number in range(2):
        flow.register(SoftwareAuthenticator(tmp_path / f"{number}.bin"), f"orphan-{number}")
    flow.close()
    for confirmation in (None, 1):
        with pytest.raises(InvalidRequest, match="has 2 passkeys") as refused:
            server.update_tenant(
                tenant.id, rp_id="shop.localhost", confirm_orphaned_passkeys=confirmation
            )
        assert refused.value.error_code == "rp_id_change_unconfirmed"
    assert authsignal.get_user("orphan-0")["is_enrolled"]
    server.update_tenant(tenant.id, rp_id="shop.localhost", confirm_orphaned_passkeys=2)
