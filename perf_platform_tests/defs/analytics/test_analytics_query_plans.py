"""analytics_query_plans: which queries use an index, which scan, and what to do about it."""

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from perf_platform.db import make_engine
from perf_platform.defs.analytics.assets import analytics_query_plans
from perf_platform.defs.analytics.catalogue import QUERIES
from perf_platform.defs.analytics.plans import normalized_sql
from perf_platform.tables import signals
from perf_platform_tests.defs.analytics.analytics_dagster import materialize, metadata_of
from scripts.fill_signals import fill_signals

END = datetime(2024, 6, 1, tzinfo=UTC)
TS_INDEX = next(index for index in signals.indexes if index.name == "ix_signals_ts")


@pytest.fixture(scope="module")
def plans_url(fresh_postgres_url: str) -> str:
    # 20,000 signals over 30 days: the newest hour holds about 28 of them (0.14 %). The fill
    # ends with ANALYZE, so the planner knows that; an index range over 28 rows then costs a
    # few units against hundreds for a scan, and the choice is the same on every run.
    engine = make_engine(fresh_postgres_url)
    fill_signals(engine, 20_000, seed=1, end=END, days=30)
    engine.dispose()
    return fresh_postgres_url


@pytest.fixture(scope="module")
def plans(plans_url: str) -> dict:
    result = materialize([analytics_query_plans], plans_url)
    assert result.success
    return metadata_of(result, "analytics_query_plans")


def analyze(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("ANALYZE signals"))
    engine.dispose()


def test_a_filtered_query_scans_until_its_index_exists_then_uses_it(plans_url):
    engine = sa.create_engine(plans_url)
    TS_INDEX.drop(engine)
    analyze(plans_url)
    try:
        before = metadata_of(
            materialize([analytics_query_plans], plans_url), "analytics_query_plans"
        )
    finally:
        TS_INDEX.create(engine)
        analyze(plans_url)
        engine.dispose()
    after = metadata_of(materialize([analytics_query_plans], plans_url), "analytics_query_plans")

    scanning, indexed = before["plans"]["summary_last_hour"], after["plans"]["summary_last_hour"]
    assert scanning["full_scan"] is True
    assert scanning["scan_needs_index"] is True
    assert scanning["suggestion"] == "CREATE INDEX ix_signals_ts ON signals (ts) INCLUDE (value)"
    assert before["filtered_queries_scanning"] >= 1
    assert "CREATE INDEX ix_signals_ts" in before["summary"]

    assert indexed["full_scan"] is False
    assert indexed["indexes"] == ["ix_signals_ts"]
    assert indexed["access"] == "index ix_signals_ts"
    assert indexed["suggestion"] == ""


def test_narrow_filtered_queries_read_an_index_range(plans):
    # Each of these keeps under 5 % of the rows. Which index serves them is the planner's call
    # (ts alone, or source then ts); that one does, and nothing scans the table, is ours.
    # daily_name keeps one name in eight, close enough to a scan's cost to be left out.
    narrow = (
        "summary_last_hour",
        "summary_source_last_day",
        "by_name_last_day",
        "hourly_source_last_day",
    )
    for name in narrow:
        entry = plans["plans"][name]
        assert entry["full_scan"] is False, entry
        assert set(entry["indexes"]) <= {"ix_signals_ts", "ix_signals_source_ts"}
        assert entry["access"].startswith("index ix_signals_")


def test_queries_over_every_signal_scan_by_design_without_a_suggestion(plans):
    for name in ("summary_all", "by_source"):
        entry = plans["plans"][name]
        assert entry["full_scan"] is True
        assert entry["scan_needs_index"] is False
        assert entry["suggestion"] == ""
        assert entry["note"] == "reads every signal by design"


def test_every_query_is_explained_and_aggregates_in_the_database(plans):
    entries = plans["plans"]

    assert list(entries) == [query.name for query in QUERIES]
    for entry in entries.values():
        assert entry["aggregates_in_database"] is True
        assert entry["estimated_cost"] > 0
        assert "Aggregate" in entry["plan"]
    assert plans["rows"] == 20_000.0


def test_cheap_queries_are_also_run_for_their_actual_time(plans, plans_url):
    assert all(entry["actual_ms"] is not None for entry in plans["plans"].values())

    never = materialize(
        [analytics_query_plans],
        plans_url,
        run_config={"ops": {"analytics_query_plans": {"config": {"actual_max_cost": 0}}}},
    )
    entries = metadata_of(never, "analytics_query_plans")["plans"]
    assert all(entry["actual_ms"] is None for entry in entries.values())


def test_pg_stat_statements_availability_is_said(plans, plans_url):
    engine = sa.create_engine(plans_url)
    with engine.connect() as connection:
        preload = connection.execute(sa.text("SHOW shared_preload_libraries")).scalar_one()
    engine.dispose()

    if "pg_stat_statements" not in preload:
        expected = (
            "unavailable: pg_stat_statements is not in shared_preload_libraries on this server "
            "(adding it needs a restart)"
        )
        assert plans["pg_stat_statements"] == expected
        assert "Ranking by total time unavailable" in plans["summary"]
    else:
        assert plans["pg_stat_statements"] in {
            "available",
            "unavailable: run CREATE EXTENSION pg_stat_statements in this database to rank queries",
        }


def test_sqlite_plans_show_index_searches_and_scans(sqlite_url):
    engine = make_engine(sqlite_url)
    fill_signals(engine, 3_000, seed=2, end=END, days=30)
    engine.dispose()

    metadata = metadata_of(
        materialize([analytics_query_plans], sqlite_url), "analytics_query_plans"
    )

    entries = metadata["plans"]
    assert entries["summary_last_hour"]["access"] == "index ix_signals_ts"
    assert entries["summary_source_last_day"]["indexes"] == ["ix_signals_source_ts"]
    assert entries["summary_all"]["full_scan"] is True
    assert all(entry["aggregates_in_database"] for entry in entries.values())
    assert all(entry["estimated_cost"] is None for entry in entries.values())
    assert metadata["pg_stat_statements"] == "unavailable: pg_stat_statements is PostgreSQL only"


def test_pg_stat_statements_text_is_matched_to_the_catalogue_query(plans):
    sql = plans["plans"]["hourly_source_last_day"]["sql"]
    # How pg_stat_statements shows the same statement: every constant and parameter as $n.
    recorded = (
        "SELECT date_trunc($1, timezone($2, signals.ts)) AS key, count(*) AS count, "
        "sum(signals.value) AS sum, avg(signals.value) AS avg, min(signals.value) AS min, "
        "max(signals.value) AS max FROM signals WHERE signals.ts >= $3::TIMESTAMP WITH TIME ZONE "
        "AND signals.source = $4::VARCHAR GROUP BY date_trunc($5, timezone($6, signals.ts)) "
        "ORDER BY date_trunc($7, timezone($8, signals.ts)) LIMIT $9::INTEGER OFFSET $10::INTEGER"
    )

    assert normalized_sql(recorded) == normalized_sql(sql)
