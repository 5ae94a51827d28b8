"""`passgate serve --workers N`: N processes on one port and one PostgreSQL database, whose
Prometheus figures add up (/metrics, whichever worker answers, counts every request). SQLite
refuses more than one worker; --no-migrate refuses a database that is behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.cli.serve_process import ServeProcess
from tests.fresh_postgres import fresh_postgres_database

HEALTH_COUNT = re.compile(
    r'^passgate_http_requests_total\{method="GET",route="/health",status="200"\} (\S+)$',
    re.MULTILINE,
)


def health_count(url: str) -> float:
    match = HEALTH_COUNT.search(httpx.get(f"{url}/metrics", timeout=30).text)
    return float(match[1]) if match else 0.0


def workers_that_counted(metrics_dir: Path) -> set[str]:
    return {path.stem.rsplit("_", 1)[1] for path in metrics_dir.glob("counter_*.db")}


@pytest.mark.postgres
def test_two_workers_on_postgresql_count_every_request_once(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    with fresh_postgres_database("passgate_workers") as url:
        upgraded = subprocess.run(
            [sys.executable, "-m", "passgate.cli", "db", "upgrade", "--database-url", url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert upgraded.returncode == 0, upgraded.stderr
        server = ServeProcess(
            tmp_path,
            "--workers", "2", "--no-migrate", "--database-url", url,
            env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
        ).wait_ready(workers=2)  # fmt: skip
        try:
            sent = 0

            def one(_: int) -> int:
                # A new connection each time: the kernel hands it to either worker.
                return httpx.get(f"{server.url}/health", timeout=30).status_code

            with ThreadPoolExecutor(8) as pool:
                for _ in range(20):
                    statuses = list(pool.map(one, range(40)))
                    assert statuses == [200] * 40
                    sent += 40
                    if len(workers_that_counted(metrics_dir)) >= 2:
                        break
            assert len(workers_that_counted(metrics_dir)) == 2, "one worker answered everything"
            # Whichever worker answers /metrics, the figure is the sum over both.
            assert [health_count(server.url) for _ in range(6)] == [sent] * 6
            ready = httpx.get(f"{server.url}/health/ready")
            assert ready.status_code == 200 and ready.json()["database"] == "ok"
        finally:
            status = server.terminate()
            server.kill()
        assert status == 0, server.output()
        assert "Traceback" not in server.output()


def test_sqlite_refuses_more_than_one_worker(tmp_path: Path) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "passgate.cli", "serve", "--workers", "2",
         "--database-url", f"sqlite:///{tmp_path / 'passgate.db'}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in refused.stderr
    assert "--workers 2 needs PostgreSQL" in lines[0]
    assert not (tmp_path / "passgate.db").exists()


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    with fresh_postgres_database("passgate_behind") as url:
        yield url


@pytest.mark.postgres
def test_no_migrate_refuses_a_database_that_is_behind(fresh_postgres_url: str) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "passgate.cli", "serve", "--no-migrate",
         "--database-url", fresh_postgres_url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "the database is at migration none" in refused.stderr
    assert "run `passgate db upgrade` first" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_no_migrate_does_not_make_an_sqlite_database(tmp_path: Path) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "passgate.cli", "serve", "--no-migrate",
         "--database-url", f"sqlite:///{tmp_path / 'passgate.db'}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "`passgate db upgrade` creates a new one" in refused.stderr
    assert not (tmp_path / "passgate.db").exists()


@pytest.mark.postgres
def test_workers_make_their_metrics_directory_and_remove_it(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    environment = {"TMPDIR": str(temporary)}
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:  # the test's own, not an operator's
        environment["PROMETHEUS_MULTIPROC_DIR"] = ""
    server = ServeProcess(
        tmp_path, "--workers", "2", "--database-url", fresh_postgres_url, env=environment
    ).wait_ready(workers=2)
    try:
        httpx.get(f"{server.url}/health")
        made = list(temporary.glob("passgate-metrics-*"))
        assert len(made) == 1 and list(made[0].glob("*.db")), server.output()
    finally:
        status = server.terminate()
        server.kill()
    assert status == 0, server.output()
    assert not made[0].exists()
