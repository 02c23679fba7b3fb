"""EXPLAIN for the analytics queries: index or full scan, cost, and where the aggregation runs.

PostgreSQL answers EXPLAIN (FORMAT JSON); SQLite answers EXPLAIN QUERY PLAN for the access
path and plain EXPLAIN (its bytecode) for the aggregation, which shows as Agg* opcodes.
"""

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable


class Explain(Executable, ClauseElement):
    """`<prefix> <statement>` with the statement's parameters bound as usual."""

    inherit_cache = False

    def __init__(self, statement: sa.Select[Any], prefix: str) -> None:
        self.statement = statement
        self.prefix = prefix


@compiles(Explain)
def _compile_explain(element: Explain, compiler: Any, **kw: Any) -> str:
    return f"{element.prefix} {compiler.process(element.statement, **kw)}"


@dataclass
class QueryPlan:
    """How the database runs one query."""

    full_scan: bool
    indexes: list[str]
    aggregates_in_database: bool
    estimated_cost: float | None = None
    estimated_rows: float | None = None
    actual_ms: float | None = None
    outline: list[str] = field(default_factory=list)

    @property
    def access(self) -> str:
        if self.indexes and not self.full_scan:
            return "index " + ", ".join(self.indexes)
        if self.indexes:
            return "full scan (in the order of " + ", ".join(self.indexes) + ")"
        return "full scan"


def explain(
    connection: sa.Connection, statement: sa.Select[Any], *, actual_max_cost: float
) -> QueryPlan:
    """The plan of `statement`; it also runs, for its actual time, when it looks cheap.

    "Cheap" is PostgreSQL's estimated total cost at most `actual_max_cost`; SQLite estimates no
    cost, so there the table's row count stands in for it.
    """
    if connection.dialect.name == "postgresql":
        return _explain_postgres(connection, statement, actual_max_cost)
    return _explain_sqlite(connection, statement, actual_max_cost)


def _explain_postgres(
    connection: sa.Connection, statement: sa.Select[Any], actual_max_cost: float
) -> QueryPlan:
    document = connection.execute(Explain(statement, "EXPLAIN (FORMAT JSON)")).scalar_one()
    root = document[0]["Plan"]
    plan = _plan_from_postgres(root)

    if plan.estimated_cost is not None and plan.estimated_cost <= actual_max_cost:
        analyzed = connection.execute(
            Explain(statement, "EXPLAIN (ANALYZE, FORMAT JSON)")
        ).scalar_one()
        plan.actual_ms = float(analyzed[0]["Execution Time"])
    return plan


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _plan_from_postgres(root: dict[str, Any]) -> QueryPlan:
    full_scan = False
    indexes: list[str] = []
    aggregates = False
    outline = []

    for node in _nodes(root):
        kind = node["Node Type"]
        outline.append(kind + (f" using {node['Index Name']}" if "Index Name" in node else ""))
        if kind == "Aggregate":
            aggregates = True
        elif kind == "Seq Scan":
            full_scan = True
        elif "Index Name" in node:
            indexes.append(node["Index Name"])
            # An index walked end to end, with no condition to narrow it, is a full scan too.
            if "Index Cond" not in node:
                full_scan = True

    return QueryPlan(
        full_scan=full_scan,
        indexes=list(dict.fromkeys(indexes)),
        aggregates_in_database=aggregates,
        estimated_cost=float(root["Total Cost"]),
        estimated_rows=float(root["Plan Rows"]),
        outline=outline,
    )


_SQLITE_INDEX = re.compile(r"USING (?:COVERING )?INDEX (\w+)")


