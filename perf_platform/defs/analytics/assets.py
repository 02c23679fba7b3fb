"""The analytics area's assets: demo signals, the query plans, and SQL against the old way."""

import time
from typing import Any

import dagster as dg
import httpx
import sqlalchemy as sa
from pydantic import Field

from perf_platform.defs.analytics.catalogue import (
    QUERIES,
    AnalyticsQuery,
    DataSample,
    sample_data,
)
from perf_platform.defs.analytics.in_memory import aggregate_in_memory, read_signals
from perf_platform.defs.analytics.plans import (
    QueryPlan,
    StatementStats,
    explain,
    normalized_sql,
    signals_indexes,
    statement_stats,
    suggest_index,
)
from perf_platform.defs.analytics.service_calls import fetch_answer, latency_measures, time_requests
from perf_platform.defs.analytics.verify import differences
from perf_platform.defs.resources import BenchmarkStoreResource, ServiceResource
from perf_platform.results import benchmark_row, record_results

GROUP = "analytics"


class DemoSignalsConfig(dg.Config):
    demo_rows: int = Field(
        default=20_000,
        ge=0,
        le=10_000_000,
        description="signals to add to an empty table; 0: never",
    )


@dg.asset(group_name=GROUP, kinds={"sql"})
def analytics_demo_signals(
    context: dg.AssetExecutionContext,
    config: DemoSignalsConfig,
    benchmark_store: BenchmarkStoreResource,
) -> dg.MaterializeResult:
    """Synthetic signals for the analytics checks, added only when the signals table is empty.

    A fresh embedded install has no signals yet, and plans or timings over nothing mean nothing.
    A table that already holds signals is left alone. Demo rows have signal ids starting `fill-`.
    """
    from scripts.fill_signals import fill_signals

    engine = benchmark_store.engine()
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT count(*) FROM signals")).scalar_one()

    added = 0
    if rows == 0 and config.demo_rows > 0:
        result = fill_signals(engine, config.demo_rows, seed=7)
        added = result.rows
        context.log.info(f"event=demo_signals_added rows={added} seconds={result.seconds:.2f}")
        summary = f"signals was empty: added {added:,} synthetic signals in {result.seconds:.1f}s"
    else:
        summary = f"signals holds {rows:,} rows: no demo signals added"

    return dg.MaterializeResult(
        metadata={
            "rows_added": dg.MetadataValue.float(float(added)),
            "rows": dg.MetadataValue.float(float(rows + added)),
            "summary": dg.MetadataValue.md(summary),
        }
    )


class QueryPlansConfig(dg.Config):
    actual_max_cost: float = Field(
        default=100_000.0,
        ge=0,
        description="run a query for its actual time when its estimated cost is at most this "
        "(PostgreSQL cost units; on SQLite, rows in the table)",
    )


@dg.asset(group_name=GROUP, kinds={"sql"}, deps=[analytics_demo_signals])
def analytics_query_plans(
    context: dg.AssetExecutionContext,
    config: QueryPlansConfig,
    benchmark_store: BenchmarkStoreResource,
) -> dg.MaterializeResult:
    """How the database runs each analytics query: through an index, or over the whole table.

    For every query in the catalogue, EXPLAIN on the current database gives the access path,
    the estimated cost and, when cheap, the actual time. A filtered query that scans the whole
    table gets the index that would serve it. Queries over every signal scan by design. Where
    pg_stat_statements is loaded, the statements on signals are ranked by total time.
    """
    engine = benchmark_store.engine()
    dialect = engine.dialect.name
    with engine.connect() as connection:
        sample = sample_data(connection)
        existing = signals_indexes(connection)
        entries = []
        for query in QUERIES:
            params = query.params(sample)
            statement = query.statement(params, dialect)
            plan = explain(connection, statement, actual_max_cost=config.actual_max_cost)
            entries.append(_plan_entry(query, params, statement, plan, existing, engine.dialect))
        stats = statement_stats(connection)

    scanning = [entry["query"] for entry in entries if entry["scan_needs_index"]]
    for entry in entries:
        context.log.info(
            f"event=query_plan query={entry['query']} access={entry['access']!r} "
            f"cost={entry['estimated_cost']} actual_ms={entry['actual_ms']}"
        )
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.float(float(sample.rows)),
            "queries_using_an_index": dg.MetadataValue.float(
                float(sum(not entry["full_scan"] for entry in entries))
            ),
            "filtered_queries_scanning": dg.MetadataValue.float(float(len(scanning))),
            "plans": dg.MetadataValue.json({entry["query"]: entry for entry in entries}),
            "pg_stat_statements": dg.MetadataValue.text(
                "available" if stats.available else f"unavailable: {stats.reason}"
            ),
            "summary": dg.MetadataValue.md(_plans_summary(entries, stats, sample, dialect)),
        }
    )


