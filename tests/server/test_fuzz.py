"""Schemathesis fuzzes every Server API operation from Passgate's own OpenAPI schema, with
valid (positive) and schema-violating (negative) input, against a real server: no input may
produce a 5xx.

Driven through schemathesis' Python API (its pytest plugin does not support pytest 9 yet)."""

from __future__ import annotations

import base64

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.case import Case

from tests.live_server import LiveServer, Tenant

EXAMPLES_PER_OPERATION = 30


@pytest.fixture(scope="module")
def api_schema(server: LiveServer) -> schemathesis.schemas.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    return schema.include(path_regex=r"^/v1/(users|validate)")


def test_no_input_makes_a_server_error(
    api_schema: schemathesis.schemas.BaseSchema, server: LiveServer, tenant: Tenant
) -> None:
    credentials = base64.b64encode(f"{tenant.secret_key}:".encode()).decode()
    headers = {"Authorization": f"Basic {credentials}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12

    for operation in operations:

        @given(
            case=operation.as_strategy()
            | operation.as_strategy(schemathesis.GenerationMode.NEGATIVE)
        )
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Case) -> None:
            case.call_and_validate(
                base_url=server.url, headers=headers, checks=[not_a_server_error], timeout=30
            )

        fuzz()
