"""benchmark_score_job and the nightly schedule that runs it."""

import dagster as dg

from perf_platform.defs.benchmarks.assets import score_benchmark_run, score_benchmarks
from perf_platform.settings import get_settings

benchmark_score_job = dg.define_asset_job(
    name="benchmark_score_job",
    selection=[score_benchmark_run, score_benchmarks],
    description="Measures the scoring service, records the run in score_benchmarks and checks "
    "it for a regression.",
)

benchmark_score_schedule = dg.ScheduleDefinition(
    name="benchmark_score_schedule",
    job=benchmark_score_job,
    cron_schedule=get_settings().benchmark_schedule_cron,
    execution_timezone="UTC",
    # Running from the start: a nightly benchmark that has to be switched on gets forgotten.
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night (02:00 UTC unless BENCHMARK_SCHEDULE_CRON says otherwise).",
)
