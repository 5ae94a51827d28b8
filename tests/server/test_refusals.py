"""Bad keys, other tenants' data, forged and expired tokens, malformed input: every refusal is
a 4xx in Authsignal's error shape, never a 500, and changes nothing."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest
from authsignal.client import ApiException, AuthsignalClient
from cryptography.hazmat.primitives.asymmetric import ec

from tests.live_server import LiveServer, Tenant


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == body["errorCode"] == code
    assert body["errorDescription"]
    return body


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def resign(token: str, change: dict[str, object]) -> str:
    """The token with its claims changed and its signature left as it was."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims.update(change)
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


@pytest.fixture
def succeeded_token(authsignal: AuthsignalClient) -> str:
    tracked = authsignal.track("mallory-target", "signIn")
    authsignal.update_action(
        "mallory-target", "signIn", tracked["idempotency_key"], {"state": "CHALLENGE_SUCCEEDED"}
    )
    return str(tracked["token"])


class TestSecretKey:
    @pytest.mark.parametrize(
        "authorization",
        [
            None,
            "Bearer pg_sk_x",
            "Basic !!!notbase64",
            "Basic " + base64.b64encode(b"pg_sk_wrong:").decode(),
            "Basic " + base64.b64encode(b":").decode(),
            "Basic " + base64.b64encode(b"\xff\xfe").decode(),
        ],
    )
    def test_missing_or_wrong_key_is_401(
        self, server: LiveServer, authorization: str | None
    ) -> None:
        headers = {"Authorization": authorization} if authorization else {}
        response = httpx.get(f"{server.api_url}/users/alice", headers=headers)
        body = assert_error(response, 401, "unauthorized")
        assert "API key" in body["errorDescription"]

    def test_every_server_route_needs_the_key(self, server: LiveServer) -> None:
        for method, path in [
            ("POST", "/users/a/actions/signIn"),
            ("GET", "/users/a/actions/signIn/k"),
            ("PATCH", "/users/a/actions/signIn/k"),
            ("GET", "/users/a/actions"),
            ("POST", "/validate"),
            ("GET", "/users/a"),
            ("PATCH", "/users/a"),
            ("DELETE", "/users/a"),
            ("GET", "/users"),
            ("GET", "/users/a/authenticators"),
            ("POST", "/users/a/authenticators"),
            ("DELETE", "/users/a/authenticators/x"),
        ]:
            response = httpx.request(method, f"{server.api_url}{path}", json={})
            assert_error(response, 401, "unauthorized")


class TestTenantIsolation:
    def test_another_tenants_key_never_reads_this_tenants_data(
        self, server: LiveServer, authsignal: AuthsignalClient, other_tenant: Tenant
    ) -> None:
        authsignal.update_user("shared-id", {"email": "mine@example.com"})
        authsignal.enroll_verified_authenticator(
            "shared-id", {"verificationMethod": "EMAIL_OTP", "email": "mine@example.com"}
        )
        tracked = authsignal.track("shared-id", "signIn")
        authenticator = authsignal.get_authenticators("shared-id")[0]

        other = AuthsignalClient(other_tenant.secret_key, server.api_url)
        seen = other.get_user("shared-id")
        assert seen["is_enrolled"] is False and "email" not in seen
        assert other.get_authenticators("shared-id") == []
        with pytest.raises(ApiException) as no_action:
            other.get_action("shared-id", "signIn", tracked["idempotency_key"])
        assert no_action.value.status_code == 404
        with pytest.raises(ApiException):
            other.update_action(
                "shared-id", "signIn", tracked["idempotency_key"], {"state": "ALLOW"}
            )
        with pytest.raises(ApiException) as no_delete:
            other.delete_authenticator("shared-id", authenticator["user_authenticator_id"])
        assert no_delete.value.status_code == 404
        with httpx.Client(base_url=server.api_url, auth=(other_tenant.secret_key, "")) as http:
            assert http.get("/users").json()["users"] == []
            assert http.get("/users/shared-id/actions").json() == []
        other.delete_user("shared-id")

        # Nothing the other tenant did touched this tenant's data.
        assert authsignal.get_user("shared-id")["email"] == "mine@example.com"
        assert len(authsignal.get_authenticators("shared-id")) == 1
        assert authsignal.get_action("shared-id", "signIn", tracked["idempotency_key"])[
            "state"
        ] == ("CHALLENGE_REQUIRED")

    def test_another_tenants_token_does_not_validate(
        self, server: LiveServer, succeeded_token: str, other_tenant: Tenant
    ) -> None:
        other = httpx.Client(base_url=server.api_url, auth=(other_tenant.secret_key, ""))
        assert_error(other.post("/validate", json={"token": succeeded_token}), 400, "invalid_token")


