"""The push counters on /metrics (docs/observability.md#metrics) move with what happens:
challenges started, approved, rejected, failed (a wrong number); a webhook that fails is
counted by its reason."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx
from authsignal.client import AuthsignalClient

from passgate import AuthsignalSync
from tests.live_server import LiveServer
from tests.server.push.test_delivery import Receiver

Device = Callable[..., AuthsignalSync]
Enroll = Callable[[AuthsignalSync, str], str]

SAMPLE = re.compile(r"^(passgate_\w+_total)\{([^}]*)\} (\S+)$", re.MULTILINE)


def counters(server: LiveServer) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics").text
    return {f"{name}{{{labels}}}": float(value) for name, labels, value in SAMPLE.findall(text)}


def challenges(before: dict[str, float], after: dict[str, float], outcome: str) -> float:
    key = f'passgate_challenges_total{{method="PUSH",outcome="{outcome}"}}'
    return after.get(key, 0) - before.get(key, 0)


def test_push_challenges_are_counted_by_outcome(
    server: LiveServer, make_device: Device, enroll: Enroll, authsignal: AuthsignalClient
) -> None:
    device = make_device()
    enroll(device, "metrics-gail")
    before = counters(server)
    assert 'passgate_challenges_total{method="PASSKEY",outcome="started"}' in before

    approved = authsignal.track("metrics-gail", "signIn")
    assert device.push.update_challenge(
        approved["challenge_id"], True, approved["verification_code"]
    ).data
    rejected = authsignal.track("metrics-gail", "payment")
    assert device.push.update_challenge(rejected["challenge_id"], False).data is False
    wrong = authsignal.track("metrics-gail", "transfer")
    mismatch = "00" if wrong["verification_code"] != "00" else "11"
    assert device.push.update_challenge(wrong["challenge_id"], True, mismatch).data is False

    after = counters(server)
    assert challenges(before, after, "started") == 3
    assert challenges(before, after, "approved") == 1
    assert challenges(before, after, "rejected") == 1
    assert challenges(before, after, "failed") == 1


def test_webhook_tries_are_counted_and_failures_by_reason(
    server: LiveServer,
    make_device: Device,
    enroll: Enroll,
    authsignal: AuthsignalClient,
    configure: Any,
) -> None:
    receiver = Receiver([503, 404])  # then 200
    try:
        configure(webhook_url=f"{receiver.url}/hooks/push")
        device = make_device()
        enroll(device, "metrics-hank")
        before = counters(server)
        authsignal.track("metrics-hank", "signIn")
        assert receiver.received.wait(timeout=60)
    finally:
        receiver.close()

    def moved(key: str) -> float:
        deadline = time.monotonic() + 10
        while True:  # the count follows the answer by a moment
            change = counters(server).get(key, 0) - before.get(key, 0)
            if change or time.monotonic() > deadline:
                return change
            time.sleep(0.05)

    assert moved('passgate_webhook_failures_total{reason="http_5xx"}') == 1
    assert moved('passgate_webhook_failures_total{reason="http_4xx"}') == 1
    assert moved('passgate_push_deliveries_total{channel="webhook",result="failed"}') == 2
    assert moved('passgate_push_deliveries_total{channel="webhook",result="ok"}') == 1
