"""`passgate serve` logs one line per request: method, route template, status, duration,
tenant id and client IP; JSON with PASSGATE_LOG_JSON; never a secret key, a token, an
Authorization header or a query string; no colour codes when the output is not a terminal;
no migration chatter when nothing is pending."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx

from tests.cli.serve_process import ServeProcess


def request_lines(output: str) -> list[dict[str, Any]]:
    lines = []
    for line in output.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == "request":
                lines.append(record)
    return lines


def test_one_json_line_per_request_without_secrets(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path, "--dev", env={"PASSGATE_LOG_JSON": "true"}).wait_ready()
    secret, tenant_id = server.printed("Secret key"), server.printed("Dev tenant")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            tracked = http.post(
                "/v1/users/alice-in-the-path/actions/signIn", json={}, auth=(secret, "")
            )
            assert tracked.status_code == 200, tracked.text
            token = tracked.json()["token"]
            authenticators = http.get(
                "/v1/client/user-authenticators", headers={"Authorization": f"Bearer {token}"}
            )
            assert authenticators.status_code == 200, authenticators.text
            page = http.get(f"/challenge?token={token}")
            assert page.status_code == 200
            # From the proxy on this host (trusted by default): the client it forwarded.
            forwarded = http.get("/health/live", headers={"X-Forwarded-For": "203.0.113.9"})
            assert forwarded.status_code == 200
            missing = http.get("/v1/no-such-route?token=query-secret-123")
            assert missing.status_code == 404
            refused = http.get(
                "/v1/users/bob",
                headers={"Authorization": "Basic " + base64.b64encode(b"wrong-key:").decode()},
            )
            assert refused.status_code == 401
    finally:
        assert server.terminate() == 0
    output = server.output()
    lines = request_lines(output)
    by_route = {(line["method"], line["route"]): line for line in lines}

    track = by_route[("POST", "/v1/users/{userId}/actions/{action}")]
    assert track["status"] == 200
    assert track["tenant_id"] == tenant_id
    assert track["client_ip"] == "127.0.0.1"
    assert isinstance(track["duration_ms"], float) and track["duration_ms"] >= 0
    assert track["level"] == "info" and "timestamp" in track
    client = by_route[("GET", "/v1/client/user-authenticators")]
    assert client["status"] == 200 and client["tenant_id"] == tenant_id
    assert by_route[("GET", "/challenge")]["status"] == 200
    assert by_route[("GET", "/health/live")]["client_ip"] == "203.0.113.9"
    assert by_route[("GET", "unmatched")]["status"] == 404
    assert by_route[("GET", "/v1/users/{userId}")]["status"] == 401
    assert by_route[("GET", "/v1/users/{userId}")]["tenant_id"] is None
    assert len(lines) >= 5 + 1  # and the readiness probe of the start-up
    for line in lines:
        assert set(line) >= {"method", "route", "status", "duration_ms", "client_ip"}

    # Nothing that opens anything, and no raw paths or query strings, anywhere in the output.
    for leaked in (secret, token, "query-secret-123", "wrong-key", "Bearer", "Basic ", "?"):
        assert leaked not in "\n".join(json.dumps(line) for line in lines), leaked
    # (--dev prints the secret key once, on its own line, at start-up.)
    logged = "\n".join(line for line in output.splitlines() if not line.startswith("Secret key"))
    for leaked in (secret, token, "query-secret-123", "alice-in-the-path"):
        assert leaked not in logged, leaked


def test_console_log_has_no_colour_codes_and_no_migration_chatter(tmp_path: Path) -> None:
    first = ServeProcess(tmp_path).wait_ready()
    assert first.terminate() == 0
    assert "database migrated" in first.output()

    again = ServeProcess(tmp_path).wait_ready()
    httpx.get(f"{again.url}/health")
    assert again.terminate() == 0
    output = again.output()
    assert "\x1b[" not in output and "\x1b[" not in first.output()
    assert "request" in output and "route=/health" in output
    for chatter in ("Context impl", "Will assume", "Running upgrade", "database migrated"):
        assert chatter not in output, chatter
