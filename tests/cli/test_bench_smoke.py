"""`passgate bench` end to end, briefly: one short run of every flow on SQLite with a small
preload. Checks only that the JSON has its documented keys and that every flow completed
without errors; the figures themselves are never asserted (shared, noisy machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FLOW_KEYS = {
    "ops_per_second",
    "server_cpu_us_per_op",
    "db_cpu_us_per_op",
    "statements_per_op",
    "floor_us_per_op",
    "ratio_to_floor",
    "latency_ms",
    "errors",
    "status_503",
    "rss_growth_mib",
}
FLOWS = {"track", "passkey_sign_up", "passkey_sign_in", "push_round_trip"}


def test_bench_runs_every_flow_and_writes_its_json(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PASSGATE_")}
    command = [sys.executable, "-m", "passgate.cli", "bench", "--json", str(output)]
    command += ["--database-url", f"sqlite:///{tmp_path}/bench.db", "--concurrency", "2"]
    command += ["--seconds", "1", "--runs", "1", "--users", "200", "--actions", "2000"]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(output.read_text())
    assert document["schema_version"] == 1
    assert {"cpu_count", "cpu_model", "python", "date"} <= set(document["machine"])
    assert document["command"][:2] == ["passgate", "bench"]
    assert set(document["floor_composition"]) == FLOWS
    sqlite = document["databases"]["sqlite"]
    assert sqlite["available"] is True, sqlite.get("reason")
    assert sqlite["preload"]["users"] == 200
    assert {"health_us", "es256_verify_us", "es256_sign_us"} <= set(sqlite["floor"])
    assert set(sqlite["flows"]) == FLOWS
    for name, flow in sqlite["flows"].items():
        assert set(flow) >= FLOW_KEYS, name
        assert set(flow["latency_ms"]) == {"p50", "p95", "p99"}, name
        assert {"median", "range"} <= set(flow["server_cpu_us_per_op"]), name
        assert flow["errors"]["runs"] == [0], (name, flow.get("error_samples"))
        assert flow["status_503"]["runs"] == [0], name
        assert flow["ops_per_second"]["median"] is not None, name