def _explain_sqlite(
    connection: sa.Connection, statement: sa.Select[Any], actual_max_cost: float
) -> QueryPlan:
    details = [
        row.detail
        for row in connection.execute(Explain(statement, "EXPLAIN QUERY PLAN")).mappings()
    ]
    opcodes = {row.opcode for row in connection.execute(Explain(statement, "EXPLAIN")).mappings()}
    plan = _plan_from_sqlite(details, opcodes)

    rows = connection.execute(sa.text("SELECT count(*) FROM signals")).scalar_one()
    if rows <= actual_max_cost:
        started = time.perf_counter()
        connection.execute(statement).all()
        plan.actual_ms = (time.perf_counter() - started) * 1000
    return plan


def _plan_from_sqlite(details: list[str], opcodes: set[str]) -> QueryPlan:
    full_scan = False
    indexes: list[str] = []
    for detail in details:
        found = _SQLITE_INDEX.search(detail)
        if found:
            indexes.append(found.group(1))
        # SQLite says SCAN for a walk over the whole table or index, SEARCH for a range.
        if detail.startswith("SCAN "):
            full_scan = True

    return QueryPlan(
        full_scan=full_scan,
        indexes=list(dict.fromkeys(indexes)),
        aggregates_in_database=any(opcode.startswith("Agg") for opcode in opcodes),
        outline=details,
    )


def suggest_index(
    columns: tuple[str, ...], existing: dict[str, list[str]], dialect_name: str
) -> str:
    """What to do about a filtered query that scans: create the index, or why one is not used."""
    if not columns:
        return ""
    for name, indexed in existing.items():
        if tuple(indexed[: len(columns)]) == columns:
            return (
                f"{name} exists but the planner preferred a scan: the filter keeps too many "
                "rows for the index to pay off, or the statistics are stale (ANALYZE signals)"
            )

    name = "ix_signals_" + "_".join(columns)
    include = " INCLUDE (value)" if dialect_name == "postgresql" else ""
    return f"CREATE INDEX {name} ON signals ({', '.join(columns)}){include}"


def signals_indexes(connection: sa.Connection) -> dict[str, list[str]]:
    """The indexes on signals, by name, with their key columns in order."""
    return {
        index["name"]: [column for column in index["column_names"] if column]
        for index in sa.inspect(connection).get_indexes("signals")
        if index["name"]
    }


@dataclass(frozen=True)
class StatementStats:
    """pg_stat_statements' view of the statements on signals, or why it is unavailable."""

    available: bool
    reason: str = ""
    rows: tuple[dict[str, Any], ...] = ()


def statement_stats(connection: sa.Connection, limit: int = 10) -> StatementStats:
    if connection.dialect.name != "postgresql":
        return StatementStats(False, "pg_stat_statements is PostgreSQL only")

    preload = connection.execute(sa.text("SHOW shared_preload_libraries")).scalar_one()
    if "pg_stat_statements" not in preload:
        return StatementStats(
            False,
            "pg_stat_statements is not in shared_preload_libraries on this server "
            "(adding it needs a restart)",
        )
    installed = connection.execute(
        sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
    ).first()
    if installed is None:
        return StatementStats(
            False, "run CREATE EXTENSION pg_stat_statements in this database to rank queries"
        )

    try:
        with connection.begin_nested():
            rows = connection.execute(
                sa.text(
                    "SELECT query, calls, total_exec_time, mean_exec_time FROM pg_stat_statements"
                    " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                    " AND query ILIKE 'select%signals%' AND query NOT ILIKE '%pg_stat_statements%'"
                    " ORDER BY total_exec_time DESC LIMIT :limit"
                ),
                {"limit": limit},
            ).mappings()
            return StatementStats(True, rows=tuple(dict(row) for row in rows))
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        return StatementStats(False, f"pg_stat_statements could not be read: {reason}")


_PLACEHOLDER = re.compile(r"%\(\w+\)s|\$\d+|'[^']*'|\b\d+(?:\.\d+)?\b|\?")


def normalized_sql(sql: str) -> str:
    """SQL with every parameter and constant as `?` and spaces collapsed, for matching."""
    return " ".join(_PLACEHOLDER.sub("?", sql).split()).lower()
