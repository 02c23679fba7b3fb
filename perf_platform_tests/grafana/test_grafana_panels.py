"""Every query of every dashboard, macros expanded the way Grafana does, run on PostgreSQL filled by
a real benchmark_score_job run and a week of history: the rows and columns each panel needs."""

import dataclasses
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from perf_platform.tables import score_benchmarks
from perf_platform_tests.grafana.conftest import FilledDatabase
from perf_platform_tests.grafana.history import (
    ANALYTICS_ENDPOINTS,
    OTHER_HOST,
    PROFILE_WORKLOAD,
    REGRESSION_RUN,
)
from perf_platform_tests.grafana.macros import (
    ALL_VALUE,
    BackendQuery,
    Dashboard,
    TimeRange,
    Variable,
    interpolate,
)
from perf_platform_tests.grafana.provisioning import (
    PanelQuery,
    Result,
    dashboard_files,
    dashboard_queries,
    iter_panels,
    resolve_variables,
    run_sql,
)

SCORE = "perf-score-benchmarks"
ANALYTICS = "perf-analytics-aggregation"
PROFILES = "perf-profiles-endpoints"
HOURLY = timedelta(hours=1)


def columns(names: str) -> set[str]:
    return set(names.split())


# What each panel reads from its query: the exact columns, by dashboard and panel title.
PANEL_COLUMNS = {
    (SCORE, "Latest run: p50 per phase"): {"phase", "p50_ms"},
    (SCORE, "Latest speedup from the cache"): {"speedup"},
    (SCORE, "Latest verdict"): {"verdict"},
    (SCORE, "Runs in range"): {"runs"},
    (SCORE, "Latest run"): columns(
        "time phase runs p50_ms p95_ms p99_ms mean_ms stddev_ms errors floor_p50_ms speedup "
        "cache_backend git_commit host run"
    ),
    (SCORE, "Latency, $phase"): {"time", "p50", "p95", "p99"},
    (SCORE, "Speedup from the cache"): {"time", "speedup"},
    (SCORE, "p50 against its floor"): {"time", "uncached p50", "cached p50", "floor p50"},
    (SCORE, "Runs the regression check flagged"): columns(
        "time run git_commit host uncached_p50_ms cached_p50_ms speedup"
    ),
    (ANALYTICS, "${benchmark}: SQL against in-memory"): {"time", "metric", "p50"},
    (ANALYTICS, "In-memory time over SQL time"): {"time", "metric", "ratio"},
    (ANALYTICS, "Latest run per endpoint"): columns(
        "time endpoint sql_p50_ms in_memory_p50_ms sql_p95_ms in_memory_p95_ms ratio"
    ),
    (PROFILES, "Top functions of the latest $benchmark capture"): columns(
        "function ncalls tottime_ms cumtime_ms"
    ),
    (PROFILES, "Cumulative time, top 10 functions"): {"function", "cumtime_ms"},
    (PROFILES, "Slowest routes (latest latency report)"): columns(
        "service route requests errors p50_ms p95_ms p99_ms time"
    ),
    (PROFILES, "Route p95 over time"): {"time", "metric", "p95"},
}
# Grafana's SQL annotations read a time, a text and comma-separated tags.
ANNOTATION_COLUMNS = {"time", "text", "tags"}
NUMERIC_TYPES = {"int2", "int4", "int8", "float4", "float8", "numeric"}
LATENCY_COLUMN = re.compile(r"_ms$|^p\d\d$| p\d\d$")
TEXT_TYPES = {"text", "varchar", "bpchar"}
TIME_TYPES = {"timestamptz", "timestamp"} | NUMERIC_TYPES


def _static_queries() -> list[tuple[str, dict[str, Any], PanelQuery]]:
    """Every query, found without a database: repeated panels are expanded inside the test."""
    found = []
    for dashboard in dashboard_files().values():
        empty = Dashboard(
            variables={
                spec["name"]: Variable(spec["name"], current="")
                for spec in dashboard["templating"]["list"]
            }
        )
        for query in dashboard_queries(dashboard["uid"], _without_repeats(dashboard), empty):
            found.append((dashboard["uid"], dashboard, query))
    return found


