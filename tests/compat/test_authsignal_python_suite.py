"""Authsignal's own test suite for its Python SDK (`authsignal/client_tests.py`, shipped in the
PyPI 4.1.0 wheel), run unchanged against Passgate: a suite we did not write.

It was written against Authsignal's hosted test tenant, where `user123` is already enrolled;
the one precondition we set up is that enrollment. Its tracks' `redirect_url` is
`http://localhost:3000`, which the tenant does not list: loopback return pages are accepted
for every tenant."""

from __future__ import annotations

import unittest

import pytest
from authsignal import client_tests
from authsignal.client import AuthsignalClient

from tests.live_server import LiveServer, Tenant

# Not bound to a module-level name, so that pytest does not collect the class on its own.
METHODS = unittest.TestLoader().getTestCaseNames(client_tests.TestAuthsignalClient)


def test_the_suite_is_the_one_we_expect() -> None:
    assert len(METHODS) >= 8
    assert {"test_actions", "test_validate_challenge", "test_users"} <= set(METHODS)


@pytest.mark.parametrize("method", METHODS)
def test_authsignal_client_tests(
    method: str,
    server: LiveServer,
    tenant: Tenant,
    authsignal: AuthsignalClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    authsignal.enroll_verified_authenticator(
        "user123", {"verificationMethod": "EMAIL_OTP", "email": "user123@example.com"}
    )
    monkeypatch.setenv("AUTHSIGNAL_API_SECRET", tenant.secret_key)
    monkeypatch.setenv("AUTHSIGNAL_API_URL", server.api_url)
    suite = client_tests.TestAuthsignalClient
    suite.setUpClass()
    result = unittest.TestResult()
    suite(method).run(result)
    problems = [text for _, text in result.failures + result.errors]
    assert not problems, "\n".join(problems)
    assert result.testsRun == 1
