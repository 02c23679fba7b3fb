"""Helpers for the analytics Dagster tests: materialize on a given database, read metadata."""

from typing import Any

import dagster as dg
from sqlalchemy.engine import URL

from perf_platform.defs.resources import BenchmarkStoreResource, ServiceResource

APP_FACTORY = "services.analytics.app:create_app"


def url_text(url: URL | str) -> str:
    return url.render_as_string(hide_password=False) if isinstance(url, URL) else url


def materialize(
    assets: list[Any],
    database_url: str,
    *,
    service_url: str | None = None,
    run_config: dict | None = None,
    selection: dg.AssetSelection | None = None,
) -> dg.ExecuteInProcessResult:
    """Run the given assets and checks on one database, with the service there too."""
    return dg.materialize(
        assets,
        resources={
            "benchmark_store": BenchmarkStoreResource(database_url=database_url),
            "analytics_service": ServiceResource(app_factory=APP_FACTORY, base_url=service_url),
        },
        run_config=run_config or {},
        selection=selection,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def metadata_of(result: dg.ExecuteInProcessResult, asset_name: str) -> dict[str, Any]:
    [event] = [
        event
        for event in result.get_asset_materialization_events()
        if event.materialization.asset_key == dg.AssetKey(asset_name)
    ]
    return {key: value.value for key, value in event.materialization.metadata.items()}