def _plan_entry(
    query: AnalyticsQuery,
    params: dict[str, str],
    statement: sa.Select[Any],
    plan: QueryPlan,
    existing: dict[str, list[str]],
    dialect: sa.Dialect,
) -> dict[str, Any]:
    scan_needs_index = plan.full_scan and query.filtered
    suggestion = suggest_index(query.suggested_index(), existing, dialect.name)
    return {
        "query": query.name,
        "request": f"{query.path}?" + "&".join(f"{key}={value}" for key, value in params.items()),
        "access": plan.access,
        "full_scan": plan.full_scan,
        "indexes": plan.indexes,
        "aggregates_in_database": plan.aggregates_in_database,
        "estimated_cost": plan.estimated_cost,
        "estimated_rows": plan.estimated_rows,
        "actual_ms": round(plan.actual_ms, 3) if plan.actual_ms is not None else None,
        "scan_needs_index": scan_needs_index,
        "suggestion": suggestion if scan_needs_index else "",
        "note": "reads every signal by design" if plan.full_scan and not query.filtered else "",
        "plan": plan.outline,
        "sql": str(statement.compile(dialect=dialect)),
    }


def _plans_summary(
    entries: list[dict[str, Any]], stats: StatementStats, sample: DataSample, dialect: str
) -> str:
    lines = [
        f"{len(entries)} analytics queries on {sample.rows:,} signals ({dialect})",
        "",
        "| query | access | aggregates in DB | est. cost | actual ms | suggestion |",
        "|---|---|---|---:|---:|---|",
    ]
    for entry in entries:
        cost = f"{entry['estimated_cost']:,.0f}" if entry["estimated_cost"] is not None else "n/a"
        actual = f"{entry['actual_ms']:.1f}" if entry["actual_ms"] is not None else "n/a"
        advice = entry["suggestion"] or entry["note"]
        lines.append(
            f"| {entry['query']} | {entry['access']} | "
            f"{'yes' if entry['aggregates_in_database'] else 'NO'} | {cost} | {actual} | {advice} |"
        )

    lines.append("")
    if not stats.available:
        lines.append(f"Ranking by total time unavailable: {stats.reason}.")
        return "\n".join(lines)

    by_sql = {normalized_sql(entry["sql"]): entry["query"] for entry in entries}
    lines += [
        "Statements on signals by total time (pg_stat_statements):",
        "",
        "| rank | statement | calls | total ms | mean ms |",
        "|---:|---|---:|---:|---:|",
    ]
    for rank, row in enumerate(stats.rows, start=1):
        label = by_sql.get(normalized_sql(row["query"])) or _shorten(row["query"])
        lines.append(
            f"| {rank} | {label} | {row['calls']} | {row['total_exec_time']:.1f} "
            f"| {row['mean_exec_time']:.2f} |"
        )
    return "\n".join(lines)


def _shorten(sql: str, width: int = 80) -> str:
    flat = " ".join(sql.split()).replace("|", "\\|")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


class SqlVsInMemoryConfig(dg.Config):
    sql_runs: int = Field(default=20, ge=1, le=10_000, description="timed requests per query")
    in_memory_runs: int = Field(
        default=3, ge=1, le=100, description="timed reads-and-groups per query"
    )


