"""Values we could not write back out are refused at the door with 400, on both databases
(docs/wire.md#limits-on-stored-values): poisoned `custom` JSON (lone surrogates, NaN and
infinities, 64-bit overflow, deep nesting, size), in request bodies and in tenant settings;
strings longer than their column; bodies nested deeper than the JSON parser goes; and URLs
that are not percent-encoded UTF-8."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from passgate.server import json_values
from passgate.server.services.errors import InvalidRequest
from passgate.server.services.push.settings import configure, push_settings
from passgate.server.services.tenants import get_tenant
from passgate.server.store.db import Db
from tests.live_server import LiveServer, Tenant
from tests.passkeys.helpers import basic
from tests.server.test_refusals import assert_error

JSON = {"Content-Type": "application/json"}


def nested(depth: int) -> dict[str, Any]:
    """An object `depth` levels deep: {"a": {"a": ... {} }}."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def refused(response: httpx.Response, field: str) -> str:
    description = assert_error(response, 400, "invalid_request")["errorDescription"]
    assert field in description, description
    return description


def track(http: httpx.Client, user_id: str, body: bytes) -> httpx.Response:
    return http.post(f"/users/{user_id}/actions/signIn", content=body, headers=JSON)


def patch_user(http: httpx.Client, user_id: str, body: bytes) -> httpx.Response:
    return http.patch(f"/users/{user_id}", content=body, headers=JSON)


class TestUnicode:
    @pytest.mark.parametrize(
        "body",
        [
            rb'{"custom": {"note": "\ud800"}}',
            rb'{"custom": {"\udfff": 1}}',
            rb'{"custom": {"deep": [{"x": "ok \udbff"}]}}',
        ],
    )
    def test_lone_surrogates_in_custom_are_refused_and_reads_stay_fine(
        self, http: httpx.Client, body: bytes
    ) -> None:
        user = f"surrogate-{secrets.token_hex(4)}"
        assert "surrogate" in refused(track(http, user, body), "custom")
        assert "surrogate" in refused(patch_user(http, user, body), "custom")
        tracked = http.post(f"/users/{user}/actions/signIn", json={"custom": {"ok": "é"}})
        assert tracked.status_code == 200, tracked.text
        key = tracked.json()["idempotencyKey"]
        listed = http.get(f"/users/{user}/actions")
        assert listed.status_code == 200, listed.text
        assert [action["custom"] for action in listed.json()] == [{"ok": "é"}]
        one = http.get(f"/users/{user}/actions/signIn/{key}")
        assert one.status_code == 200, one.text
        assert http.get(f"/users/{user}").json().get("custom") is None

    def test_lone_surrogates_in_any_field_are_refused(self, http: httpx.Client) -> None:
        refused(patch_user(http, "surrogate-name", rb'{"displayName": "a\ud800"}'), "")
        refused(track(http, "surrogate-name", rb'{"username": "\udc00"}'), "")
        assert http.get("/users/surrogate-name").json().get("displayName") is None

    def test_valid_astral_characters_are_kept(self, http: httpx.Client) -> None:
        # A surrogate *pair* in JSON is one valid character.
        response = patch_user(http, "astral", rb'{"custom": {"emoji": "\ud83d\ude00"}}')
        assert response.status_code == 200, response.text
        assert http.get("/users/astral").json()["custom"] == {"emoji": "\U0001f600"}


class TestNumbers:
    @pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999"])
    def test_non_finite_numbers_are_refused(self, http: httpx.Client, literal: bytes) -> None:
        body = b'{"custom": {"amount": ' + literal + b"}}"
        assert "finite" in refused(track(http, "numbers", body), "custom")
        assert "finite" in refused(patch_user(http, "numbers", body), "custom")
        # Nothing half-written: no action, and the user's custom data was not nulled.
        assert http.get("/users/numbers/actions").json() == []
        assert http.get("/users/numbers").json().get("custom") is None

    @pytest.mark.parametrize("number", [2**63, -(2**63) - 1, 10**30])
    def test_integers_beyond_64_bits_are_refused(self, http: httpx.Client, number: int) -> None:
        body = json.dumps({"custom": {"n": number}}).encode()
        assert "64 bits" in refused(track(http, "integers", body), "custom")
        assert "64 bits" in refused(patch_user(http, "integers", body), "custom")

    def test_numbers_at_the_limits_are_kept(self, http: httpx.Client) -> None:
        custom = {"max": 2**63 - 1, "min": -(2**63), "real": 1.5e308, "tiny": 5e-324}
        tracked = http.post("/users/limits/actions/signIn", json={"custom": custom})
        assert tracked.status_code == 200, tracked.text
        key = tracked.json()["idempotencyKey"]
        assert http.get(f"/users/limits/actions/signIn/{key}").json()["custom"] == custom
        assert http.patch("/users/limits", json={"custom": custom}).status_code == 200
        assert http.get("/users/limits").json()["custom"] == custom


