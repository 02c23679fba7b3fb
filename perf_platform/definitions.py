"""The Dagster code location: every area's definitions, with the resources they share."""

import dagster as dg

from perf_platform.defs import resources
from perf_platform.defs.benchmarks import definitions as benchmarks

defs = dg.Definitions.merge(resources.defs, benchmarks.defs)
