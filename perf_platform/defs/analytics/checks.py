"""One check per analytics query: the right answer, and computed by the database."""

from collections.abc import Iterable, Sequence
from typing import Any

import dagster as dg
import httpx
import sqlalchemy as sa
from pydantic import Field

from perf_platform.defs.analytics.assets import analytics_query_plans
from perf_platform.defs.analytics.catalogue import QUERIES, AnalyticsQuery, sample_data
from perf_platform.defs.analytics.plans import explain
from perf_platform.defs.analytics.service_calls import fetch_answer
from perf_platform.defs.analytics.verify import differences, independent_answer, narrowed
from perf_platform.defs.resources import BenchmarkStoreResource, ServiceResource


class QueryChecksConfig(dg.Config):
    sample_rows: int = Field(
        default=50_000,
        ge=1,
        le=10_000_000,
        description="compare on at most about this many of the newest matching signals",
    )


def check_name(query: AnalyticsQuery) -> str:
    return f"{query.name}_aggregates_in_sql"


def check_query(
    connection: sa.Connection,
    client: httpx.Client,
    query: AnalyticsQuery,
    params: dict[str, str],
) -> tuple[bool, str, dict[str, Any]]:
    """(passed, description, metadata) for one query on these parameters."""
    request = query.path + "?" + str(httpx.QueryParams(params))
    try:
        served = fetch_answer(client, query.path, params)
    except httpx.HTTPStatusError as exc:
        reason = f"the service answered {exc.response.status_code}: {exc.response.text[:200]}"
        return False, reason, {"request": dg.MetadataValue.text(request)}

    expected = independent_answer(connection, params)
    problems = differences(served, expected)
    plan = explain(connection, query.statement(params, connection.dialect.name), actual_max_cost=0)

    compared = sum(group["count"] for group in expected.values())
    if problems:
        description = f"{len(problems)} differences from the independent answer: " + "; ".join(
            problems[:3]
        )
    elif not plan.aggregates_in_database:
        description = "answers agree, but the plan has no aggregation step: rows leave the database"
    else:
        description = (
            f"agrees with Python over the same {compared:,} signals in {len(expected)} groups; "
            "the database aggregates"
        )
    metadata = {
        "signals_compared": dg.MetadataValue.float(float(compared)),
        "groups": dg.MetadataValue.float(float(len(expected))),
        "request": dg.MetadataValue.text(request),
        "plan": dg.MetadataValue.text(" > ".join(plan.outline)),
        "differences": dg.MetadataValue.text("\n".join(problems) or "none"),
    }
    return not problems and plan.aggregates_in_database, description, metadata


def build_query_checks(queries: Sequence[AnalyticsQuery] = QUERIES) -> dg.AssetChecksDefinition:
    """A multi-check with one named check per query, sharing one running service."""

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(
                check_name(query),
                asset=analytics_query_plans,
                description=f"{query.description}: equals an independent computation on the "
                "same signals, and its plan aggregates in the database",
            )
            for query in queries
        ],
        name="analytics_query_checks",
    )
    def analytics_query_checks(
        config: QueryChecksConfig,
        analytics_service: ServiceResource,
        benchmark_store: BenchmarkStoreResource,
    ) -> Iterable[dg.AssetCheckResult]:
        engine = benchmark_store.engine()
        with (
            analytics_service.running() as base_url,
            httpx.Client(base_url=base_url, timeout=120) as client,
            engine.connect() as connection,
        ):
            sample = sample_data(connection)
            for query in queries:
                params = narrowed(connection, query.params(sample), config.sample_rows)
                passed, description, metadata = check_query(connection, client, query, params)
                yield dg.AssetCheckResult(
                    asset_key=analytics_query_plans.key,
                    check_name=check_name(query),
                    passed=passed,
                    description=description,
                    metadata=metadata,
                )

    return analytics_query_checks


analytics_query_checks = build_query_checks()
