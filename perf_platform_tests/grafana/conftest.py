"""A PostgreSQL database filled like a week of the platform, and Grafana's view of it."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import psycopg
import pytest
from sqlalchemy.engine import URL

from perf_platform.db import make_engine
from perf_platform.definitions import defs
from perf_platform.defs.resources import BenchmarkStoreResource
from perf_platform.results import record_results
from perf_platform_tests.databases import scratch_database
from perf_platform_tests.grafana.history import History, build_history
from perf_platform_tests.grafana.macros import TimeRange
from perf_platform_tests.grafana.provisioning import connect, provisioned_datasources

DATASOURCE_UID = "perf-platform-pg"
# Few requests per phase: the job's numbers only need to exist, not to be precise.
SMALL_RUN = {"ops": {"score_benchmark_run": {"config": {"runs": 20, "warmup": 2}}}}


@dataclass(frozen=True)
class FilledDatabase:
    url: URL
    history: History
    job_run_id: str
    env: dict[str, str]  # what Grafana's environment would hold to reach this database

    @property
    def time_range(self) -> TimeRange:
        # The dashboards' default range, "now-30d" to "now", seen a minute after the job.
        end = datetime.now(UTC) + timedelta(minutes=1)
        return TimeRange(start=end - timedelta(days=30), end=end)


def grafana_env(url: URL) -> dict[str, str]:
    return {
        "GRAFANA_PG_HOST": f"{url.host}:{url.port or 5432}",
        "GRAFANA_PG_DATABASE": url.database or "",
        "GRAFANA_PG_USER": url.username or "",
        "GRAFANA_PG_PASSWORD": url.password or "",
    }


def run_benchmark_score_job(url: URL) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("benchmark_score_job")
    store = BenchmarkStoreResource(database_url=url.render_as_string(hide_password=False))
    return job.execute_in_process(
        run_config=SMALL_RUN,
        instance=dg.DagsterInstance.ephemeral(),
        resources={"benchmark_store": store},
        raise_on_error=False,
    )


@pytest.fixture(scope="session")
def filled_database(postgres_url: URL) -> Iterator[FilledDatabase]:
    """A database of the Grafana tests' own: a week of history, then a real benchmark_score_job
    run on top (its regression check judging it against that history)."""
    with scratch_database(f"{postgres_url.database}_grafana") as url:
        engine = make_engine(url)
        history = build_history()
        record_results(engine, history.rows)
        engine.dispose()

        result = run_benchmark_score_job(url)
        if not result.success:
            failures = [
                event.message for event in result.all_events if event.is_failure and event.message
            ]
            pytest.fail(f"benchmark_score_job failed: {failures}")

        yield FilledDatabase(
            url=url, history=history, job_run_id=result.run_id, env=grafana_env(url)
        )


@pytest.fixture(scope="session")
def datasource(filled_database: FilledDatabase) -> dict[str, Any]:
    """The provisioned data source as Grafana would see it with the test database's environment."""
    return provisioned_datasources(filled_database.env)[DATASOURCE_UID]


@pytest.fixture(scope="session")
def grafana_connection(datasource: dict[str, Any]) -> Iterator[psycopg.Connection]:
    connection = connect(datasource)
    yield connection
    connection.close()
