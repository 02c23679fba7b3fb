"""The Dagster code location: every area's definitions, with the resources they share."""

import dagster as dg

from perf_platform.defs import resources
from perf_platform.defs.analytics import definitions as analytics
from perf_platform.defs.benchmarks import definitions as benchmarks
from perf_platform.defs.profiling import definitions as profiling

defs = dg.Definitions.merge(resources.defs, benchmarks.defs, analytics.defs, profiling.defs)
