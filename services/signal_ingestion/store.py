"""Writing batches into `signals`: one bulk INSERT that skips the signal ids already stored."""

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from perf_platform.tables import signals


def insert_signals(
    connection: sa.Connection, batch_id: str, items: Sequence[Mapping[str, Any]]
) -> int:
    """Insert the batch's signals in the caller's transaction; returns how many were new.

    Idempotent on signal_id (ON CONFLICT DO NOTHING), so a batch delivered twice, or a signal
    sent again in a later batch, is stored once, with the batch that stored it first.
    """
    if not items:
        return 0

    if connection.dialect.name == "postgresql":
        # One statement over arrays: a single round trip, and its rowcount counts the new rows.
        params = {
            "batch_id": batch_id,
            "signal_ids": [item["signal_id"] for item in items],
            "sources": [item["source"] for item in items],
            "names": [item["name"] for item in items],
            "values": [float(item["value"]) for item in items],
            "timestamps": [datetime.fromisoformat(item["ts"]) for item in items],
        }
        return connection.execute(_UNNEST_INSERT, params).rowcount

    if connection.dialect.name == "sqlite":
        rows = [
            {
                "signal_id": item["signal_id"],
                "batch_id": batch_id,
                "source": item["source"],
                "name": item["name"],
                "value": float(item["value"]),
                "ts": datetime.fromisoformat(item["ts"]),
            }
            for item in items
        ]
        statement = sqlite.insert(signals).on_conflict_do_nothing(index_elements=["signal_id"])
        return connection.execute(statement, rows).rowcount

    raise NotImplementedError(f"no idempotent bulk insert for {connection.dialect.name}")


_UNNEST_INSERT = sa.text(
    """
    INSERT INTO signals (signal_id, batch_id, source, name, value, ts)
    SELECT batch.signal_id, :batch_id, batch.source, batch.name, batch.value, batch.ts
    FROM unnest(
        CAST(:signal_ids AS text[]),
        CAST(:sources AS text[]),
        CAST(:names AS text[]),
        CAST(:values AS double precision[]),
        CAST(:timestamps AS timestamptz[])
    ) AS batch (signal_id, source, name, value, ts)
    ON CONFLICT (signal_id) DO NOTHING
    """
)


def batch_values(
    connection: sa.Connection, batch_id: str, signal_ids: Sequence[str]
) -> list[sa.Row[Any]]:
    """Of these signals, those the batch stored first: signal_id, source, name, value.

    Looked up by signal_id, whose unique index finds them without scanning the table.
    """
    query = (
        sa.select(signals.c.signal_id, signals.c.source, signals.c.name, signals.c.value)
        .where(signals.c.signal_id.in_(signal_ids), signals.c.batch_id == batch_id)
        .order_by(signals.c.id)
    )
    return list(connection.execute(query))


def set_attributes(connection: sa.Connection, attributes: Mapping[str, dict[str, Any]]) -> int:
    """Replace the attributes of each signal named in `attributes` (signal_id -> JSON object)."""
    if not attributes:
        return 0

    if connection.dialect.name == "postgresql":
        params = {
            "signal_ids": list(attributes),
            "documents": [json.dumps(document) for document in attributes.values()],
        }
        return connection.execute(_UNNEST_UPDATE, params).rowcount

    statement = (
        sa.update(signals)
        .where(signals.c.signal_id == sa.bindparam("b_signal_id"))
        .values(attributes=sa.bindparam("b_attributes"))
    )
    params = [{"b_signal_id": key, "b_attributes": value} for key, value in attributes.items()]
    return connection.execute(statement, params).rowcount


_UNNEST_UPDATE = sa.text(
    """
    UPDATE signals SET attributes = batch.document
    FROM unnest(CAST(:signal_ids AS text[]), CAST(CAST(:documents AS text[]) AS jsonb[]))
        AS batch (signal_id, document)
    WHERE signals.signal_id = batch.signal_id
    """
)
