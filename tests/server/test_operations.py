"""What operators look at: health and Prometheus metrics."""

from __future__ import annotations

import httpx

from tests.live_server import LiveServer


def test_health(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_metrics_count_requests_by_route_template(server: LiveServer, http: httpx.Client) -> None:
    http.post("/users/metrics-user-1/actions/signIn", json={})
    http.get("/users/metrics-user-1/actions/signIn/no-such-key")
    text = httpx.get(f"{server.url}/metrics").text
    assert 'route="/v1/users/{userId}/actions/{action}",status="200"' in text
    assert 'route="/v1/users/{userId}/actions/{action}/{idempotencyKey}",status="404"' in text
    assert "passgate_http_request_duration_seconds_bucket" in text
    assert "metrics-user-1" not in text
