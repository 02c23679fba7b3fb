"""The per-query aggregation checks: pass on good data, fail on a deliberately wrong query."""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pytest
import sqlalchemy as sa

from perf_platform.db import make_engine
from perf_platform.defs.analytics.assets import analytics_query_plans
from perf_platform.defs.analytics.catalogue import QUERIES, DataSample
from perf_platform.defs.analytics.checks import analytics_query_checks, check_name
from perf_platform.defs.analytics.plans import explain
from perf_platform.servers import serve_asgi
from perf_platform.settings import Settings
from perf_platform.tables import signals
from perf_platform_tests.defs.analytics.analytics_dagster import materialize, url_text
from scripts.fill_signals import fill_signals
from services.analytics import queries
from services.analytics.app import create_app

END = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.fixture
def filled_postgres(clean_postgres: sa.Engine) -> str:
    fill_signals(clean_postgres, 3_000, seed=9, end=END, days=30)
    return url_text(clean_postgres.url)


@pytest.fixture
def service_url(filled_postgres: str) -> Iterator[str]:
    with serve_asgi(create_app(Settings(database_url=filled_postgres))) as base_url:
        yield base_url


def run_checks(database_url: str, service_url: str, sample_rows: int = 50_000) -> dict:
    """The checks alone: the plans asset they hang on is not materialized again."""
    result = materialize(
        [analytics_query_plans, analytics_query_checks],
        database_url,
        service_url=service_url,
        run_config={"ops": {"analytics_query_checks": {"config": {"sample_rows": sample_rows}}}},
        selection=dg.AssetSelection.all_asset_checks(),
    )
    assert result.success
    return {
        evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()
    }


def test_every_query_passes_on_good_data(filled_postgres, service_url):
    evaluations = run_checks(filled_postgres, service_url)

    assert sorted(evaluations) == sorted(check_name(query) for query in QUERIES)
    for name, evaluation in evaluations.items():
        assert evaluation.passed, (name, evaluation.description)
        assert evaluation.description.endswith("the database aggregates")
    everything = evaluations["summary_all_aggregates_in_sql"].metadata
    assert everything["signals_compared"].value == 3_000.0


def test_a_wrong_hour_bucket_fails_the_hourly_check_only(filled_postgres, service_url, monkeypatch):
    # The deliberate bug: "hour" truncates to the day, as a slip in the bucket mapping would.
    monkeypatch.setitem(queries._POSTGRES_UNITS, "hour", sa.literal_column("'day'"))

    evaluations = run_checks(filled_postgres, service_url)

    hourly = evaluations["hourly_source_last_day_aggregates_in_sql"]
    assert not hourly.passed
    assert "differences from the independent answer" in hourly.description
    assert "is missing from the service's answer" in hourly.metadata["differences"].value
    failed = {name for name, evaluation in evaluations.items() if not evaluation.passed}
    assert failed == {"hourly_source_last_day_aggregates_in_sql"}


def test_a_wrong_sum_fails_every_check(filled_postgres, service_url, monkeypatch):
    # The deliberate bug: values rounded before they are added up.
    honest = queries._measures

    def rounded_sums():  # type: ignore[no-untyped-def]
        measures = honest()
        measures[1] = sa.func.sum(sa.func.round(signals.c.value)).label("sum")
        return measures

    monkeypatch.setattr(queries, "_measures", rounded_sums)

    evaluations = run_checks(filled_postgres, service_url)

    assert not any(evaluation.passed for evaluation in evaluations.values())
    assert " sum: " in evaluations["summary_all_aggregates_in_sql"].metadata["differences"].value


def test_a_failing_endpoint_fails_its_own_checks_not_the_others(
    filled_postgres, service_url, monkeypatch
):
    def broken(_filters):  # type: ignore[no-untyped-def]
        raise RuntimeError("summary is broken")

    monkeypatch.setattr(queries, "summary_statement", broken)

    evaluations = run_checks(filled_postgres, service_url)

    summaries = {name for name in evaluations if name.startswith("summary_")}
    for name, evaluation in evaluations.items():
        assert evaluation.passed is (name not in summaries), name
    assert evaluations["summary_all_aggregates_in_sql"].description.startswith(
        "the service answered 500"
    )


def test_a_large_table_is_checked_on_a_sample_of_the_newest_rows(filled_postgres, service_url):
    evaluations = run_checks(filled_postgres, service_url, sample_rows=500)

    assert all(evaluation.passed for evaluation in evaluations.values())
    # Timestamps in the fill strictly increase, so the newest 500 are exactly 500 rows.
    assert evaluations["summary_all_aggregates_in_sql"].metadata["signals_compared"].value == 500
    assert evaluations["by_source_aggregates_in_sql"].metadata["signals_compared"].value == 500


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_a_plan_that_returns_rows_is_told_from_one_that_aggregates(
    backend, clean_postgres, sqlite_url
):
    engine = clean_postgres if backend == "postgres" else make_engine(sqlite_url)
    summary = QUERIES[0].statement(QUERIES[0].params(DataSample(rows=0)), engine.dialect.name)
    rows_out = sa.select(signals.c.source, signals.c.value)

    with engine.connect() as connection:
        aggregated = explain(connection, summary, actual_max_cost=0)
        not_aggregated = explain(connection, rows_out, actual_max_cost=0)

    assert aggregated.aggregates_in_database is True
    assert not_aggregated.aggregates_in_database is False
    assert not_aggregated.full_scan is True
