"""Authsignal's published Node server SDK (`@authsignal/node` 2.21.0, pinned in
tests/compat/node/package-lock.json) against a real Passgate server: only the URL changes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.live_server import LiveServer, Tenant


def run_node(node_sdk: Path, server: LiveServer, tenant: Tenant) -> dict[str, Any]:
    result = subprocess.run(
        ["node", "server_api.mjs"],
        cwd=node_sdk,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "AUTHSIGNAL_API_URL": server.api_url,
            "AUTHSIGNAL_API_SECRET": tenant.secret_key,
        },
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_node_sdk_server_api(node_sdk: Path, server: LiveServer, tenant: Tenant) -> None:
    out = run_node(node_sdk, server, tenant)

    assert out["updateUser"]["email"] == "node@example.com"
    assert out["enroll"]["authenticator"]["verificationMethod"] == "SMS"
    assert out["track"]["state"] == "CHALLENGE_REQUIRED"
    assert out["track"]["isEnrolled"] is True
    assert out["getAction"]["state"] == "CHALLENGE_REQUIRED"
    assert out["getAction"]["custom"] == {"plan": "pro"}
    # Node renames actionCode to action in validateChallenge.
    assert out["validatePending"]["isValid"] is False
    assert out["validatePending"]["action"] == "signIn"
    assert out["updateAction"]["state"] == "CHALLENGE_SUCCEEDED"
    assert out["validate"]["isValid"] is True
    assert out["validate"]["userId"] == "node-user"
    assert [a["actionCode"] for a in out["queryUserActions"]] == ["signIn"]
    assert [u["userId"] for u in out["queryUsers"]["users"]] == ["node-user"]
    assert out["getUser"]["displayName"] == "Node User"
    assert out["getUser"]["enrolledVerificationMethods"] == ["SMS"]
    assert len(out["getAuthenticators"]) == 1
    assert out["afterDeleteAuthenticator"] == []
    assert out["afterDeleteUser"]["isEnrolled"] is False
    assert out["badKey"] == {
        "isAuthsignalError": True,
        "statusCode": 401,
        "errorCode": "unauthorized",
        "errorDescription": (
            "The request is unauthorized. Check that your API key and region base URL are "
            "correctly configured."
        ),
        "message": (
            "AuthsignalError: 401 - The request is unauthorized. Check that your API key and "
            "region base URL are correctly configured."
        ),
    }