class TestTokens:
    def test_changed_claims_are_refused(self, http: httpx.Client, succeeded_token: str) -> None:
        for change in (
            {"sub": "someone-else"},
            {"exp": int(time.time()) + 10**6},
            {"other": {"userId": "x", "tenantId": "y", "actionCode": "signIn"}},
        ):
            forged = resign(succeeded_token, change)
            assert_error(http.post("/validate", json={"token": forged}), 400, "invalid_token")
        # The genuine token still works after all the forgeries: they changed nothing.
        assert http.post("/validate", json={"token": succeeded_token}).json()["isValid"] is True

    def test_alg_none_is_refused(self, http: httpx.Client, succeeded_token: str) -> None:
        _, payload, _ = succeeded_token.split(".")
        header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        for token in (f"{header}.{payload}.", f"{header}.{payload}"):
            assert_error(http.post("/validate", json={"token": token}), 400, "invalid_token")

    def test_hs256_with_the_public_key_or_secret_is_refused(
        self, http: httpx.Client, tenant: Tenant, succeeded_token: str
    ) -> None:
        claims = jwt.decode(succeeded_token, options={"verify_signature": False})
        forged = jwt.encode(claims, tenant.secret_key, algorithm="HS256")
        assert_error(http.post("/validate", json={"token": forged}), 400, "invalid_token")

    def test_a_token_signed_by_another_key_is_refused(
        self, http: httpx.Client, succeeded_token: str
    ) -> None:
        claims = jwt.decode(succeeded_token, options={"verify_signature": False})
        header = jwt.get_unverified_header(succeeded_token)
        attacker_key = ec.generate_private_key(ec.SECP256R1())
        forged = jwt.encode(claims, attacker_key, algorithm="ES256", headers={"kid": header["kid"]})
        assert_error(http.post("/validate", json={"token": forged}), 400, "invalid_token")

    def test_an_expired_token_is_refused(
        self, server: LiveServer, tenant: Tenant, http: httpx.Client
    ) -> None:
        from passgate.server.services import tenants, tokens

        tracked = http.post("/users/olivia/actions/signIn", json={}).json()
        http.patch(
            f"/users/olivia/actions/signIn/{tracked['idempotencyKey']}",
            json={"state": "CHALLENGE_SUCCEEDED"},
        )

        async def issue_old(session):  # type: ignore[no-untyped-def]
            row = await tenants.get_tenant(session, tenant.id)
            return tokens.issue_token(
                row,
                user_id="olivia",
                action_code="signIn",
                idempotency_key=tracked["idempotencyKey"],
                now=int(time.time()) - 3600,
            )

        expired = server.run(issue_old)
        assert_error(http.post("/validate", json={"token": expired}), 400, "expired_token")
        assert http.post("/validate", json={"token": tracked["token"]}).json()["isValid"] is True

    @pytest.mark.parametrize("token", ["", "abc", "a.b.c", "x" * 9000])
    def test_garbage_tokens(self, http: httpx.Client, token: str) -> None:
        response = http.post("/validate", json={"token": token})
        assert response.status_code == 400
        assert response.json()["errorCode"] in ("invalid_token", "invalid_request")

    def test_jwks_verifies_issued_tokens(
        self, server: LiveServer, tenant: Tenant, http: httpx.Client
    ) -> None:
        token = http.post("/users/pat/actions/signIn", json={}).json()["token"]
        keys = httpx.get(f"{server.api_url}/client/public/{tenant.id}/.well-known/jwks").json()
        jwk = keys["keys"][0]
        assert jwk["kid"] == jwt.get_unverified_header(token)["kid"]
        public_key = jwt.algorithms.ECAlgorithm.from_jwk(jwk)
        claims = jwt.decode(token, public_key, algorithms=["ES256"], audience=tenant.id)
        assert claims["sub"] == "pat"
        assert claims["other"]["actionCode"] == "signIn"
        assert claims["other"]["tenantId"] == claims["other"]["publishableKey"] == tenant.id
        assert claims["exp"] - claims["iat"] == 600
        assert_error(
            httpx.get(f"{server.api_url}/client/public/unknown/.well-known/jwks"), 404, "not_found"
        )


