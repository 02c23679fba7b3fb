"""Dagster definitions, one folder per area; perf_platform/definitions.py gathers them."""
