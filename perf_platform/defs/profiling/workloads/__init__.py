"""Workloads the profile captures run, each a module runnable with `python -m`."""
