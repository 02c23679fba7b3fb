import subprocess
import sys
from datetime import UTC, datetime

import dagster as dg

from perf_platform.definitions import defs
from perf_platform.defs.benchmarks.schedules import benchmark_score_schedule


def test_the_nightly_schedule_runs_benchmark_score_job_at_two_utc():
    assert benchmark_score_schedule.cron_schedule == "0 2 * * *"
    assert benchmark_score_schedule.execution_timezone == "UTC"
    assert benchmark_score_schedule.job_name == "benchmark_score_job"
    assert benchmark_score_schedule.default_status is dg.DefaultScheduleStatus.RUNNING


def test_the_schedule_evaluates_to_a_run_of_the_job():
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 12, 4, 2, 0, tzinfo=UTC)
    )

    data = benchmark_score_schedule.evaluate_tick(context)

    # The request names no other job, so it runs the schedule's own: benchmark_score_job.
    assert len(data.run_requests) == 1
    assert data.run_requests[0].job_name is None
    assert data.run_requests[0].tags["dagster/schedule_name"] == "benchmark_score_schedule"


def test_the_code_location_has_the_job_the_schedule_and_the_check():
    job = defs.resolve_job_def("benchmark_score_job")
    schedule = defs.resolve_schedule_def("benchmark_score_schedule")
    graph = defs.resolve_asset_graph()

    assert schedule.job_name == job.name
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == {
        "score_benchmark_run",
        "score_benchmarks",
    }
    assert dg.AssetCheckKey(dg.AssetKey("score_benchmarks"), "score_regression_check") in (
        graph.asset_check_keys
    )


def test_the_schedule_time_can_be_overridden_from_the_environment():
    code = (
        "from perf_platform.defs.benchmarks.schedules import benchmark_score_schedule as s;"
        "print(s.cron_schedule)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"BENCHMARK_SCHEDULE_CRON": "30 3 * * 1-5", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "30 3 * * 1-5"
