"""What the rules count for Prometheus (docs/observability.md#metrics): challenges by method
and outcome, push deliveries, webhook failures. Process-wide counters on prometheus-client's
default registry; with `PROMETHEUS_MULTIPROC_DIR` set, each process writes them to that
directory and /metrics sums them over the worker processes (server/observability.py).

Counts that depend on a transaction are taken once it has committed (`Db.after_commit`): a
rolled-back challenge was never started."""

from __future__ import annotations

from prometheus_client import Counter

from passgate.server.store.db import Db

PUSH = "PUSH"
PASSKEY = "PASSKEY"
SECURITY_KEY = "SECURITY_KEY"

challenges = Counter(
    "passgate_challenges",
    "Challenges by verification method and outcome: started, approved, rejected, failed "
    "(a wrong number), expired (answered after it expired)",
    ["method", "outcome"],
)
push_deliveries = Counter(
    "passgate_push_deliveries",
    "Push notifications and webhooks sent, by channel (apns, fcm, webhook) and result",
    ["channel", "result"],
)
webhook_failures = Counter(
    "passgate_webhook_failures",
    "Webhook tries that failed, by reason (unreachable, http_4xx, http_5xx, tenant_gone, "
    "no_secret)",
    ["reason"],
)

for _method in (PUSH, PASSKEY, SECURITY_KEY):  # present (at 0) before the first challenge
    for _outcome in ("started", "approved", "rejected", "expired"):
        challenges.labels(_method, _outcome)


def challenge(method: str, outcome: str, db: Db | None = None) -> None:
    """Count a challenge's step: now, or once `db`'s transaction commits."""
    counter = challenges.labels(method, outcome)
    if db is None:
        counter.inc()
    else:
        db.after_commit(counter.inc)


def delivery(channel: str, ok: bool) -> None:
    push_deliveries.labels(channel, "ok" if ok else "failed").inc()


def webhook_failed(reason: str) -> None:
    webhook_failures.labels(reason).inc()
    push_deliveries.labels("webhook", "failed").inc()
