"""An independent answer to an analytics request: rows streamed into Python and added up there.

Nothing here uses the service's query code. Filters are re-applied in Python, buckets are cut
with datetime arithmetic, and sums use math.fsum. The rows stream in batches; `narrowed` keeps
the work (and the values held for fsum) to a bounded sample of the newest rows.
"""

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from perf_platform.tables import signals

_TIME_PARAMS = ("start", "end")


def _as_utc(value: datetime) -> datetime:
    # SQLite hands timestamps back without an offset; they are stored in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parse(params: Mapping[str, str]) -> dict[str, Any]:
    parsed: dict[str, Any] = dict(params)
    for key in _TIME_PARAMS:
        if key in parsed:
            parsed[key] = _as_utc(datetime.fromisoformat(parsed[key]))
    return parsed


def _prefilter(parsed: Mapping[str, Any]) -> list[sa.ColumnElement[bool]]:
    conditions = []
    if "source" in parsed:
        conditions.append(signals.c.source == parsed["source"])
    if "name" in parsed:
        conditions.append(signals.c.name == parsed["name"])
    if "start" in parsed:
        conditions.append(signals.c.ts >= parsed["start"])
    return conditions


def narrowed(connection: sa.Connection, params: Mapping[str, str], max_rows: int) -> dict:
    """The params, with `start` moved up so that at most about `max_rows` signals match.

    Both the service and the independent computation then answer the narrowed request, so a
    check over a large table reads the newest `max_rows` matching rows, not all of them.
    """
    parsed = _parse(params)
    cutoff = connection.execute(
        sa.select(signals.c.ts)
        .where(*_prefilter(parsed))
        .order_by(signals.c.ts.desc())
        .offset(max_rows - 1)
        .limit(1)
    ).scalar_one_or_none()
    if cutoff is None:
        return dict(params)
    start = max(_as_utc(cutoff), parsed.get("start", _as_utc(cutoff)))
    return {**params, "start": start.isoformat()}


def _rows(connection: sa.Connection, parsed: Mapping[str, Any]) -> Iterator[Any]:
    statement = sa.select(signals.c.source, signals.c.name, signals.c.value, signals.c.ts).where(
        *_prefilter(parsed)
    )
    # Options on the statement, not the connection: the connection runs other queries after.
    result = connection.execute(
        statement, execution_options={"stream_results": True, "yield_per": 10_000}
    )
    for row in result:
        ts = _as_utc(row.ts)
        if "start" in parsed and ts < parsed["start"]:
            continue
        if "end" in parsed and ts >= parsed["end"]:
            continue
        if "source" in parsed and row.source != parsed["source"]:
            continue
        if "name" in parsed and row.name != parsed["name"]:
            continue
        yield row.source, row.name, row.value, ts


def _key(group_by: str | None, source: str, name: str, ts: datetime) -> str:
    if group_by == "source":
        return source
    if group_by == "name":
        return name
    if group_by == "hour":
        return ts.replace(minute=0, second=0, microsecond=0).isoformat()
    if group_by == "day":
        return ts.replace(hour=0, minute=0, second=0, microsecond=0).isoformat()
    return ""


@dataclass
class _Tally:
    values: list[float]

    def result(self) -> dict[str, Any]:
        count = len(self.values)
        total = math.fsum(self.values)
        return {
            "count": count,
            "sum": total,
            "avg": total / count if count else None,
            "min": min(self.values) if count else None,
            "max": max(self.values) if count else None,
        }


def independent_answer(connection: sa.Connection, params: Mapping[str, str]) -> dict[str, dict]:
    """{group key: {count, sum, avg, min, max}}; a summary is the single key ""."""
    parsed = _parse(params)
    group_by = parsed.get("group_by")
    tallies: dict[str, _Tally] = {}
    for source, name, value, ts in _rows(connection, parsed):
        tallies.setdefault(_key(group_by, source, name, ts), _Tally([])).values.append(value)
    if group_by is None and not tallies:
        tallies[""] = _Tally([])
    return {key: tally.result() for key, tally in tallies.items()}


def differences(
    served: Mapping[str, Mapping[str, Any]], expected: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Where the service's answer departs from the independent one, one line each.

    Counts, minima and maxima must match exactly; sums and averages to 1e-9 relative, since
    adding floating-point numbers in another order rounds differently.
    """
    problems = []
    for key in sorted(set(served) | set(expected)):
        if key not in served:
            problems.append(f"group {key!r} is missing from the service's answer")
            continue
        if key not in expected:
            problems.append(f"group {key!r} is in the service's answer but matches no signal")
            continue
        got, want = served[key], expected[key]
        for measure in ("count", "min", "max"):
            if got[measure] != want[measure]:
                problems.append(f"{key or 'summary'} {measure}: {got[measure]} != {want[measure]}")
        for measure in ("sum", "avg"):
            if not _close(got[measure], want[measure]):
                problems.append(f"{key or 'summary'} {measure}: {got[measure]} != {want[measure]}")
    return problems


def _close(left: float | None, right: float | None) -> bool:
    if left is None or right is None:
        return left is right
    return math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-9)
