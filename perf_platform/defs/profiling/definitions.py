import dagster as dg

from perf_platform.defs.profiling.assets import request_latency_report, score_uncached_profile

defs = dg.Definitions(assets=[score_uncached_profile, request_latency_report])
