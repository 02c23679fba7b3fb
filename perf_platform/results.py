"""Rows of score_benchmarks: how every area records a measurement, once per run and phase."""

import functools
import hashlib
import json
import socket
import subprocess
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from perf_platform.settings import PROJECT_ROOT
from perf_platform.tables import score_benchmarks

MEASURES = ("total_seconds", "p50_ms", "p95_ms", "p99_ms", "mean_ms", "stddev_ms")


def config_hash(config: Mapping[str, Any]) -> str:
    """A stable digest of a configuration: runs are compared only with runs of the same one."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@functools.cache
def git_commit() -> str | None:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() or None


def benchmark_row(
    *,
    run_id: str,
    benchmark: str,
    phase: str,
    runs: int,
    config: Mapping[str, Any],
    errors: int = 0,
    cache_backend: str | None = None,
    verdict: str | None = None,
    details: Mapping[str, Any] | None = None,
    created_at: datetime | None = None,
    **measures: float | None,
) -> dict[str, Any]:
    """One score_benchmarks row with host, commit, config hash and time filled in."""
    unknown = set(measures) - set(MEASURES)
    if unknown:
        raise TypeError(f"unknown measures {sorted(unknown)}; expected some of {MEASURES}")

    return {
        "run_id": run_id,
        "benchmark": benchmark,
        "phase": phase,
        "runs": runs,
        **{name: measures.get(name) for name in MEASURES},
        "errors": errors,
        "cache_backend": cache_backend,
        "git_commit": git_commit(),
        "host": socket.gethostname(),
        "config": dict(config),
        "config_hash": config_hash(config),
        "verdict": verdict,
        "details": dict(details) if details is not None else None,
        "created_at": created_at or datetime.now(UTC),
    }


def record_results(engine: Engine, rows: Iterable[Mapping[str, Any]]) -> int:
    """Insert the rows in one transaction and return how many were new.

    A row whose (run_id, benchmark, phase) is already stored is skipped, so re-running the same
    Dagster run writes nothing twice; either every new row lands or none does.
    """
    rows = [dict(row) for row in rows]
    if not rows:
        return 0

    dialect_insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(score_benchmarks).on_conflict_do_nothing(
        index_elements=["run_id", "benchmark", "phase"]
    )
    with engine.begin() as connection:
        result = connection.execute(statement.returning(score_benchmarks.c.id), rows)
        return len(result.fetchall())


def set_verdict(engine: Engine, run_id: str, benchmark: str, verdict: str) -> None:
    """Store a regression verdict on every row of one run of one benchmark."""
    with engine.begin() as connection:
        connection.execute(
            sa.update(score_benchmarks)
            .where(score_benchmarks.c.run_id == run_id, score_benchmarks.c.benchmark == benchmark)
            .values(verdict=verdict)
        )
