"""The push counters on /metrics (docs/observability.md#metrics) move with what happens:
challenges started, approved, rejected, failed (a wrong number); a webhook that fails is
counted by its reason."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
from authsignal.client import AuthsignalClient

from passgate import AuthsignalSync
from tests.live_server import LiveServer

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
