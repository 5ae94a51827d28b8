"""The push-bombing limit holds under concurrency: of many simultaneous tracks for one user,
exactly the tenant's limit start a push challenge, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy import func, select

from passgate import AuthsignalSync
from passgate.server.store.db import Db
from passgate.server.store.tables import PushChallenge
from tests.live_server import LiveServer, Tenant
from tests.server.push.conftest import Device

Enroll = Callable[[AuthsignalSync, str], str]
TRACKS = 50
LIMIT = 5


def test_concurrent_tracks_start_exactly_the_limit(
    server: LiveServer,
    database_url: str,
    tenant: Tenant,
    make_device: Device,
    enroll: Enroll,
    configure: Any,
) -> None:
    configure(rate_limit=LIMIT, rate_limit_window_seconds=600, challenge_on_track=True)
    enroll(make_device(), "bombed")
    # Two servers on one database, as two processes would be: the limit is the database's.
    second = LiveServer(database_url).start()
    limits = httpx.Limits(max_connections=TRACKS)
    responses: list[httpx.Response] = []
    try:
        with (
            httpx.Client(auth=(tenant.secret_key, ""), limits=limits, timeout=60) as http,
            ThreadPoolExecutor(max_workers=TRACKS) as pool,
        ):
            urls = [
                f"{(server, second)[i % 2].api_url}/users/bombed/actions/signIn"
                for i in range(TRACKS)
            ]
            # On a slow machine most of a burst may be answered 503; burst again until more
            # tracks than the limit got through.
            for _ in range(5):
                responses += pool.map(lambda url: http.post(url, json={}), urls)
                if sum(r.status_code == 200 for r in responses) > LIMIT:
                    break
    finally:
        second.stop()
    # A burst may be answered 503 (the database's lock wait is bounded); never anything else.
    tracked = [r for r in responses if r.status_code == 200]
    print(f"{len(tracked)} of {len(responses)} tracks answered 200, the rest 503")
    assert all(r.status_code == 503 for r in responses if r.status_code != 200), [
        r.text for r in responses
    ]
    assert len(tracked) > LIMIT, [r.text for r in responses]
    assert all(r.json()["state"] == "CHALLENGE_REQUIRED" for r in tracked)
    assert sum("challengeId" in r.json() for r in tracked) == LIMIT

    async def states(db: Db) -> dict[str, int]:
        query = (
            select(PushChallenge.state, func.count())
            .where(PushChallenge.tenant_id == tenant.id, PushChallenge.user_id == "bombed")
            .group_by(PushChallenge.state)
        )
        return {state: count for state, count in (await db.execute(query)).all()}

    found = server.run(states)
    assert (found.get("pending"), found.get("refused", 0)) == (LIMIT, len(tracked) - LIMIT)
