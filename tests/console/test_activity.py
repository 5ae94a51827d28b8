"""The activity page: passkey sign-ins, push approvals and rejections per hour over 7 days
(counted in the database, per tenant or for all), drawn as SVG; and the audit log, filtered
and paged."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from authsignal.client import AuthsignalClient
from sqlalchemy import select

from passgate.authenticators import SoftwareAuthenticator
from passgate.server.pages.console.chart import hourly_chart
from passgate.server.services import activity, audit
from passgate.server.store.db import Db
from passgate.server.store.tables import Action, PushChallenge, User, utcnow
from tests.console.helpers import Console, enrolled_console
from tests.live_server import LiveServer, Tenant, insert_rows
from tests.passkeys.helpers import Ceremony


@pytest.fixture
def console(server: LiveServer, tmp_path: Path) -> Iterator[Console]:
    made = enrolled_console(server, tmp_path, f"activity-{tmp_path.name}@example.com")
    yield made
    made.close()


def decided(server: LiveServer, tenant_id: str, state: str, hours_ago: float) -> None:
    """A push challenge decided `hours_ago`, as a device's answer leaves it."""

    async def work(db: Db) -> None:
        when = utcnow() - timedelta(hours=hours_ago)
        action = Action(
            id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            user_id="pushed",
            action_code="payment",
            idempotency_key=str(uuid.uuid4()),
            state="CHALLENGE_SUCCEEDED" if state == "approved" else "CHALLENGE_FAILED",
            verification_method="PUSH",
            state_updated_at=when,
        )
        challenge = PushChallenge(
            id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            user_id="pushed",
            action_id=action.id,
            state=state,
            created_at=when,
            expires_at=when + timedelta(minutes=2),
            decided_at=when,
        )
        # The action's user first (actions refer to their user).
        known = select(User.user_id).where(User.tenant_id == tenant_id, User.user_id == "pushed")
        if await db.scalar(known) is None:
            await insert_rows(
                db, [User(tenant_id=tenant_id, user_id="pushed", handle=str(uuid.uuid4()))]
            )
        await insert_rows(db, [action, challenge])

    server.run(work)


def hourly(server: LiveServer, tenant_id: str | None) -> activity.Activity:
    async def work(db: Db) -> activity.Activity:
        return await activity.hourly(db, tenant_id)

    return server.run(work)


def test_sign_ins_approvals_and_rejections_per_hour(
    server: LiveServer,
    console: Console,
    tenant: Tenant,
    other_tenant: Tenant,
    authsignal: AuthsignalClient,
    tmp_path: Path,
) -> None:
    ceremony = Ceremony(server.api_url, tenant.id, authsignal)
    device = SoftwareAuthenticator(tmp_path / "signer.bin")
    ceremony.register(device, "signer")
    for _ in range(2):
        challenge_id, assertion = ceremony.assertion(device)
        assert ceremony.verify(challenge_id, assertion).status_code == 200
    ceremony.close()
    decided(server, tenant.id, "approved", hours_ago=3)
    decided(server, tenant.id, "approved", hours_ago=3)
    decided(server, tenant.id, "rejected", hours_ago=30)
    decided(server, tenant.id, "approved", hours_ago=24 * 8)  # before the window
    decided(server, other_tenant.id, "rejected", hours_ago=1)

    counts = hourly(server, tenant.id)
    assert len(counts.hours) == 7 * 24
    # Every action a passkey completed: the sign-up's registration and the two sign-ins.
    # (This hour, or the one before when the test ran across the hour.)
    assert counts.sign_ins[-1] + counts.sign_ins[-2] == 3 and sum(counts.sign_ins) == 3
    assert counts.approvals[-4] == 2 and sum(counts.approvals) == 2
    assert counts.rejections[-31] == 1 and sum(counts.rejections) == 1
    everyone = hourly(server, None)
    assert everyone.rejections[-2] >= 1

    page = console.get("/admin/activity", tenant=tenant.id)
    totals = dict(re.findall(r'data-total="([a-z-]+)">(\d+)<', page.text))
    assert totals == {"sign-ins": "3", "approvals": "2", "rejections": "1"}
    assert page.text.count("<polyline") == 3


def test_chart_geometry() -> None:
    start = datetime(2026, 11, 24, 13, tzinfo=UTC)
    hours = [start + timedelta(hours=i) for i in range(168)]
    sign_ins = [0] * 168
    sign_ins[10] = 7
    chart = hourly_chart(
        activity.Activity(hours=hours, sign_ins=sign_ins, approvals=[0] * 168, rejections=[0] * 168)
    )
    points = [tuple(map(float, p.split(","))) for p in chart.series[0].points.split()]
    assert len(points) == 168
    assert points[0][0] == chart.left and points[-1][0] == chart.right
    assert points[10][1] < points[9][1] == chart.bottom  # the peak rises from the axis
    assert [value for _, value in chart.gridlines] == [0, 5, 10]  # 7 rounds up to 10
    assert [label for _, label in chart.days][:2] == ["Wed 25", "Thu 26"]
    assert len(chart.days) == 7
    assert chart.series[0].total == 7


def test_audit_log_filters_and_pages(server: LiveServer, console: Console) -> None:
    tenant_id = str(uuid.uuid4())

    async def work(db: Db) -> None:
        actor = audit.Actor(type="admin", id="pager@example.com", source="198.51.100.7")
        for number in range(55):
            action = "tenant.updated" if number % 5 else "user.deleted"
            await audit.record(db, actor, action, tenant_id=tenant_id, details={"number": number})

    server.run(work)

    first = console.get("/admin/activity", tenant=tenant_id)
    assert first.text.count("pager@example.com") == 50
    assert "&#34;number&#34;: 54" in first.text
    older = re.search(r'<a href="(/admin/activity\?[^"]+)">Older</a>', first.text)
    assert older
    second = console.http.get(older.group(1).replace("&amp;", "&"))
    assert second.text.count("pager@example.com") == 5
    assert "Older</a>" not in second.text

    deleted = console.get("/admin/activity", tenant=tenant_id, action="user.")
    assert deleted.text.count("<code>user.deleted</code>") == 11
    assert "<code>tenant.updated</code>" not in deleted.text
    nobody = console.get("/admin/activity", tenant=tenant_id, actor="someone@else.example")
    assert "Nothing recorded." in nobody.text
    bad_cursor = console.get("/admin/activity", before="yesterday")
    assert bad_cursor.status_code == 400
