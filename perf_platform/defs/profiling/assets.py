"""Profiling assets: a CPU profile of the scoring model, and latency per endpoint from the logs."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from perf_platform.defs.profiling.latency import (
    EndpointLatency,
    LatencyReport,
    latency_report,
    markdown_table,
    slow_endpoints,
)
from perf_platform.defs.resources import BenchmarkStoreResource
from perf_platform.request_log import flush_request_logs
from perf_platform.results import benchmark_row, record_results
from perf_platform.settings import get_settings
from scripts.capture_profile import FunctionStats, ModuleNotRunnable, capture_profile

SCORE_UNCACHED_WORKLOAD = "perf_platform.defs.profiling.workloads.score_uncached"
PROFILE_BENCHMARK = "profile:score_uncached"
LATENCY_CHECK = "p95_under_threshold"


class ProfileCaptureConfig(dg.Config):
    scores: int = Field(default=50, ge=1, le=100_000, description="feature sets scored")
    features: int = Field(default=16, ge=1, le=1000, description="features in each set")
    iterations: int | None = Field(
        default=None, ge=1, description="model steps per score; SCORE_MODEL_ITERATIONS if unset"
    )
    limit: int = Field(default=20, ge=1, le=200, description="functions shown and stored")


@dg.asset(group_name="profiling", kinds={"python"})
def score_uncached_profile(
    context: dg.AssetExecutionContext,
    config: ProfileCaptureConfig,
    benchmark_store: BenchmarkStoreResource,
) -> dg.MaterializeResult:
    """A CPU profile (cProfile) of the scoring model's uncached path: `compute_score` on many
    random feature sets, as on cache misses.

    The `.prof` file is kept (open it with snakeviz or pstats); the 20 functions with the most
    cumulative time are shown below and stored in `score_benchmarks` as
    `profile:score_uncached` / `capture`.
    """
    from services.scoring.model import MODEL_VERSION

    settings = get_settings()
    iterations = config.iterations or settings.score_model_iterations
    run_id = context.run.run_id
    output = settings.profile_dir / f"score_uncached-{run_id}.prof"
    args = [
        f"--scores={config.scores}",
        f"--features={config.features}",
        f"--iterations={iterations}",
    ]

    try:
        capture = capture_profile(SCORE_UNCACHED_WORKLOAD, output, args, limit=config.limit)
    except ModuleNotRunnable as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    if capture.error or capture.exit_code != 0:
        raise dg.Failure(
            description=f"the workload failed (exit status {capture.exit_code})",
            metadata={"error": dg.MetadataValue.text(capture.error or "")},
        )
    context.log.info(f"event=profile_captured path={output} seconds={capture.seconds:.3f}")

    top_rows = [row.as_row() for row in capture.top]
    workload_config = {
        "workload": SCORE_UNCACHED_WORKLOAD,
        "scores": config.scores,
        "features": config.features,
        "iterations": iterations,
        "model_version": MODEL_VERSION,
    }
    row = benchmark_row(
        run_id=run_id,
        benchmark=PROFILE_BENCHMARK,
        phase="capture",
        runs=config.scores,
        config=workload_config,
        details={"top": top_rows, "prof_path": str(output), "model_version": MODEL_VERSION},
        total_seconds=capture.seconds,
        mean_ms=capture.seconds * 1000 / config.scores,
    )
    record_results(benchmark_store.engine(), [row])

    table = _profile_table(capture.top)
    return dg.MaterializeResult(
        metadata={
            "prof_path": dg.MetadataValue.path(str(output)),
            "profiled_seconds": dg.MetadataValue.float(capture.seconds),
            "ms_per_score_profiled": dg.MetadataValue.float(capture.seconds * 1000 / config.scores),
            "top_functions": dg.MetadataValue.md(table),
            "summary": dg.MetadataValue.md(
                f"Profiled {config.scores} uncached scores ({MODEL_VERSION}, {iterations} "
                f"iterations) in {capture.seconds:.2f}s under cProfile; "
                f"profile in `{output}`.\n\n{table}"
            ),
        }
    )


def _profile_table(top: list[FunctionStats]) -> str:
    lines = [
        "| function | calls | own s | cumulative s |",
        "|---|---:|---:|---:|",
    ]
    for row in top:
        function = row.function.replace("|", "\\|")
        lines.append(f"| `{function}` | {row.ncalls} | {row.tottime_s:.4f} | {row.cumtime_s:.4f} |")
    return "\n".join(lines)


class LatencyReportConfig(dg.Config):
    window_hours: float = Field(
        default=24.0, gt=0, description="report the requests of the last this many hours"
    )
    p95_threshold_ms: float | None = Field(
        default=None, gt=0, description="warn above this p95; LATENCY_P95_THRESHOLD_MS if unset"
    )
    log_dir: str | None = Field(
        default=None, description="folder of the request logs; REQUEST_LOG_DIR if unset"
    )


@dg.asset(
    group_name="profiling",
    kinds={"python"},
    # After the assets whose in-process services send requests, so a full run reports them too.
    deps=["score_benchmark_run", "analytics_sql_vs_in_memory"],
    check_specs=[
        dg.AssetCheckSpec(
            name=LATENCY_CHECK,
            asset="request_latency_report",
            description="Warns, naming them, about endpoints whose p95 latency is over the "
            "threshold (LATENCY_P95_THRESHOLD_MS).",
        )
    ],
)
def request_latency_report(
    context: dg.AssetExecutionContext,
    config: LatencyReportConfig,
    benchmark_store: BenchmarkStoreResource,
) -> dg.MaterializeResult:
    """Latency per service and endpoint, read from the services' request logs.

    Every service logs each request (`add_profiling`) to `REQUEST_LOG_DIR/<service>.jsonl`; this
    reads the last `window_hours` of them and reports the request count and p50/p95/p99 of every
    endpoint (route template), stored in `score_benchmarks` as `latency:<service>` /
    `<METHOD> <route>`. The check warns about endpoints whose p95 is over the threshold.
    """
    settings = get_settings()
    threshold_ms = config.p95_threshold_ms or settings.latency_p95_threshold_ms
    log_dir = Path(config.log_dir) if config.log_dir else settings.request_log_dir
    # Services running in this process (make run) may still hold lines for the writer thread.
    flush_request_logs()

    since = datetime.now(UTC) - timedelta(hours=config.window_hours)
    files = sorted(log_dir.glob("*.jsonl")) if log_dir.is_dir() else []
    report = latency_report(files, since=since)
    context.log.info(
        f"event=latency_report files={len(files)} requests={report.requests} "
        f"endpoints={len(report.endpoints)} skipped_lines={report.skipped_lines}"
    )

    run_config = {"window_hours": config.window_hours, "log_dir": str(log_dir)}
    rows = [_latency_row(context.run.run_id, endpoint, run_config) for endpoint in report.endpoints]
    if rows:
        record_results(benchmark_store.engine(), rows)

    slow = slow_endpoints(report.endpoints, threshold_ms)
    return dg.MaterializeResult(
        metadata=_latency_metadata(report, log_dir, threshold_ms, slow),
        check_results=[_latency_check(report, slow, threshold_ms)],
    )


def _latency_row(run_id: str, endpoint: EndpointLatency, config: dict) -> dict[str, Any]:
    return benchmark_row(
        run_id=run_id,
        benchmark=f"latency:{endpoint.service}",
        phase=endpoint.phase,
        runs=endpoint.count,
        config=config,
        errors=endpoint.server_errors,
        details={
            "method": endpoint.method,
            "route": endpoint.route,
            "max_ms": endpoint.max_ms,
            "status_counts": endpoint.status_counts,
        },
        p50_ms=endpoint.p50_ms,
        p95_ms=endpoint.p95_ms,
        p99_ms=endpoint.p99_ms,
        mean_ms=endpoint.mean_ms,
    )


def _latency_metadata(
    report: LatencyReport, log_dir: Path, threshold_ms: float, slow: list[EndpointLatency]
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "requests": dg.MetadataValue.float(float(report.requests)),
        "endpoints": dg.MetadataValue.float(float(len(report.endpoints))),
        "endpoints_over_threshold": dg.MetadataValue.float(float(len(slow))),
        "p95_threshold_ms": dg.MetadataValue.float(threshold_ms),
        "skipped_lines": dg.MetadataValue.float(float(report.skipped_lines)),
        "log_dir": dg.MetadataValue.path(str(log_dir)),
    }
    for endpoint in report.endpoints:
        # One float per endpoint and percentile, so the UI can plot each over time.
        name = f"{endpoint.service} {endpoint.endpoint}"
        metadata[f"{name} p95_ms"] = dg.MetadataValue.float(endpoint.p95_ms)
        metadata[f"{name} p50_ms"] = dg.MetadataValue.float(endpoint.p50_ms)
        metadata[f"{name} p99_ms"] = dg.MetadataValue.float(endpoint.p99_ms)
        metadata[f"{name} requests"] = dg.MetadataValue.float(float(endpoint.count))

    if report.endpoints:
        table = markdown_table(report.endpoints, threshold_ms)
        summary = (
            f"{report.requests} requests to {len(report.endpoints)} endpoints in "
            f"{len(report.files)} request logs; {len(slow)} over the p95 threshold of "
            f"{threshold_ms:g} ms.\n\n{table}"
        )
        metadata["latency_table"] = dg.MetadataValue.md(table)
    else:
        summary = f"No requests logged in {log_dir} within the window."
    metadata["summary"] = dg.MetadataValue.md(summary)
    return metadata


def _latency_check(
    report: LatencyReport, slow: list[EndpointLatency], threshold_ms: float
) -> dg.AssetCheckResult:
    if not report.endpoints:
        description = "no requests logged in the window"
    elif slow:
        named = "; ".join(
            f"{endpoint.service} {endpoint.endpoint} (p95 {endpoint.p95_ms:.1f} ms, "
            f"{endpoint.count} requests)"
            for endpoint in slow
        )
        description = f"{len(slow)} endpoints over p95 {threshold_ms:g} ms: {named}"
    else:
        description = f"every endpoint's p95 is within {threshold_ms:g} ms"

    return dg.AssetCheckResult(
        check_name=LATENCY_CHECK,
        passed=not slow,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "slow_endpoints": dg.MetadataValue.json(
                [{"service": e.service, "endpoint": e.endpoint, "p95_ms": e.p95_ms} for e in slow]
            ),
            "p95_threshold_ms": dg.MetadataValue.float(threshold_ms),
        },
    )