def _without_repeats(dashboard: Mapping[str, Any]) -> dict[str, Any]:
    panels = [{k: v for k, v in p.items() if k != "repeat"} for p in dashboard["panels"]]
    return {**dashboard, "panels": panels}


STATIC_QUERIES = _static_queries()


class GrafanaView:
    """Runs a dashboard's queries as Grafana would for one time range and variable selection."""

    def __init__(
        self,
        connection: psycopg.Connection,
        dashboard: Mapping[str, Any],
        time_range: TimeRange,
        interval: timedelta = HOURLY,
        selection: Mapping[str, str | list[str]] | None = None,
    ) -> None:
        self.connection = connection
        self.dashboard = dashboard
        self.backend = BackendQuery(time_range=time_range, interval=interval)
        resolved = dict(resolve_variables(dashboard, self.backend, self.execute).variables)
        for name, value in (selection or {}).items():
            resolved[name] = dataclasses.replace(resolved[name], current=value)
        self.variables = Dashboard(variables=resolved)

    def execute(self, sql: str) -> Result:
        return run_sql(self.connection, sql)

    def queries(self) -> list[PanelQuery]:
        return dashboard_queries(self.dashboard["uid"], self.dashboard, self.variables)

    def run(self, query: PanelQuery) -> Result:
        scope = Dashboard(variables=self.variables.variables, scoped=query.scoped)
        return self.execute(interpolate(query.raw_sql, scope, self.backend))

    def panel(self, title: str, **scoped: str) -> Result:
        [query] = [
            q
            for q in self.queries()
            if q.kind == "panel"
            and q.title == title
            and all(q.scoped.get(k) == v for k, v in scoped.items())
        ]
        return self.run(query)

    def annotations(self) -> Result:
        [query] = [q for q in self.queries() if q.kind == "annotation"]
        return self.run(query)


def view(filled: FilledDatabase, connection, uid: str, **kwargs: Any) -> GrafanaView:
    [dashboard] = [d for d in dashboard_files().values() if d["uid"] == uid]
    return GrafanaView(connection, dashboard, filled.time_range, **kwargs)


@pytest.mark.parametrize(
    ("uid", "dashboard", "static"), STATIC_QUERIES, ids=[q.label for _, _, q in STATIC_QUERIES]
)
def test_every_query_returns_the_columns_its_panel_reads(
    uid, dashboard, static, filled_database, grafana_connection
):
    grafana = GrafanaView(grafana_connection, dashboard, filled_database.time_range)
    runs = [
        query
        for query in grafana.queries()
        if (query.kind, query.title, query.raw_sql) == (static.kind, static.title, static.raw_sql)
    ]
    assert runs, f"{static.label} not found with the resolved variables"

    for query in runs:
        result = grafana.run(query)

        assert result.rows, f"{query.label} returned no rows"
        if query.kind == "variable":
            assert len(result.columns) == 1, query.label
        elif query.kind == "annotation":
            assert set(result.columns) == ANNOTATION_COLUMNS
            assert _type(result, "time") == "timestamptz"
        else:
            assert set(result.columns) == PANEL_COLUMNS[(uid, query.title)], query.label
            _check_panel_fields(query, result)


def _type(result: Result, column: str) -> str:
    return result.type_names[result.columns.index(column)]


def _unit(panel: Mapping[str, Any], column: str) -> str | None:
    unit = panel["fieldConfig"]["defaults"].get("unit")
    for override in panel["fieldConfig"].get("overrides", []):
        if override["matcher"] == {"id": "byName", "options": column}:
            for prop in override["properties"]:
                unit = prop["value"] if prop["id"] == "unit" else unit
    return unit


