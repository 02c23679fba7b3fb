"""perf-platform: nightly performance measurement for a fleet of Python services."""
