"""The nightly regression check: is this run of the scoring benchmark slower than its history?"""

from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from perf_platform.defs.benchmarks.assets import BENCHMARK, score_benchmarks
from perf_platform.defs.resources import BenchmarkStoreResource
from perf_platform.regression import Assessment, RegressionRule, RunSample, Verdict, assess
from perf_platform.results import set_verdict
from perf_platform.tables import score_benchmarks as table

RULE = RegressionRule()


@dg.asset_check(asset=score_benchmarks, name="score_regression_check")
def score_regression_check(benchmark_store: BenchmarkStoreResource) -> dg.AssetCheckResult:
    """Compares the newest scoring benchmark run with the last runs of the same configuration on
    the same host (median and MAD of each number, and the uncached/cached ratio measured within
    the run so that a slower host is not taken for slower code). Fails with severity ERROR on a
    confirmed regression; a run with a wide spread within itself is marked noisy instead."""
    engine = benchmark_store.engine()
    with engine.connect() as connection:
        latest = _latest_run(connection)
        if latest is None:
            return dg.AssetCheckResult(
                passed=True, description="no scoring benchmark run recorded yet"
            )
        history = _history(connection, latest)

    current = _sample(latest["phases"])
    assessment = assess(current, [_sample(run) for run in history], RULE)
    set_verdict(engine, latest["run_id"], BENCHMARK, assessment.verdict.value)

    return dg.AssetCheckResult(
        passed=assessment.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{assessment.verdict.value}: {assessment.reason}",
        metadata=_metadata(latest["run_id"], current, assessment),
    )


def _latest_run(connection: Connection) -> dict[str, Any] | None:
    newest = connection.execute(
        sa.select(table.c.run_id, table.c.host, table.c.config_hash, table.c.created_at)
        .where(table.c.benchmark == BENCHMARK)
        .order_by(table.c.created_at.desc(), table.c.id.desc())
        .limit(1)
    ).first()
    if newest is None:
        return None

    phases = _phases(connection, table.c.run_id == newest.run_id)
    return {**newest._asdict(), "phases": phases[newest.run_id]}


def _history(connection: Connection, latest: dict[str, Any]) -> list[dict[str, dict]]:
    """Earlier runs of this configuration on this host, oldest first; noisy runs left out."""
    earlier_runs = (
        sa.select(table.c.run_id, sa.func.max(table.c.created_at).label("at"))
        .where(
            table.c.benchmark == BENCHMARK,
            table.c.host == latest["host"],
            table.c.config_hash == latest["config_hash"],
            table.c.run_id != latest["run_id"],
            table.c.created_at < latest["created_at"],
            sa.or_(table.c.verdict.is_(None), table.c.verdict != Verdict.NOISY.value),
        )
        .group_by(table.c.run_id)
        .order_by(sa.literal_column("at").desc())
        .limit(RULE.window)
        .subquery()
    )
    run_ids = connection.execute(sa.select(earlier_runs.c.run_id, earlier_runs.c.at)).all()
    order = [row.run_id for row in sorted(run_ids, key=lambda row: row.at)]
    phases = _phases(connection, table.c.run_id.in_(order))
    return [phases[run_id] for run_id in order if {"uncached", "cached"} <= phases[run_id].keys()]


def _phases(connection: Connection, condition: sa.ColumnElement[bool]) -> dict[str, dict]:
    rows = connection.execute(
        sa.select(table.c.run_id, table.c.phase, table.c.p50_ms, table.c.p95_ms).where(
            table.c.benchmark == BENCHMARK, condition
        )
    ).all()
    by_run: dict[str, dict] = {}
    for row in rows:
        by_run.setdefault(row.run_id, {})[row.phase] = row
    return by_run


def _sample(phases: dict[str, Any]) -> RunSample:
    uncached, cached = phases["uncached"], phases["cached"]
    return RunSample(
        uncached_p50_ms=uncached.p50_ms,
        cached_p50_ms=cached.p50_ms,
        uncached_spread=(uncached.p95_ms - uncached.p50_ms) / uncached.p50_ms,
        cached_spread=(cached.p95_ms - cached.p50_ms) / cached.p50_ms,
    )


def _metadata(run_id: str, current: RunSample, assessment: Assessment) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "verdict": dg.MetadataValue.text(assessment.verdict.value),
        "run_id": dg.MetadataValue.text(run_id),
        "history_runs": dg.MetadataValue.int(assessment.history_size),
        "uncached_p50_ms": dg.MetadataValue.float(current.uncached_p50_ms),
        "cached_p50_ms": dg.MetadataValue.float(current.cached_p50_ms),
        "uncached_cached_ratio": dg.MetadataValue.float(current.ratio),
    }
    for name, change in assessment.changes.items():
        if name == "ratio_down":
            continue
        label = "ratio" if name == "ratio_up" else name
        metadata[f"{label}_history_median"] = dg.MetadataValue.float(abs(change.median))
        metadata[f"{label}_history_mad"] = dg.MetadataValue.float(change.mad)
        metadata[f"{label}_change_pct"] = dg.MetadataValue.float(100 * change.relative_change)
    return metadata