def _check_panel_fields(query: PanelQuery, result: Result) -> None:
    panel = query.panel
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        if override["matcher"]["id"] == "byName":
            assert override["matcher"]["options"] in result.columns, query.label

    fields = panel.get("options", {}).get("reduceOptions", {}).get("fields", "")
    if fields:
        pattern = re.compile(fields.strip("/"))
        assert any(pattern.search(name) for name in result.columns), query.label

    for name in result.columns:
        if LATENCY_COLUMN.search(name):
            assert _unit(panel, name) == "ms", f"{query.label}: {name} is a latency"

    if query.format == "time_series":
        assert _type(result, "time") in TIME_TYPES, query.label
        times = result.column("time")
        assert times == sorted(times), f"{query.label}: Grafana needs rows in time order"
        values = [name for name in result.columns if name != "time"]
        assert any(_type(result, name) in NUMERIC_TYPES for name in values), query.label
        assert all(_type(result, name) in NUMERIC_TYPES | TEXT_TYPES for name in values)


def test_every_panel_query_has_its_columns_specified():
    panels = {
        (dashboard["uid"], panel["title"])
        for dashboard in dashboard_files().values()
        for panel in iter_panels(dashboard["panels"])
        if panel.get("targets")
    }

    assert panels == set(PANEL_COLUMNS)


# -- what the panels show ---------------------------------------------------------------------


def test_the_latest_run_panels_show_the_job_run(filled_database, grafana_connection):
    grafana = view(filled_database, grafana_connection, SCORE)
    stored = _stored_rows(filled_database, filled_database.job_run_id)

    latest = grafana.panel("Latest run").records()
    verdict = grafana.panel("Latest verdict").column("verdict")

    assert {row["run"] for row in latest} == {filled_database.job_run_id[:12]}
    assert [row["phase"] for row in latest] == ["uncached", "cached"]
    for row in latest:
        assert row["p50_ms"] == pytest.approx(stored[row["phase"]].p50_ms)
        assert row["speedup"] == pytest.approx(stored[row["phase"]].details["speedup"])
    assert verdict == [stored["cached"].verdict or "not judged"]


def test_the_flagged_regression_is_an_annotation_at_its_run(filled_database, grafana_connection):
    grafana = view(filled_database, grafana_connection, SCORE)
    stored = _stored_rows(filled_database, REGRESSION_RUN)

    [annotation] = grafana.annotations().records()

    assert annotation["time"] == stored["cached"].created_at
    assert REGRESSION_RUN[:12] in annotation["text"]
    assert annotation["tags"].split(",") == ["regression", "score"]
    flagged = grafana.panel("Runs the regression check flagged").records()
    assert [row["run"] for row in flagged] == [REGRESSION_RUN[:12]]
    assert flagged[0]["cached_p50_ms"] == pytest.approx(7.9)


def test_the_latency_panel_is_repeated_per_phase_and_filtered_by_host(
    filled_database, grafana_connection
):
    every_host = view(filled_database, grafana_connection, SCORE)
    other_host = view(filled_database, grafana_connection, SCORE, selection={"host": [OTHER_HOST]})

    scopes = {q.scoped["phase"] for q in every_host.queries() if q.title == "Latency, $phase"}
    all_hosts = every_host.panel("Latency, $phase", phase="cached").column("p50")
    one_host = other_host.panel("Latency, $phase", phase="cached").column("p50")

    assert scopes == {"cached", "uncached"}
    # Six nights on this host, the job run and two nights of the other host, each in its hour.
    assert len(all_hosts) == 9
    assert [float(value) for value in one_host] == pytest.approx([2.9, 3.0])


def test_the_time_filter_keeps_only_runs_in_range(filled_database, grafana_connection):
    end = filled_database.time_range.end
    last_day = TimeRange(start=end - timedelta(hours=36), end=end)
    [dashboard] = [d for d in dashboard_files().values() if d["uid"] == SCORE]

    grafana = GrafanaView(grafana_connection, dashboard, last_day)
    speedups = grafana.panel("Speedup from the cache").records()

    # Last night's run and the job's, each in its own hour.
    assert len(speedups) == 2
    assert speedups[0]["speedup"] == pytest.approx(40.1 / 2.0)


