"""The scoring benchmark as assets: one run measured, then recorded in score_benchmarks."""

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from perf_platform.defs.resources import BenchmarkStoreResource, ServiceResource
from perf_platform.results import benchmark_row, record_results

if TYPE_CHECKING:
    from scripts.benchmark_score import BenchmarkResult

BENCHMARK = "score"


class ScoreBenchmarkConfig(dg.Config):
    runs: int = Field(default=100, ge=1, le=100_000, description="requests in each phase")
    warmup: int = Field(default=10, ge=0, description="requests before each phase, not counted")


@dg.asset(group_name="benchmarks", kinds={"python"})
def score_benchmark_run(
    context: dg.AssetExecutionContext,
    config: ScoreBenchmarkConfig,
    scoring_service: ServiceResource,
) -> dg.Output[list[dict[str, Any]]]:
    """One run of `scripts/benchmark_score.py` against the scoring service.

    Measures `/score` with every request missing the cache (uncached), then with every request
    hitting it (cached), and a trivial endpoint of the same service as the floor. The numbers are
    plotted over time in the metadata; `score_benchmarks` records them.
    """
    from scripts import benchmark_score

    # Quiet: the report goes to the UI as this asset's summary instead.
    argv = ["--url", "", "--runs", str(config.runs), "--warmup", str(config.warmup), "--quiet"]
    with scoring_service.running() as base_url:
        argv[1] = base_url
        context.log.info(f"event=benchmark_start url={base_url} runs={config.runs}")
        try:
            result = benchmark_score.main(argv)
        except benchmark_score.PhaseCheckError as exc:
            # A phase that is not what it claims is no measurement; measuring again won't help.
            raise dg.Failure(description=str(exc), allow_retries=False) from exc

    run_id = context.run.run_id
    measured_at = datetime.now(UTC)
    measured_config = {**result.config, "cache_backend": result.cache_backend}
    details = {
        "speedup": result.speedup,
        "floor_p50_ms": result.floor_p50_ms,
        "model_version": result.model_version,
    }
    rows = [
        benchmark_row(
            run_id=run_id,
            benchmark=BENCHMARK,
            phase=phase.phase,
            runs=phase.runs,
            config=measured_config,
            errors=phase.errors,
            cache_backend=result.cache_backend,
            details=details,
            created_at=measured_at,
            total_seconds=phase.total_seconds,
            p50_ms=phase.p50_ms,
            p95_ms=phase.p95_ms,
            p99_ms=phase.p99_ms,
            mean_ms=phase.mean_ms,
            stddev_ms=phase.stddev_ms,
        )
        for phase in (result.uncached, result.cached)
    ]

    return dg.Output(rows, metadata=_run_metadata(result))


def _run_metadata(result: "BenchmarkResult") -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for phase in (result.uncached, result.cached):
        for measure in ("p50_ms", "p95_ms", "p99_ms", "mean_ms", "total_seconds"):
            name = f"{phase.phase}_{measure}"
            metadata[name] = dg.MetadataValue.float(float(getattr(phase, measure)))
    metadata["speedup"] = dg.MetadataValue.float(float(result.speedup))
    metadata["floor_p50_ms"] = dg.MetadataValue.float(float(result.floor_p50_ms))
    metadata["cached_over_floor"] = dg.MetadataValue.float(
        float(result.cached.p50_ms / result.floor_p50_ms)
    )
    metadata["cache_backend"] = dg.MetadataValue.text(result.cache_backend)
    metadata["summary"] = dg.MetadataValue.md(_summary(result))
    return metadata


def _summary(result: "BenchmarkResult") -> str:
    uncached, cached = result.uncached, result.cached
    lines = [
        f"Uncached: {uncached.total_seconds:.2f}s for {uncached.runs} runs",
        f"Cached:   {cached.total_seconds:.2f}s for {cached.runs} runs",
        "",
        "| phase | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|",
    ]
    for phase in (uncached, cached):
        lines.append(
            f"| {phase.phase} | {phase.p50_ms:.3f} | {phase.p95_ms:.3f} | {phase.p99_ms:.3f} "
            f"| {phase.errors} |"
        )
    lines += [
        "",
        f"speedup {result.speedup:.1f}x, floor p50 {result.floor_p50_ms:.3f} ms "
        f"(cached p50 {cached.p50_ms / result.floor_p50_ms:.2f}x the floor), "
        f"cache {result.cache_backend}, model {result.model_version}",
    ]
    return "\n".join(lines)


@dg.asset(
    group_name="benchmarks",
    kinds={"sql"},
    # Only the write is retried, never the measurement: a dropped connection costs a second.
    retry_policy=dg.RetryPolicy(max_retries=3, delay=0.5, backoff=dg.Backoff.EXPONENTIAL),
)
def score_benchmarks(
    context: dg.AssetExecutionContext,
    score_benchmark_run: list[dict[str, Any]],
    benchmark_store: BenchmarkStoreResource,
) -> dg.MaterializeResult:
    """The `score_benchmarks` table: every benchmark run, one row per phase.

    Grafana's panels and the regression check read it. A run's rows land together or not at all,
    and writing the same run again adds nothing.
    """
    engine = benchmark_store.engine()
    try:
        inserted = record_results(engine, score_benchmark_run)
    except DBAPIError as exc:
        if not _is_transient(exc):
            raise dg.Failure(
                description=f"writing score_benchmarks failed: {exc.orig}", allow_retries=False
            ) from exc
        context.log.warning(f"event=write_failed transient=true error={str(exc.orig)!r}")
        raise

    run_ids = sorted({row["run_id"] for row in score_benchmark_run})
    context.log.info(f"event=rows_written inserted={inserted} run_ids={run_ids}")
    return dg.MaterializeResult(
        metadata={
            "rows_inserted": dg.MetadataValue.int(inserted),
            "measured_run_id": dg.MetadataValue.text(",".join(run_ids)),
            "database": dg.MetadataValue.text(engine.url.render_as_string(hide_password=True)),
        }
    )


def _is_transient(exc: DBAPIError) -> bool:
    # Connection-level failures (dropped, reset, server restarting) are worth another try.
    return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
