import dagster as dg

from perf_platform.defs.analytics.assets import (
    analytics_demo_signals,
    analytics_query_plans,
    analytics_sql_vs_in_memory,
)
from perf_platform.defs.analytics.checks import analytics_query_checks

defs = dg.Definitions(
    assets=[analytics_demo_signals, analytics_query_plans, analytics_sql_vs_in_memory],
    asset_checks=[analytics_query_checks],
)
