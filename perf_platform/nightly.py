"""Materialize every asset of the code location in this process and print what came of it."""

import time

import dagster as dg

from perf_platform.settings import get_settings


def run_everything(
    defs: dg.Definitions | None = None, instance: dg.DagsterInstance | None = None
) -> int:
    """Run the code location's assets and checks once; print each summary; 0 when all passed."""
    if defs is None:
        from perf_platform.definitions import defs

    if instance is None:
        # The Makefile sets DAGSTER_HOME, so runs from `make run` show up in `dagster dev`.
        has_home = get_settings().dagster_home is not None
        instance = dg.DagsterInstance.get() if has_home else dg.DagsterInstance.ephemeral()

    if not defs.resolve_all_asset_keys():
        print("no assets are defined yet: nothing to run")
        return 0

    job = defs.resolve_implicit_global_asset_job_def()
    started = time.perf_counter()
    # Dagster's console logger at INFO: the assets' own lines, not every engine event.
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False)
    elapsed = time.perf_counter() - started

    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        summary = materialization.metadata.get("summary") if materialization else None
        if summary is not None:
            print(f"== {materialization.asset_key.to_user_string()}")
            print(summary.value)

    failed_checks = 0
    for evaluation in result.get_asset_check_evaluations():
        verdict = "passed" if evaluation.passed else f"FAILED ({evaluation.severity.value})"
        description = f": {evaluation.description}" if evaluation.description else ""
        print(
            f"check {evaluation.check_name} on {evaluation.asset_key.to_user_string()} {verdict}"
            f"{description}"
        )
        failed_checks += not evaluation.passed

    for failure in result.get_step_failure_events():
        error = failure.step_failure_data.error
        message = error.message.strip().splitlines()[0] if error else "unknown error"
        print(f"step {failure.step_key} failed: {message}")

    outcome = "succeeded" if result.success else "FAILED"
    print(f"run {result.run_id} {outcome} in {elapsed:.1f}s ({failed_checks} checks failed)")
    return 0 if result.success else 1
