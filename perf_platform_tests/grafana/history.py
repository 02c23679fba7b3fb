"""A week of measurements for the dashboards to show, next to the real benchmark_score_job run.

The job contributes tonight's scoring run; these rows are the nights before it and the other
areas' rows (analytics, profile captures, latency reports), written through the shared
`record_results` exactly as those areas write them. The numbers are chosen so that each panel has
an answer a test can check: one run flagged as a regression, a second host, two profile captures
and two latency reports of which only the newer may show.
"""

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from perf_platform.results import benchmark_row

OTHER_HOST = "bench-02.perf.internal"
REGRESSION_RUN = "history-score-d2"
ANALYTICS_ENDPOINTS = ("analytics:summary", "analytics:aggregate_by_source")
ANALYTICS_REGRESSION = (2, "analytics:aggregate_by_source")
PROFILE_WORKLOAD = "profile:score_uncached"
LATENCY_REPORT = {
    # service: {route: (requests, p50, p95, p99)}
    "latency:scoring": {
        "POST /score": (400, 38.0, 61.0, 88.0),
        "GET /healthz": (40, 0.4, 0.9, 1.2),
    },
    "latency:analytics": {
        "GET /aggregate": (120, 55.0, 140.0, 210.0),
        "GET /summary": (150, 9.0, 21.0, 34.0),
    },
}


@dataclass(frozen=True)
class History:
    now: datetime
    host: str
    rows: list[dict[str, Any]]
    newest_capture_top: list[dict[str, Any]]


def build_history(now: datetime | None = None) -> History:
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    host = socket.gethostname()
    newest_top = _profile_top("new", scale=1.0)
    rows = [
        *_score_runs(now, host),
        *_analytics_runs(now),
        *_profile_captures(now, newest_top),
        *_latency_reports(now),
    ]
    return History(now=now, host=host, rows=rows, newest_capture_top=newest_top)


def _night(now: datetime, days_ago: int) -> datetime:
    return now - timedelta(days=days_ago, hours=1)


def _score_runs(now: datetime, host: str) -> Iterator[dict[str, Any]]:
    config = {"runs": 100, "warmup": 10, "cache_backend": "redis"}
    nights = [
        # (days ago, host, uncached p50, cached p50, verdict)
        (6, host, 41.0, 2.1, "insufficient_history"),
        (5, host, 40.2, 2.0, "insufficient_history"),
        (5, OTHER_HOST, 52.0, 2.9, "insufficient_history"),
        (4, host, 40.8, 2.2, "insufficient_history"),
        (4, OTHER_HOST, 51.1, 3.0, "insufficient_history"),
        (3, host, 39.9, 2.1, "insufficient_history"),
        (2, host, 40.5, 7.9, "regression"),
        (1, host, 40.1, 2.0, "ok"),
    ]
    for days_ago, run_host, uncached_p50, cached_p50, verdict in nights:
        run_id = REGRESSION_RUN if verdict == "regression" else f"history-score-d{days_ago}"
        if run_host != host:
            run_id += "-b"
        details = {"speedup": uncached_p50 / cached_p50, "floor_p50_ms": 0.9}
        for phase, p50 in (("uncached", uncached_p50), ("cached", cached_p50)):
            row = benchmark_row(
                run_id=run_id,
                benchmark="score",
                phase=phase,
                runs=100,
                config=config,
                cache_backend="redis",
                verdict=verdict,
                details=details,
                # The other host runs two hours later, in an hour of its own.
                created_at=_night(now, days_ago) + timedelta(hours=2 if run_host != host else 0),
                total_seconds=p50 * 100 / 1000,
                p50_ms=p50,
                p95_ms=p50 * 1.4,
                p99_ms=p50 * 1.9,
                mean_ms=p50 * 1.1,
                stddev_ms=p50 * 0.2,
            )
            yield {**row, "host": run_host}


def _analytics_runs(now: datetime) -> Iterator[dict[str, Any]]:
    for days_ago in (3, 2, 1):
        for number, endpoint in enumerate(ANALYTICS_ENDPOINTS, start=1):
            in_memory_p50 = (4.0 * number + days_ago * 0.1) * 9
            # Two nights ago the SQL of one endpoint got three times slower, and was flagged.
            flagged = (days_ago, endpoint) == ANALYTICS_REGRESSION
            sql_p50 = in_memory_p50 / (3 if flagged else 9)
            for phase, p50 in (("sql", sql_p50), ("in_memory", in_memory_p50)):
                yield benchmark_row(
                    run_id=f"history-analytics-d{days_ago}",
                    benchmark=endpoint,
                    phase=phase,
                    runs=50,
                    config={"signals": 200_000},
                    verdict="regression" if flagged else "ok",
                    created_at=_night(now, days_ago),
                    p50_ms=p50,
                    p95_ms=p50 * 1.3,
                    p99_ms=p50 * 1.6,
                )


def _profile_top(tag: str, *, scale: float) -> list[dict[str, Any]]:
    return [
        {
            "function": f"services/scoring/model.py:{10 + rank}({tag}_step_{rank})",
            "ncalls": 1000 * (rank + 1),
            "tottime_s": round(0.02 * scale * (20 - rank), 6),
            "cumtime_s": round(0.1 * scale * (20 - rank), 6),
        }
        for rank in range(20)
    ]


def _profile_captures(now: datetime, newest_top: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for days_ago, top in ((2, _profile_top("old", scale=1.5)), (1, newest_top)):
        yield benchmark_row(
            run_id=f"history-profile-d{days_ago}",
            benchmark=PROFILE_WORKLOAD,
            phase="capture",
            runs=1,
            config={"workload": "score_uncached"},
            details={"top": top, "prof_path": f"data/profiles/score_uncached-d{days_ago}.prof"},
            created_at=_night(now, days_ago),
        )


def _latency_reports(now: datetime) -> Iterator[dict[str, Any]]:
    for days_ago, factor in ((2, 3.0), (1, 1.0)):
        for service, routes in LATENCY_REPORT.items():
            for route, (requests, p50, p95, p99) in routes.items():
                yield benchmark_row(
                    run_id=f"history-latency-d{days_ago}",
                    benchmark=service,
                    phase=route,
                    runs=requests,
                    config={"source": "request logs"},
                    created_at=_night(now, days_ago),
                    p50_ms=p50 * factor,
                    p95_ms=p95 * factor,
                    p99_ms=p99 * factor,
                )