def test_analytics_panels_compare_sql_with_in_memory(filled_database, grafana_connection):
    grafana = view(filled_database, grafana_connection, ANALYTICS)

    endpoints = grafana.variables.variables["benchmark"].options
    ratios = grafana.panel("In-memory time over SQL time").records()
    latest = grafana.panel("Latest run per endpoint").records()
    summary = grafana.panel("${benchmark}: SQL against in-memory", benchmark="analytics:summary")

    assert endpoints == sorted(ANALYTICS_ENDPOINTS)
    assert {row["metric"] for row in ratios} == {"summary", "aggregate_by_source"}
    # In-memory is nine times slower, except where the regression made SQL three times slower.
    assert sorted(float(row["ratio"]) for row in ratios) == pytest.approx([3.0] + [9.0] * 5)
    assert [row["endpoint"] for row in latest] == ["aggregate_by_source", "summary"]
    assert latest[1]["sql_p50_ms"] == pytest.approx(4.1)
    assert set(summary.column("metric")) == {"sql", "in_memory"}
    [flagged] = grafana.annotations().records()
    assert "analytics:aggregate_by_source" in flagged["text"]


def test_the_profile_table_shows_the_newest_capture(filled_database, grafana_connection):
    grafana = view(filled_database, grafana_connection, PROFILES)

    workload = grafana.variables.variables["benchmark"].current
    functions = grafana.panel("Top functions of the latest $benchmark capture").records()
    top_ten = grafana.panel("Cumulative time, top 10 functions").records()

    newest = filled_database.history.newest_capture_top
    assert workload == PROFILE_WORKLOAD
    assert [row["function"] for row in functions] == [entry["function"] for entry in newest]
    assert functions[0]["cumtime_ms"] == pytest.approx(newest[0]["cumtime_s"] * 1000)
    assert functions[0]["ncalls"] == newest[0]["ncalls"]
    assert [row["function"] for row in top_ten] == [entry["function"] for entry in newest[:10]]


def test_the_slowest_routes_come_from_the_newest_latency_report(
    filled_database, grafana_connection
):
    grafana = view(filled_database, grafana_connection, PROFILES)

    routes = grafana.panel("Slowest routes (latest latency report)").records()

    assert [(row["service"], row["route"]) for row in routes] == [
        ("analytics", "GET /aggregate"),
        ("scoring", "POST /score"),
        ("analytics", "GET /summary"),
        ("scoring", "GET /healthz"),
    ]
    assert routes[0]["p99_ms"] == pytest.approx(210.0)
    assert routes[0]["requests"] == 120


def test_a_route_selection_narrows_the_latency_panels(filled_database, grafana_connection):
    grafana = view(
        filled_database, grafana_connection, PROFILES, selection={"phase": ["POST /score"]}
    )

    routes = grafana.panel("Slowest routes (latest latency report)").records()
    series = grafana.panel("Route p95 over time").records()

    assert [row["route"] for row in routes] == ["POST /score"]
    assert {row["metric"] for row in series} == {"scoring POST /score"}
    assert [float(row["p95"]) for row in series] == pytest.approx([183.0, 61.0])


def test_all_selected_means_every_option_of_the_variable(filled_database, grafana_connection):
    grafana = view(filled_database, grafana_connection, SCORE)

    host = grafana.variables.variables["host"]

    assert host.current == [ALL_VALUE]
    assert set(host.options) == {filled_database.history.host, OTHER_HOST}


def _stored_rows(filled: FilledDatabase, run_id: str) -> dict[str, Any]:
    engine = sa.create_engine(filled.url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(score_benchmarks).where(score_benchmarks.c.run_id == run_id)
        ).all()
    engine.dispose()
    return {row.phase: row for row in rows}
