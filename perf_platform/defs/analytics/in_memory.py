"""The way the analytics service used to work, kept only to measure against: read the signals
into pandas, then filter and group in Python. Same request parameters, same answer shape."""

from collections.abc import Mapping
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from perf_platform.tables import signals
from services.analytics.params import parse_time
from services.analytics.queries import bucket_key

_FLOORS = {"hour": "h", "day": "D"}


def read_signals(engine: Engine) -> pd.DataFrame:
    """Every signal's source, name, value and time, as the old service loaded them."""
    statement = sa.select(signals.c.source, signals.c.name, signals.c.value, signals.c.ts)
    with engine.connect() as connection:
        frame = pd.read_sql(statement, connection)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def aggregate_in_memory(frame: pd.DataFrame, params: Mapping[str, str]) -> dict[str, dict]:
    """{group key: {count, sum, avg, min, max}} from the frame; a summary is the key ""."""
    selected = frame
    if "start" in params:
        selected = selected[selected["ts"] >= pd.Timestamp(parse_time(params["start"]))]
    if "end" in params:
        selected = selected[selected["ts"] < pd.Timestamp(parse_time(params["end"]))]
    if "source" in params:
        selected = selected[selected["source"] == params["source"]]
    if "name" in params:
        selected = selected[selected["name"] == params["name"]]

    group_by = params.get("group_by")
    if group_by is None:
        values = selected["value"]
        return {"": _measures(len(values), values.sum(), values.mean(), values.min(), values.max())}

    key = selected[group_by] if group_by in ("source", "name") else None
    if key is None:
        key = selected["ts"].dt.floor(_FLOORS[group_by])
    grouped = selected.groupby(key)["value"].agg(["count", "sum", "mean", "min", "max"])

    answer = {}
    for group, row in grouped.iterrows():
        label = group if group_by in ("source", "name") else bucket_key(group.to_pydatetime())
        answer[label] = _measures(row["count"], row["sum"], row["mean"], row["min"], row["max"])
    return answer


def _measures(count: Any, total: Any, mean: Any, low: Any, high: Any) -> dict[str, Any]:
    count = int(count)
    return {
        "count": count,
        "sum": float(total) if count else 0.0,
        "avg": float(mean) if count else None,
        "min": float(low) if count else None,
        "max": float(high) if count else None,
    }
