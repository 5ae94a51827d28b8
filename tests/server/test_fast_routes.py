"""Track and validate answered by server/fast_routes.py give what the FastAPI routes give.

Two servers on one database: the usual one (fast routes in front) and one whose fast routes
are taken out, so FastAPI answers everything. The same requests, well formed and not, go to
both; status codes, headers that matter and bodies must agree (apart from what differs by
nature: a new token, the page URL holding it, a new idempotency key)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from passgate.server.fast_routes import FastRoute
from tests.conftest import PATIENT_DATABASE
from tests.live_server import LiveServer, Tenant

# Differ between any two tracks by nature.
UNIQUE = {"token", "url", "idempotencyKey"}


@pytest.fixture(scope="module")
def fastapi_only(server: LiveServer) -> Iterator[LiveServer]:
    live = LiveServer(server.database_url, **PATIENT_DATABASE)
    routes = live.app.router.routes
    routes[:] = [route for route in routes if not isinstance(route, FastRoute)]
    live.start()
    yield live
    live.stop()


def _answers(
    servers: tuple[LiveServer, LiveServer], method: str, path: str, **request: Any
) -> list[tuple[int, str, Any]]:
    found = []
    for live in servers:
        with httpx.Client(base_url=live.api_url, timeout=10) as client:
            response = client.request(method, path, **request)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        found.append((response.status_code, response.headers.get("content-type", ""), body))
    return found


def _same(answers: list[tuple[int, str, Any]]) -> tuple[int, Any]:
    (status, content_type, body), (other_status, other_type, other_body) = answers
    assert (status, content_type) == (other_status, other_type), answers
    if isinstance(body, dict) and status == 200:
        assert set(body) == set(other_body), answers
        body = {key: value for key, value in body.items() if key not in UNIQUE}
        other_body = {key: value for key, value in other_body.items() if key not in UNIQUE}
    assert body == other_body, answers
    return status, body


def test_fast_routes_are_matched_first(server: LiveServer) -> None:
    paths = [
        (type(route).__name__, getattr(route, "path", None)) for route in server.app.router.routes
    ]
    fast = [index for index, (kind, _path) in enumerate(paths) if kind == "FastRoute"]
    assert [paths[index][1] for index in fast] == [
        "/v1/users/{userId}/actions/{action}",
        "/v1/validate",
    ]
    first_router = next(index for index, (kind, _) in enumerate(paths) if "Router" in kind)
    assert max(fast) < first_router


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ({"redirectUrl": "http://localhost:3000/done", "custom": {"a": [1, 2.5, None]}}, None),
        ({}, None),
        (None, None),  # no body at all
        ({"scope": "read:authenticators", "deviceId": "d1", "locale": "en-NZ"}, None),
        ({"custom": "not an object"}, None),  # refused by the model
        ({"redirectUrl": 5}, None),
        ({"redirectUrl": "https://elsewhere.example/"}, None),  # refused by the rule
        ([1, 2], None),  # not an object
        ("{not json", "application/json"),
        ({"deviceId": "d1"}, "text/plain"),
        ({"idempotencyKey": ""}, None),
        ({"username": "x" * 5000}, None),
    ],
)
def test_track_answers_agree(
    server: LiveServer,
    fastapi_only: LiveServer,
    tenant: Tenant,
    body: Any,
    content_type: str | None,
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    if isinstance(body, str):
        content: bytes | None = body.encode()
    elif body is None:
        content = None
    else:
        content = json.dumps(body).encode()
        headers.setdefault("content-type", "application/json")
    status, answer = _same(
        _answers(
            (server, fastapi_only),
            "POST",
            "/users/fast-user/actions/signIn",
            content=content,
            headers=headers,
            auth=(tenant.secret_key, ""),
        )
    )
    if body in ({}, None):
        assert status == 200 and answer["state"] == "CHALLENGE_REQUIRED"


@pytest.mark.parametrize(
    ("path", "auth"),
    [
        ("/users/fast-user/actions/signIn", None),  # no secret key
        ("/users/fast-user/actions/signIn", ("pg_sk_not-a-key", "")),
        ("/users/fast-user/actions/sign%20in", "tenant"),  # action code out of its pattern
        ("/users/" + "u" * 300 + "/actions/signIn", "tenant"),  # user id too long
    ],
)
def test_track_refusals_agree(
    server: LiveServer, fastapi_only: LiveServer, tenant: Tenant, path: str, auth: Any
) -> None:
    status, _ = _same(
        _answers(
            (server, fastapi_only),
            "POST",
            path,
            json={"deviceId": "d1"},
            auth=(tenant.secret_key, "") if auth == "tenant" else auth,
        )
    )
    assert status >= 400


@pytest.mark.parametrize(
    "body",
    [
        {"token": "not-a-token"},
        {"token": ""},
        {},
        {"token": "x", "action": "signIn", "userId": "someone"},
        {"token": 5},
    ],
)
def test_validate_answers_agree(
    server: LiveServer, fastapi_only: LiveServer, tenant: Tenant, body: Any
) -> None:
    _same(
        _answers(
            (server, fastapi_only), "POST", "/validate", json=body, auth=(tenant.secret_key, "")
        )
    )


def test_validate_of_real_tokens_agrees(
    server: LiveServer, fastapi_only: LiveServer, tenant: Tenant
) -> None:
    """A track's token, redeemed twice through each server: the same answers."""
    answers = []
    for live in (server, fastapi_only):
        with httpx.Client(
            base_url=live.api_url, auth=(tenant.secret_key, ""), timeout=10
        ) as client:
            tracked = client.post("/users/validator/actions/signIn", json={}).json()
            answer = client.post("/validate", json={"token": tracked["token"]})
            again = client.post("/validate", json={"token": tracked["token"]})
        answers.append((answer.status_code, answer.json(), again.json()))
    (status, first, second), (other_status, other_first, other_second) = answers
    assert status == other_status == 200
    assert first["userId"] == "validator" and first["state"] == "CHALLENGE_REQUIRED"
    ignore = {"idempotencyKey", "stateUpdatedAt"}
    assert {k: v for k, v in first.items() if k not in ignore} == {
        k: v for k, v in other_first.items() if k not in ignore
    }
    assert {k: v for k, v in second.items() if k not in ignore} == {
        k: v for k, v in other_second.items() if k not in ignore
    }