@dg.asset(group_name=GROUP, kinds={"sql", "pandas"}, deps=[analytics_demo_signals])
def analytics_sql_vs_in_memory(
    context: dg.AssetExecutionContext,
    config: SqlVsInMemoryConfig,
    analytics_service: ServiceResource,
    benchmark_store: BenchmarkStoreResource,
) -> dg.MaterializeResult:
    """Each analytics request timed two ways on the same data, both kept in score_benchmarks.

    `sql`: the service's endpoint over HTTP, aggregating in the database. `in_memory`: the way
    the service used to work, every signal read into pandas then filtered and grouped. Rows go
    to score_benchmarks as benchmark `analytics:<query>`, phases `sql` and `in_memory`.
    """
    engine = benchmark_store.engine()
    with engine.connect() as connection:
        sample = sample_data(connection)
    measured_config = {
        "dialect": engine.dialect.name,
        "sql_runs": config.sql_runs,
        "in_memory_runs": config.in_memory_runs,
    }

    results = []
    with (
        analytics_service.running() as base_url,
        httpx.Client(base_url=base_url, timeout=300) as client,
    ):
        for query in QUERIES:
            params = query.params(sample)
            served = fetch_answer(client, query.path, params)
            sql_seconds = time_requests(client, query.path, params, config.sql_runs)

            in_memory_seconds = []
            for _ in range(config.in_memory_runs):
                started = time.perf_counter()
                answer = aggregate_in_memory(read_signals(engine), params)
                in_memory_seconds.append(time.perf_counter() - started)

            results.append(
                (query, params, sql_seconds, in_memory_seconds, differences(served, answer))
            )
            context.log.info(f"event=timed query={query.name} rows={sample.rows}")

    rows = []
    table = []
    for query, params, sql_seconds, in_memory_seconds, disagreements in results:
        sql, in_memory = latency_measures(sql_seconds), latency_measures(in_memory_seconds)
        speedup = in_memory["p50_ms"] / sql["p50_ms"]
        details = {
            "rows": sample.rows,
            "request": query.path,
            "params": params,
            "speedup_p50": speedup,
            "answers_agree": not disagreements,
        }
        for phase, measures, runs in (
            ("sql", sql, config.sql_runs),
            ("in_memory", in_memory, config.in_memory_runs),
        ):
            rows.append(
                benchmark_row(
                    run_id=context.run.run_id,
                    benchmark=f"analytics:{query.name}",
                    phase=phase,
                    runs=runs,
                    config={**measured_config, "query": query.name},
                    details=details,
                    **measures,
                )
            )
        table.append((query.name, sql["p50_ms"], in_memory["p50_ms"], speedup, disagreements))

    inserted = record_results(engine, rows)
    context.log.info(f"event=rows_written inserted={inserted}")
    return dg.MaterializeResult(metadata=_timing_metadata(table, sample.rows, inserted))


def _timing_metadata(table: list[tuple], rows: int, inserted: int) -> dict[str, Any]:
    lines = [
        f"Each request on {rows:,} signals: endpoint (SQL) against read-into-pandas (in memory)",
        "",
        "| query | SQL p50 ms | in-memory p50 ms | speedup | answers agree |",
        "|---|---:|---:|---:|---|",
    ]
    metadata: dict[str, Any] = {}
    for name, sql_ms, in_memory_ms, speedup, disagreements in table:
        agree = "yes" if not disagreements else "NO: " + "; ".join(disagreements[:3])
        lines.append(f"| {name} | {sql_ms:.2f} | {in_memory_ms:.1f} | {speedup:.1f}x | {agree} |")
        metadata[f"{name}_sql_p50_ms"] = dg.MetadataValue.float(sql_ms)
        metadata[f"{name}_speedup"] = dg.MetadataValue.float(speedup)
    metadata["min_speedup"] = dg.MetadataValue.float(min(row[3] for row in table))
    metadata["rows"] = dg.MetadataValue.float(float(rows))
    metadata["rows_recorded"] = dg.MetadataValue.float(float(inserted))
    metadata["summary"] = dg.MetadataValue.md("\n".join(lines))
    return metadata
