"""Schemathesis fuzzes every operation of both APIs from Passgate's own OpenAPI schema, with
valid (positive) and schema-violating (negative) input, against a real server: no input may
produce a 5xx. The Client API is fuzzed with working credentials (a tenant id for Basic, a
track token for Bearer) so that requests get past the door and reach the parsers behind it.

Driven through schemathesis' Python API (its pytest plugin does not support pytest 9 yet).
`PASSGATE_FUZZ_EXAMPLES` raises the examples per operation for a longer local run."""

from __future__ import annotations

import base64
import os
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.case import Case

from tests.live_server import LiveServer

EXAMPLES_PER_OPERATION = int(os.environ.get("PASSGATE_FUZZ_EXAMPLES", "70"))
# The floor for one run over both APIs, per database (docs/reliability.md).
MINIMUM_REQUESTS = 2000
# Client API routes that take only a Bearer token; the rest take Basic (the tenant id), and
# C1, C4 and C5 take either (fuzzed with each in turn).
BEARER_ONLY = (
    "/v1/client/user-authenticators/passkey/registration-options",
    "/v1/client/user-authenticators/passkey POST",
    "/v1/client/user-authenticators GET",
    "/v1/client/user-authenticators/push POST",
    "/v1/client/challenge/push",
    "/v1/client/verify/push",
    # The fallback methods: every route takes the Bearer token.
    "/v1/client/user-authenticators/email-otp",
    "/v1/client/user-authenticators/sms",
    "/v1/client/user-authenticators/totp",
    "/v1/client/user-authenticators/recovery-code",
    "/v1/client/user-authenticators/email-magic-link",
    "/v1/client/user-authenticators/security-key",
    "/v1/client/user-authenticators/{userAuthenticatorId} DELETE",
    "/v1/client/challenge/email-otp",
    "/v1/client/challenge/sms",
    "/v1/client/challenge/whatsapp",
    "/v1/client/challenge/email-magic-link",
    "/v1/client/verify/email-otp",
    "/v1/client/verify/sms",
    "/v1/client/verify/whatsapp",
    "/v1/client/verify/totp",
    "/v1/client/verify/recovery-code",
    "/v1/client/verify/email-magic-link/finalize",
    "/v1/client/verify/security-key",
    "/v1/client/push-enrolment-links",
)
EITHER = (
    "/v1/client/challenge POST",
    "/v1/client/challenge/web",
    "/v1/client/user-authenticators/passkey/authentication-options",
    "/v1/client/verify/passkey",
)


@pytest.fixture(scope="module")
def fuzz_server(database_url: str) -> Iterator[LiveServer]:
    """A server of its own, so the fuzzer's flood of challenges and users never meets another
    test's data, and without the client rate limits, so the fuzzer's C1 and C4 calls reach
    the parsers instead of a 429."""
    live = LiveServer(database_url, client_rate_limit_per_ip=0, client_rate_limit_per_tenant=0)
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def requests_sent(database_url: str) -> Counter[str]:
    """Requests sent per operation, counted per database."""
    return Counter()


def _basic(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:".encode()).decode()


def _operations(server: LiveServer, path_regex: str) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    return [result.ok() for result in schema.include(path_regex=path_regex).get_all_operations()]


def _fuzz(
    operation: schemathesis.APIOperation,
    server: LiveServer,
    headers_for: dict[int, dict[str, str]],
    sent: Counter[str],
) -> None:
    @given(
        case=operation.as_strategy() | operation.as_strategy(schemathesis.GenerationMode.NEGATIVE)
    )
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Case) -> None:
        # A push long-poll would hold the fuzzer for its whole wait: ask for none.
        if isinstance(case.query, dict) and "wait" in case.query:
            case.query["wait"] = 0
        headers = headers_for[sent[operation.label] % len(headers_for)]
        sent[operation.label] += 1
        case.call_and_validate(
            base_url=server.url, headers=headers, checks=[not_a_server_error], timeout=30
        )

    fuzz()


def test_no_server_api_input_makes_a_server_error(
    fuzz_server: LiveServer, requests_sent: Counter[str]
) -> None:
    tenant = fuzz_server.create_tenant()
    operations = _operations(
        fuzz_server, r"^/v1/(users|validate|audit-events|challenge|verify|claim)"
    )
    assert len(operations) >= 13
    for operation in operations:
        headers_for = {0: {"Authorization": _basic(tenant.secret_key)}}
        _fuzz(operation, fuzz_server, headers_for, requests_sent)


def test_no_client_api_input_makes_a_server_error(
    fuzz_server: LiveServer, requests_sent: Counter[str]
) -> None:
    tenant = fuzz_server.create_tenant()
    with httpx.Client(base_url=fuzz_server.api_url, auth=(tenant.secret_key, "")) as api:
        tracked = api.post("/users/fuzzed/actions/signIn", json={"scope": "add:authenticators"})
        assert tracked.status_code == 200, tracked.text
    bearer = {"Authorization": f"Bearer {tracked.json()['token']}"}
    basic = {"Authorization": _basic(tenant.id)}
    operations = _operations(fuzz_server, r"^/v1/client/")
    assert len(operations) >= 20
    for operation in operations:
        label = f"{operation.path} {operation.method.upper()}"
        if any(label.startswith(prefix) for prefix in EITHER):
            headers_for = {0: bearer, 1: basic}
        elif any(label.startswith(prefix) for prefix in BEARER_ONLY):
            headers_for = {0: bearer}
        else:
            headers_for = {0: basic}
        _fuzz(operation, fuzz_server, headers_for, requests_sent)


def test_the_fuzzers_sent_enough_requests(requests_sent: Counter[str]) -> None:
    """Both APIs together got at least the floor of requests, and every operation some."""
    total = sum(requests_sent.values())
    print(f"fuzzed {len(requests_sent)} operations with {total} requests")
    assert len(requests_sent) >= 32
    assert total >= MINIMUM_REQUESTS
