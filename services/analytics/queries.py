"""The analytics service's SQL: every aggregate is computed by the database, never in Python.

Statements are SQLAlchemy Core built from a fixed menu: the group-by and bucket expressions
come from the mappings below, and every value a caller supplies is a bound parameter.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from perf_platform.tables import signals

GroupBy = Literal["source", "name", "hour", "day"]
GROUP_BYS: tuple[str, ...] = get_args(GroupBy)

# Time buckets are UTC. Both sides are constants of ours, rendered as-is, so the SELECT and the
# GROUP BY print the same expression (bound parameters would print two different placeholders).
_UTC = sa.literal_column("'UTC'")
_POSTGRES_UNITS = {"hour": sa.literal_column("'hour'"), "day": sa.literal_column("'day'")}
_SQLITE_FORMATS = {
    "hour": sa.literal_column("'%Y-%m-%dT%H:00:00'"),
    "day": sa.literal_column("'%Y-%m-%dT00:00:00'"),
}


@dataclass(frozen=True)
class SignalFilters:
    """Which signals an aggregate covers: start inclusive, end exclusive, times in UTC."""

    start: datetime | None = None
    end: datetime | None = None
    source: str | None = None
    name: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.start is not None:
            conditions.append(signals.c.ts >= self.start)
        if self.end is not None:
            conditions.append(signals.c.ts < self.end)
        if self.source is not None:
            conditions.append(signals.c.source == self.source)
        if self.name is not None:
            conditions.append(signals.c.name == self.name)
        return conditions


def _measures() -> list[ColumnElement[Any]]:
    value = signals.c.value
    return [
        sa.func.count().label("count"),
        sa.func.sum(value).label("sum"),
        sa.func.avg(value).label("avg"),
        sa.func.min(value).label("min"),
        sa.func.max(value).label("max"),
    ]


def group_key(group_by: GroupBy, dialect_name: str) -> ColumnElement[Any]:
    """The expression a group-by choice groups on, for one SQL dialect."""
    if group_by == "source":
        return signals.c.source
    if group_by == "name":
        return signals.c.name
    if group_by not in _POSTGRES_UNITS:
        raise ValueError(f"group_by must be one of {GROUP_BYS}, not {group_by!r}")

    if dialect_name == "postgresql":
        return sa.func.date_trunc(_POSTGRES_UNITS[group_by], sa.func.timezone(_UTC, signals.c.ts))
    return sa.func.strftime(_SQLITE_FORMATS[group_by], signals.c.ts)


def summary_statement(filters: SignalFilters) -> sa.Select[Any]:
    """count, sum, avg, min and max of `value` over the filtered signals, in one row."""
    return sa.select(*_measures()).select_from(signals).where(*filters.conditions())


def aggregate_statement(
    filters: SignalFilters, group_by: GroupBy, dialect_name: str, *, limit: int, offset: int
) -> sa.Select[Any]:
    """One row per group, ordered by its key, `limit` rows from `offset`."""
    key = group_key(group_by, dialect_name)
    return (
        sa.select(key.label("key"), *_measures())
        .where(*filters.conditions())
        .group_by(key)
        .order_by(key)
        .limit(limit)
        .offset(offset)
    )


def signals_version(connection: sa.Connection) -> str | None:
    """A value that changes whenever a committed insert may change an aggregate, or None.

    The aggregates read only signals' (source, name, value, ts), and rows are only appended
    (ingestion: INSERT ... ON CONFLICT DO NOTHING; fill_signals: COPY without ids; enrichment
    updates `attributes` alone), with ids from the table's sequence (CACHE 1, the default): so
    the highest id is the version, read through the primary key. None means no exact version
    is known right now, and the caller answers without a validator. Run it before the
    aggregate, on the same connection: a tag then never claims newer data than its body holds.
    """
    if connection.dialect.name == "sqlite":
        # One writer at a time, ids handed out under its lock: commit order is id order.
        max_id = connection.execute(sa.select(sa.func.max(signals.c.id))).scalar_one()
        return str(max_id or 0)

    if connection.dialect.name != "postgresql":
        return None

    # Version = file number + max(id), given only while no writer is open: max(id) alone misses
    # commits out of id order. Ids are handed out in insert order but become visible in commit
    # order, so a transaction still open may later add rows below max(id) without moving it.
    # Its RowExclusiveLock is taken before its first id and kept until its commit is visible:
    # no writer now, and a max(id) read afterwards that is no higher than the ids handed out by
    # now, mean every row up to max(id) is final and any later insert comes in above it.
    issued, writing = connection.execute(_POSTGRES_WRITERS).one()
    if writing:
        return None
    max_id, filenode = connection.execute(_POSTGRES_MAX_ID).one()
    if max_id is not None and (issued is None or max_id > issued):
        return None
    # TRUNCATE gives the table a new file (and may restart the ids): the file is in the version.
    return f"{filenode}.{max_id or 0}"


# Two statements, in this order, each with its own READ COMMITTED snapshot.
_POSTGRES_WRITERS = sa.text(
    """
    SELECT
        -- NULL, so no version, for a role that may not read the sequence (not an error).
        CASE WHEN has_sequence_privilege(pg_get_serial_sequence('signals', 'id'), 'SELECT')
            THEN pg_sequence_last_value(CAST(pg_get_serial_sequence('signals', 'id') AS regclass))
        END AS issued,
        EXISTS (
            SELECT 1 FROM pg_locks
            WHERE locktype = 'relation'
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND relation = CAST('signals' AS regclass)
              AND mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock',
                           'AccessExclusiveLock')
              AND pid <> pg_backend_pid()
        ) AS writing
    """
)
_POSTGRES_MAX_ID = sa.text(
    "SELECT max(id) AS max_id, pg_relation_filenode('signals') AS filenode FROM signals"
)


def bucket_key(value: Any) -> str:
    """A time bucket as ISO 8601 in UTC, whichever dialect produced it."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat()


def summary_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The /summary body: an empty selection sums to 0 and has no average, minimum or maximum."""
    return {
        "count": int(row["count"]),
        "sum": float(row["sum"]) if row["sum"] is not None else 0.0,
        "avg": _float_or_none(row["avg"]),
        "min": _float_or_none(row["min"]),
        "max": _float_or_none(row["max"]),
    }


def group_from_row(row: Mapping[str, Any], group_by: GroupBy) -> dict[str, Any]:
    key = bucket_key(row["key"]) if group_by in _POSTGRES_UNITS else row["key"]
    return {"key": key, **summary_from_row(row)}


def _float_or_none(value: Any) -> float | None:
    return float(value) if value is not None else None
