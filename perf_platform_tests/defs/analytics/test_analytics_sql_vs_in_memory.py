"""The timing asset, the demo signals, and the whole analytics area on the embedded default."""

from datetime import UTC, datetime

import dagster as dg
import pytest
import sqlalchemy as sa

from perf_platform.db import make_engine
from perf_platform.definitions import defs
from perf_platform.defs.analytics.assets import (
    analytics_demo_signals,
    analytics_query_plans,
    analytics_sql_vs_in_memory,
)
from perf_platform.defs.analytics.catalogue import QUERIES
from perf_platform.defs.analytics.checks import analytics_query_checks, check_name
from perf_platform.settings import get_settings
from perf_platform.tables import score_benchmarks, signals
from perf_platform_tests.defs.analytics.analytics_dagster import materialize, metadata_of, url_text
from scripts.fill_signals import fill_signals

SMALL_TIMING = {
    "ops": {"analytics_sql_vs_in_memory": {"config": {"sql_runs": 3, "in_memory_runs": 1}}}
}


@pytest.fixture
def database_in_settings(monkeypatch):  # type: ignore[no-untyped-def]
    """Point PERF_PLATFORM_DATABASE_URL at a database, so the service starts in-process on it."""

    def point_at(url: str) -> str:
        monkeypatch.setenv("PERF_PLATFORM_DATABASE_URL", url)
        get_settings.cache_clear()
        return url

    yield point_at
    get_settings.cache_clear()


def count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_each_query_is_timed_both_ways_and_recorded(clean_postgres, database_in_settings):
    url = database_in_settings(url_text(clean_postgres.url))
    fill_signals(clean_postgres, 2_000, seed=4, end=datetime(2024, 6, 1, tzinfo=UTC))

    result = materialize([analytics_sql_vs_in_memory], url, run_config=SMALL_TIMING)

    assert result.success
    with clean_postgres.connect() as connection:
        rows = connection.execute(sa.select(score_benchmarks)).all()
    expected = {
        (f"analytics:{query.name}", phase) for query in QUERIES for phase in ("sql", "in_memory")
    }
    assert {(row.benchmark, row.phase) for row in rows} == expected
    for row in rows:
        assert row.run_id == result.run_id
        assert row.runs == (3 if row.phase == "sql" else 1)
        assert row.p50_ms > 0
        assert row.details["rows"] == 2_000
        assert row.details["answers_agree"] is True
        assert row.config["dialect"] == "postgresql"
    metadata = metadata_of(result, "analytics_sql_vs_in_memory")
    assert metadata["rows_recorded"] == 14.0
    assert "| by_source |" in metadata["summary"]


def test_demo_signals_fill_only_an_empty_table(sqlite_url):
    config = {"ops": {"analytics_demo_signals": {"config": {"demo_rows": 300}}}}

    first = materialize([analytics_demo_signals], sqlite_url, run_config=config)
    second = materialize([analytics_demo_signals], sqlite_url, run_config=config)

    assert metadata_of(first, "analytics_demo_signals")["rows_added"] == 300.0
    assert metadata_of(second, "analytics_demo_signals")["rows_added"] == 0.0
    assert count(make_engine(sqlite_url), signals) == 300


def test_the_whole_area_runs_on_the_embedded_default(sqlite_url, database_in_settings):
    database_in_settings(sqlite_url)
    config = {
        "ops": {
            **SMALL_TIMING["ops"],
            "analytics_demo_signals": {"config": {"demo_rows": 1_500}},
        }
    }

    result = materialize(
        [
            analytics_demo_signals,
            analytics_query_plans,
            analytics_sql_vs_in_memory,
            analytics_query_checks,
        ],
        sqlite_url,
        run_config=config,
    )

    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert sorted(e.check_name for e in evaluations) == sorted(check_name(q) for q in QUERIES)
    assert all(evaluation.passed for evaluation in evaluations), [
        evaluation.description for evaluation in evaluations if not evaluation.passed
    ]
    assert count(make_engine(sqlite_url), score_benchmarks) == 2 * len(QUERIES)


def test_the_code_location_holds_the_analytics_assets_and_checks():
    graph = defs.resolve_asset_graph()

    for name in ("analytics_demo_signals", "analytics_query_plans", "analytics_sql_vs_in_memory"):
        assert dg.AssetKey(name) in graph.get_all_asset_keys()
    check_keys = {key.name for key in graph.asset_check_keys}
    assert {check_name(query) for query in QUERIES} <= check_keys