class TestMalformedInput:
    def test_bad_json(self, http: httpx.Client) -> None:
        response = http.post(
            "/users/a/actions/signIn",
            content=b'{"ipAddress": ',
            headers={"Content-Type": "application/json"},
        )
        body = assert_error(response, 400, "invalid_request")
        assert "JSON" in body["errorDescription"]

    @pytest.mark.parametrize(
        ("path", "body"),
        [
            ("/users/a/actions/signIn", {"ipAddress": 12}),
            ("/users/a/actions/signIn", {"custom": "not-an-object"}),
            ("/users/a/actions/signIn", {"idempotencyKey": ""}),
            ("/users/a/actions/signIn", ["a", "list"]),
            ("/validate", {}),
            ("/validate", {"token": ["x"]}),
            ("/users/a/authenticators", {"verificationMethod": "CARRIER_PIGEON"}),
        ],
    )
    def test_wrong_types(self, http: httpx.Client, path: str, body: object) -> None:
        assert_error(http.post(path, json=body), 400, "invalid_request")

    def test_wrong_types_on_patch(self, http: httpx.Client) -> None:
        key = http.post("/users/a/actions/signIn", json={}).json()["idempotencyKey"]
        assert_error(
            http.patch(f"/users/a/actions/signIn/{key}", json={"state": "DONE"}),
            400,
            "invalid_request",
        )
        assert_error(
            http.patch("/users/a", json={"emailVerified": "maybe"}), 400, "invalid_request"
        )
        assert_error(http.get("/users/a/actions", params={"limit": 0}), 400, "invalid_request")
        assert_error(
            http.get("/users/a/actions", params={"fromDate": "2024-01-01T00:00:00"}),
            400,
            "invalid_request",
        )

    def test_null_verified_flags_mean_not_verified(self, http: httpx.Client) -> None:
        response = http.patch(
            "/users/nulls",
            json={"email": "n@example.com", "emailVerified": None, "phoneNumberVerified": None},
        )
        assert response.status_code == 200, response.text
        assert response.json()["emailVerified"] is False
        assert http.get("/users/nulls").json()["phoneNumberVerified"] is False

    def test_bad_action_code_and_long_user_id(self, http: httpx.Client) -> None:
        assert_error(http.post("/users/a/actions/sign%20in", json={}), 400, "invalid_request")
        assert_error(
            http.post(f"/users/{'u' * 256}/actions/signIn", json={}), 400, "invalid_request"
        )

    def test_oversized_bodies(self, server: LiveServer, http: httpx.Client) -> None:
        huge = {"custom": {"blob": "x" * 200_000}}
        assert_error(http.post("/users/big/actions/signIn", json=huge), 413, "payload_too_large")

        def chunks():  # type: ignore[no-untyped-def]
            yield b'{"custom": {"blob": "'
            for _ in range(30):
                yield b"x" * 10_000
            yield b'"}}'

        streamed = http.post(
            "/users/big/actions/signIn",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert_error(streamed, 413, "payload_too_large")
        # Nothing was half-written: the user was never created.
        assert http.get("/users/big").json()["isEnrolled"] is False
        assert http.get("/users", params={"username": "big"}).json()["users"] == []
        assert http.get("/users/big/actions").json() == []

    def test_nul_characters_are_refused(self, http: httpx.Client) -> None:
        assert_error(
            http.patch("/users/nul", json={"displayName": "a\x00b"}), 400, "invalid_request"
        )
        assert_error(
            http.post("/users/nul/actions/signIn", json={"custom": {"k\x00": "v"}}),
            400,
            "invalid_request",
        )
        assert_error(http.get("/users/a%00b"), 400, "invalid_request")
        assert_error(http.get("/users", params={"email": "a\x00b"}), 400, "invalid_request")

    def test_unknown_paths_and_methods(self, http: httpx.Client) -> None:
        assert_error(http.get("/nowhere"), 404, "not_found")
        assert_error(http.put("/validate", json={}), 405, "method_not_allowed")

    def test_success_content_type_is_exactly_application_json(self, http: httpx.Client) -> None:
        for response in (
            http.post("/users/ct/actions/signIn", json={}),
            http.get("/users/ct"),
            http.get("/users/ct/authenticators"),
            http.delete("/users/ct"),
        ):
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/json"
