"""A backend's one-time code through Authsignal's published Node server SDK
(`@authsignal/node` 2.21.0, pinned in tests/compat/node/package-lock.json): `challenge`,
`verify`, `getChallenge`, `claimChallenge`, then `validateChallenge` on the claimed token."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.live_server import LiveServer, Tenant
from tests.otp.helpers import OtpClient, new_email


def test_node_sdk_challenge_verify_and_claim(
    node_sdk: Path, server: LiveServer, tenant: Tenant, otp: OtpClient
) -> None:
    email = new_email()
    env = {
        **os.environ,
        "AUTHSIGNAL_API_URL": server.api_url,
        "AUTHSIGNAL_API_SECRET": tenant.secret_key,
        "OTP_EMAIL": email,
    }
    with subprocess.Popen(
        ["node", "otp.mjs"],
        cwd=node_sdk,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as node:
        assert node.stdin is not None and node.stdout is not None
        started = json.loads(node.stdout.readline())["started"]
        node.stdin.write(otp.email_code(email) + "\n")
        node.stdin.flush()
        out, errors = node.communicate(timeout=60)
        assert node.returncode == 0, errors
    result = json.loads(out)

    assert started["challengeId"] and started["idempotencyKey"]
    assert isinstance(started["expiresAt"], int)
    assert result["wrong"] == {
        "isVerified": False,
        "failureReason": "CODE_INVALID_OR_EXPIRED",
        "verificationMethod": "EMAIL_OTP",
    }
    assert result["verified"] == {
        "isVerified": True,
        "email": email,
        "verificationMethod": "EMAIL_OTP",
    }
    assert result["found"]["challengeId"] == started["challengeId"]
    assert result["found"]["email"] == email
    assert result["claimed"]["verificationMethod"] == "EMAIL_OTP"
    validated = result["validated"]
    assert validated["isValid"] is True
    assert (validated["userId"], validated["action"]) == ("node-otp", "signUp")
    assert validated["verificationMethod"] == "EMAIL_OTP"