class TestShape:
    def test_depth_16_is_kept_and_17_refused(self, http: httpx.Client) -> None:
        deepest = nested(json_values.MAX_DEPTH)
        tracked = http.post("/users/depth/actions/signIn", json={"custom": deepest})
        assert tracked.status_code == 200, tracked.text
        key = tracked.json()["idempotencyKey"]
        assert http.get(f"/users/depth/actions/signIn/{key}").json()["custom"] == deepest
        assert http.patch("/users/depth", json={"custom": deepest}).status_code == 200
        assert http.get("/users/depth").json()["custom"] == deepest

        too_deep = nested(json_values.MAX_DEPTH + 1)
        assert "16 levels" in refused(
            http.post("/users/depth/actions/signIn", json={"custom": too_deep}), "custom"
        )
        assert "16 levels" in refused(http.patch("/users/depth", json={"custom": too_deep}), "")
        lists: Any = [[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]
        refused(http.post("/users/depth/actions/signIn", json={"custom": {"l": lists}}), "custom")

    @pytest.mark.parametrize("depth", [300, 500, 900, 990])
    def test_deep_custom_is_400_never_500(self, http: httpx.Client, depth: int) -> None:
        body = b'{"custom": ' + b'{"a": ' * depth + b"{}" + b"}" * depth + b"}"
        assert_error(track(http, "very-deep", body), 400, "invalid_request")
        assert_error(patch_user(http, "very-deep", body), 400, "invalid_request")
        assert http.get("/users/very-deep/actions").json() == []

    def test_16_kb_is_kept_and_more_refused(self, http: httpx.Client) -> None:
        # {"k":"xx..."} is 8 bytes of JSON around the text.
        fits = {"k": "x" * (json_values.MAX_BYTES - 8)}
        assert len(json.dumps(fits, separators=(",", ":"))) == json_values.MAX_BYTES
        tracked = http.post("/users/size/actions/signIn", json={"custom": fits})
        assert tracked.status_code == 200, tracked.text
        assert http.patch("/users/size", json={"custom": fits}).status_code == 200
        over = {"k": "x" * (json_values.MAX_BYTES - 7)}
        assert "bytes" in refused(
            http.post("/users/size/actions/signIn", json={"custom": over}), "custom"
        )
        assert "bytes" in refused(http.patch("/users/size", json={"custom": over}), "custom")
        # Multi-byte characters count as their UTF-8 bytes.
        wide = {"k": "é" * (json_values.MAX_BYTES // 2)}
        refused(http.patch("/users/size", json={"custom": wide}), "custom")


@pytest.fixture(scope="module")
def roomy_server(database_url: str) -> Iterator[LiveServer]:
    """A server that takes 1 MB bodies, so that a body 100,000 levels deep reaches the parser."""
    live = LiveServer(database_url, max_body_bytes=1_000_000).start()
    yield live
    live.stop()


class TestDeepBodies:
    """Python's JSON parser gives up with RecursionError about 1,000 levels deep: any route
    answers that with 400, never 500."""

    @pytest.mark.parametrize("depth", [990, 5_000, 100_000])
    def test_every_kind_of_route(self, roomy_server: LiveServer, depth: int) -> None:
        tenant = roomy_server.create_tenant()
        array = b"[" * depth + b"]" * depth
        obj = b'{"a":' * depth + b"1" + b"}" * depth
        api, secret = roomy_server.api_url, (tenant.secret_key, "")
        for body in (array, obj):
            requests = [
                httpx.post(
                    f"{api}/users/deep/actions/signIn", content=body, headers=JSON, auth=secret
                ),
                httpx.patch(f"{api}/users/deep", content=body, headers=JSON, auth=secret),
                httpx.post(f"{api}/validate", content=body, headers=JSON, auth=secret),
                httpx.post(
                    f"{api}/client/challenge", content=body, headers={**JSON, **basic(tenant.id)}
                ),
                httpx.post(f"{api}/client/user-authenticators/push", content=body, headers=JSON),
                httpx.post(f"{roomy_server.url}/admin/sign-in/finish", content=body, headers=JSON),
            ]
            for response in requests:
                assert response.status_code == 400, (response.request.url, response.text)
                assert response.json()["error"] == "invalid_request"
        listed = httpx.get(f"{api}/users/deep/actions", auth=secret)
        assert listed.status_code == 200, listed.text
        assert listed.json() == []


class TestColumnLengths:
    @pytest.mark.parametrize("length", [101, 180, 255])
    def test_a_client_made_action_code_longer_than_its_column(
        self, server: LiveServer, tenant: Tenant, length: int
    ) -> None:
        response = httpx.post(
            f"{server.api_url}/client/challenge",
            json={"action": "a" * length},
            headers=basic(tenant.id),
        )
        assert "action" in refused(response, "action")
        fits = httpx.post(
            f"{server.api_url}/client/challenge",
            json={"action": "a" * 100},
            headers=basic(tenant.id),
        )
        assert fits.status_code == 200, fits.text

    @pytest.mark.parametrize("action", ["pay/all", "sign in", "ação", "x?y"])
    def test_a_client_made_action_code_follows_tracks_rule(
        self, server: LiveServer, tenant: Tenant, action: str
    ) -> None:
        """C1 names an action a backend reads back by path: the characters track allows."""
        response = httpx.post(
            f"{server.api_url}/client/challenge", json={"action": action}, headers=basic(tenant.id)
        )
        assert "action" in refused(response, "action")


class TestUrls:
    @pytest.mark.parametrize("user_id", ["a%FFb", "a%FEb", "a%C3", "a%ED%A0%80b", "a%C0%AFb"])
    def test_invalid_percent_encoded_utf8_in_a_path_is_400(
        self, http: httpx.Client, user_id: str
    ) -> None:
        # httpx sends a valid percent escape as it is, so the server sees these bytes.
        for method, path in [
            ("GET", f"/users/{user_id}"),
            ("PATCH", f"/users/{user_id}"),
            ("POST", f"/users/{user_id}/actions/signIn"),
            ("GET", f"/users/alice/actions/signIn/{user_id}"),
        ]:
            response = http.request(method, path, json={})
            assert response.request.url.raw_path.endswith(path.encode())
            description = assert_error(response, 400, "invalid_request")["errorDescription"]
            assert "UTF-8" in description
        # None of them became the user `a\ufffdb`.
        assert http.get("/users/a\ufffdb").json()["isEnrolled"] is False
        assert http.get("/users", params={"username": "a\ufffdb"}).json()["users"] == []

    def test_invalid_utf8_in_a_query_is_400(self, http: httpx.Client) -> None:
        response = http.get("/users?email=a%FFb")
        assert response.request.url.raw_path.endswith(b"email=a%FFb")
        assert_error(response, 400, "invalid_request")

    def test_valid_utf8_is_one_user(self, http: httpx.Client) -> None:
        assert http.patch("/users/caf%C3%A9", json={"username": "cafe"}).status_code == 200
        assert http.get("/users/café").json()["username"] == "cafe"


class TestTenantSettings:
    """JSON an operator sets (an FCM service account, APNs fields) passes the same checks."""

    @pytest.mark.parametrize(
        "poison",
        [float("nan"), float("inf"), 2**64, "\ud800", nested(json_values.MAX_DEPTH + 1)],
        ids=["nan", "infinity", "big-int", "surrogate", "deep"],
    )
    def test_unstorable_push_settings_are_refused(
        self, server: LiveServer, tenant: Tenant, http: httpx.Client, poison: object
    ) -> None:
        account = {"project_id": "demo", "private_key": "x", "client_email": "e", "x": poison}

        async def configure_fcm(db: Db) -> None:
            await configure(db, tenant.id, fcm=account)

        with pytest.raises(InvalidRequest, match="push settings"):
            server.run(configure_fcm)
        # The tenant still works, and has no FCM settings.
        assert http.post("/users/settings/actions/signIn", json={}).status_code == 200

        async def fcm(db: Db) -> object:
            return push_settings(await get_tenant(db, tenant.id)).fcm

        assert server.run(fcm) is None


@pytest.mark.parametrize("field", ["name", "rp_name"])
def test_tenant_names_must_fit_their_column(server: LiveServer, field: str) -> None:
    """The console and the CLI create tenants too: a name longer than its column is a clear
    refusal, not a database error from PostgreSQL."""
    names = {"name": "fits", field: "n" * 201}
    with pytest.raises(InvalidRequest, match="at most 200 characters"):
        server.create_tenant(**names)
    made = server.create_tenant(**{**names, field: " " + "n" * 200 + " "})
    assert made.id
