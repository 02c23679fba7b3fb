import dagster as dg

from perf_platform.defs.benchmarks.assets import score_benchmark_run, score_benchmarks
from perf_platform.defs.benchmarks.checks import score_regression_check
from perf_platform.defs.benchmarks.schedules import benchmark_score_job, benchmark_score_schedule

defs = dg.Definitions(
    assets=[score_benchmark_run, score_benchmarks],
    asset_checks=[score_regression_check],
    jobs=[benchmark_score_job],
    schedules=[benchmark_score_schedule],
)
