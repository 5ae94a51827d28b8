"""Figures: medians and ranges over runs, machine facts, the table on stdout."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def summary(values: list[float | None]) -> dict[str, Any]:
    """`{"median", "range": [min, max], "runs": [...]}` over the runs that have a value."""
    present = [value for value in values if value is not None]
    if not present:
        return {"median": None, "range": None, "runs": values}
    return {
        "median": statistics.median(present),
        "range": [min(present), max(present)],
        "runs": values,
    }


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _cell(figure: dict[str, Any], digits: int = 0) -> str:
    median = figure.get("median")
    spread = figure.get("range")
    if median is None:
        return "-"
    if spread and spread[0] != spread[1]:
        return (
            f"{_number(median, digits)} ({_number(spread[0], digits)}-{_number(spread[1], digits)})"
        )
    return _number(median, digits)


def table(document: dict[str, Any]) -> str:
    lines: list[str] = []
    settings = document["settings"]
    facts = document["machine"]
    lines.append(
        f"passgate bench: {facts['cpu_count']} CPUs ({facts['cpu_model']}), Python "
        f"{facts['python']}, {settings['concurrency']} client processes, "
        f"{settings['seconds']} s per run, {settings['runs']} runs; medians (range)"
    )
    for name, database in document["databases"].items():
        lines.append("")
        if not database.get("available", True):
            lines.append(f"{name}: unavailable ({database.get('reason')})")
            continue
        preload = database["preload"]
        lines.append(
            f"{name}: {preload['users']:,} users and {preload['actions']:,} actions preloaded "
            f"in {preload['seconds']:.1f} s"
        )
        floor = database["floor"]
        lines.append(
            f"  floor: GET /health {_cell(floor['health_us'])} µs server CPU, "
            f"ES256 verify {_number(floor['es256_verify_us'])} µs, "
            f"sign {_number(floor['es256_sign_us'])} µs"
        )
        header = (
            f"  {'flow':<17} {'ops/s':>18} {'server µs/op':>24} {'db µs/op':>21} "
            f"{'stmts/op':>16} {'floor µs':>9} {'ratio':>6} {'p50/p95/p99 ms @50%':>22} "
            f"{'err':>4} {'503':>4} {'RSS +MiB':>8}"
        )
        lines.append(header)
        for flow, figures in database["flows"].items():
            if not figures.get("available", True):
                reason = figures["reason"].strip().splitlines()[-1:] or [""]
                lines.append(f"  {flow:<17} failed: {reason[0][:150]}")
                continue
            latency = figures["latency_ms"]
            lat = "/".join(_number(latency[key]["median"], 1) for key in ("p50", "p95", "p99"))
            lines.append(
                f"  {flow:<17} {_cell(figures['ops_per_second'], 1):>18} "
                f"{_cell(figures['server_cpu_us_per_op']):>24} "
                f"{_cell(figures['db_cpu_us_per_op']):>21} "
                f"{_cell(figures['statements_per_op'], 1):>16} "
                f"{_number(figures['floor_us_per_op']['median']):>9} "
                f"{_number(figures['ratio_to_floor']['median'], 1):>6} {lat:>22} "
                f"{_number(sum(figures['errors']['runs'])):>4} "
                f"{_number(sum(figures['status_503']['runs'])):>4} "
                f"{_number(figures['rss_growth_mib']['median'], 1):>8}"
            )
        for flow, figures in database["flows"].items():
            for sample in figures.get("error_samples", [])[:3]:
                lines.append(f"  ! {flow}: {sample}")
    lines.append("")
    lines.append(
        "floor per op = requests x GET /health + ES256 verifications x verify + signatures x sign:"
    )
    for flow, composition in document["floor_composition"].items():
        lines.append(
            f"  {flow:<17} {composition['requests']} requests, {composition['verifications']} "
            f"verifications, {composition['signatures']} signatures: {composition['description']}"
        )
    peer = document.get("peer")
    if peer:
        lines.append("")
        if not peer.get("available"):
            lines.append(f"peer {peer['name']}: unavailable ({peer.get('reason')})")
        else:
            lines.append(f"peer {peer['name']} (SQLite against SQLite): {peer.get('config', '')}")
            for flow, figures in peer["flows"].items():
                if "error" in figures:
                    lines.append(f"  {flow:<17} unavailable ({figures['error']})")
                    continue
                lines.append(
                    f"  {flow:<17} peer {_number(figures.get('server_cpu_us_per_op'))} µs/op, "
                    f"{_number(figures.get('ops_per_second'), 1)} ops/s; Passgate/peer server "
                    f"CPU per op {_number(figures.get('passgate_to_peer_cpu_ratio'), 2)}"
                )
    return "\n".join(lines)
