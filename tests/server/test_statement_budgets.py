"""Statement budgets: how many SQL statements, and how many transactions, each hot operation
may cost the server, on SQLite and on PostgreSQL.

The operations are driven over HTTP against the live server (tests/server/hot_flows.py) and
each request's statements are counted on the app's engines: BEGIN, COMMIT, ROLLBACK,
SAVEPOINT and RELEASE are transaction control and not counted; transactions are counted as
SQLAlchemy begins them. Every request runs in at most one transaction, and a request answered
from a cache runs none.

The rule: a budget in BUDGETS may be lowered freely, but raised only with the reason written
beside it (what the extra statement buys), so that a slower hot path is a decision someone
wrote down and not a drift nobody saw. A failure prints the statements themselves.

`pytest -s` prints every operation's current counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.live_server import LiveServer, Tenant
from tests.server.hot_flows import OPERATIONS, Operation, flows

BUDGETS: dict[str, int] = {
    # Server API track for a user who already has actions: read-or-write the user, write the
    # action (the tenant's rules and settings come with the cached tenant).
    "track_existing_user": 2,
    # Track for a user the tenant never named: the user is created in the same upsert.
    "track_new_user": 2,
    # Track for a user with a push device: the action and its push challenge are started in
    # the same statements' budget as any track.
    "track_push_user": 2,
    # Server API validate: one conditional update that redeems the token and returns the action.
    "validate": 1,
    # Passkey sign-in, C4 (options: the Basic rate limits; the challenge is a signed message,
    # nothing stored) + C5 (verify). PostgreSQL: 1 + 2 = 3 (C5 spends the challenge and reads
    # the credential, then one statement writes the authenticator's last_verified_at, the
    # sign count where it changed and the action, as data-modifying WITH queries). SQLite is
    # over it: see SQLITE_BUDGETS.
    "passkey_sign_in": 3,
    # Passkey sign-up, C2 (options: the user, their passkeys, the token's action, in one
    # read) + C3 (spend the challenge; the enrolment rule, its use-up and the action's
    # settlement in one conditional UPDATE; the authenticator and credential rows; the
    # audit event `user.passkey.added`, which the audit log must hold for every added
    # authenticator). PostgreSQL: 1 + 4 = 5; SQLite: 1 + 5 = 6 (the two rows are two
    # INSERTs there).
    "passkey_sign_up": 6,
    # P4 alone, a sub-budget of the round trip below (which includes it): one read of the
    # device and the count of its spent messages (the message itself is computed, not stored).
    "push_challenge_message": 1,
    # Push round trip: track (starts the challenge) + P4 (the device's one-time message) + P5
    # (the device spends it and reads the challenge) + P6 (the device approves) + validate.
    # PostgreSQL: 2 + 1 + 1 + 1 + 1 = 6. SQLite is over it (2 + 1 + 1 + 3 + 1 = 8): without
    # writes inside WITH, P6's decision, the action's settlement and the device's
    # last_verified_at are one statement per table (docs/push.md#statements-per-request).
    "push_round_trip": 7,
    # A CORS preflight for a listed origin, answered from the origin index.
    "cached_preflight": 0,
}
# Where SQLite cannot meet BUDGETS, its own budget, and why.
SQLITE_BUDGETS: dict[str, int] = {
    # SQLite has no data-modifying WITH, so each table C5 writes is its own statement: the
    # challenge's spend (spent_challenges), the authenticator's last_verified_at
    # (authenticators), the sign count when it changed (passkey_credentials; skipped when
    # the counter did not move, as synced passkeys report 0: then 4) and the action (actions),
    # after C4's rate limits: 1 + 4 = 5.
    "passkey_sign_in": 5,
    # The push round trip's reason is beside BUDGETS["push_round_trip"]: P6's decision, the
    # action's settlement and last_verified_at are one statement per table (2+1+1+3+1 = 8).
    "push_round_trip": 8,
}
# Transactions one request may open (a long-poll that waits opens one per look; none here).
TRANSACTIONS_PER_REQUEST = 1
# Operations answered from a cache: their requests open no transaction at all.
CACHED = ("cached_preflight",)


def _budget(name: str, dialect: str) -> int:
    if dialect == "sqlite":
        return SQLITE_BUDGETS.get(name, BUDGETS[name])
    return BUDGETS[name]


def _report(operation: Operation, dialect: str) -> str:
    counts = ", ".join(
        f"{request.label}={len(request.statements)}/{request.transactions}tx"
        for request in operation.requests
    )
    without = sum(1 for request in operation.requests if request.transactions == 0)
    return (
        f"[{dialect}] {operation.name}: {len(operation.statements)} statements "
        f"(budget {_budget(operation.name, dialect)}); per request {counts}; "
        f"{without} of {len(operation.requests)} requests without a transaction"
    )


def test_every_operation_has_a_budget() -> None:
    assert set(BUDGETS) == set(OPERATIONS)
    assert set(SQLITE_BUDGETS) <= set(BUDGETS)


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_statement_budget(
    name: str, server: LiveServer, tenant: Tenant, database_url: str, tmp_path: Path
) -> None:
    with flows(server, tenant, tmp_path) as driver:
        operation = OPERATIONS[name](driver)
    dialect = database_url.split(":", 1)[0]
    print("\n" + _report(operation, dialect))

    problems = []
    budget = _budget(name, dialect)
    if len(operation.statements) > budget:
        problems.append(f"{len(operation.statements)} statements, over the budget of {budget}")
    for request in operation.requests:
        if request.transactions > TRANSACTIONS_PER_REQUEST:
            problems.append(f"{request.label} opened {request.transactions} transactions")
        if name in CACHED and request.transactions:
            problems.append(f"{request.label} is answered from a cache but opened a transaction")
    assert not problems, (
        f"{name} on {dialect}: " + "; ".join(problems) + "\n" + operation.describe()
    )
