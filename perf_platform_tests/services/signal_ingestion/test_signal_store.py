"""Writing a batch into `signals`: in bulk, one transaction, and idempotent on signal_id, the same
on PostgreSQL and SQLite."""

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from perf_platform.db import make_engine
from perf_platform.tables import signals
from perf_platform_tests.services.signal_ingestion.harness import make_batch
from services.signal_ingestion import store


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request, sqlite_url):
    if request.param == "sqlite":
        engine = make_engine(sqlite_url)
        yield engine
        engine.dispose()
    else:
        yield request.getfixturevalue("clean_postgres")


def stored(engine: sa.Engine) -> dict[str, tuple]:
    query = sa.select(signals.c.signal_id, signals.c.batch_id, signals.c.value, signals.c.ts)
    with engine.connect() as connection:
        return {row.signal_id: tuple(row[1:]) for row in connection.execute(query)}


def as_items(batch):
    return [{**item, "ts": item["ts"].replace("Z", "+00:00")} for item in batch]


def test_a_batch_is_stored_with_its_values_and_batch_id(engine):
    with engine.begin() as connection:
        inserted = store.insert_signals(connection, "batch-1", as_items(make_batch(3, prefix="s")))

    assert inserted == 3
    rows = stored(engine)
    assert sorted(rows) == ["s-0", "s-1", "s-2"]
    batch_id, value, ts = rows["s-2"]
    assert (batch_id, value) == ("batch-1", 3.0)
    assert ts.replace(tzinfo=ts.tzinfo or UTC) == datetime(2025, 3, 1, 12, 2, tzinfo=UTC)


def test_a_batch_written_twice_inserts_nothing_the_second_time(engine):
    items = as_items(make_batch(50, prefix="r"))
    with engine.begin() as connection:
        first = store.insert_signals(connection, "batch-1", items)
    with engine.begin() as connection:
        second = store.insert_signals(connection, "batch-1", items)

    assert (first, second) == (50, 0)
    assert len(stored(engine)) == 50


def test_a_later_batch_repeating_signals_adds_only_the_new_ones(engine):
    with engine.begin() as connection:
        store.insert_signals(connection, "early", as_items(make_batch(4, prefix="o")))
    later = as_items(make_batch(6, prefix="o"))
    later[0] = {**later[0], "value": 99.0}  # a resend with another value changes nothing

    with engine.begin() as connection:
        inserted = store.insert_signals(connection, "late", later)

    rows = stored(engine)
    assert inserted == 2
    assert {key: batch for key, (batch, _value, _ts) in rows.items()} == {
        "o-0": "early",
        "o-1": "early",
        "o-2": "early",
        "o-3": "early",
        "o-4": "late",
        "o-5": "late",
    }
    assert rows["o-0"][1] == 1.0


def test_a_rolled_back_transaction_leaves_no_row(engine):
    with pytest.raises(RuntimeError), engine.begin() as connection:
        store.insert_signals(connection, "doomed", as_items(make_batch(5, prefix="d")))
        raise RuntimeError("the worker died before its commit")

    assert stored(engine) == {}


def test_attributes_are_set_on_the_named_signals_only(engine):
    with engine.begin() as connection:
        store.insert_signals(connection, "b", as_items(make_batch(3, prefix="a")))
        written = store.set_attributes(
            connection, {"a-0": {"zscore": -1.5, "gpu_slot": 0}, "a-2": {"zscore": 1.5}}
        )

    with engine.connect() as connection:
        rows = dict(connection.execute(sa.select(signals.c.signal_id, signals.c.attributes)).all())
    assert written == 2
    assert rows == {"a-0": {"zscore": -1.5, "gpu_slot": 0}, "a-1": None, "a-2": {"zscore": 1.5}}


def test_batch_values_finds_the_signals_the_batch_stored_first(engine):
    with engine.begin() as connection:
        store.insert_signals(connection, "first", as_items(make_batch(2, prefix="v")))
        store.insert_signals(connection, "second", as_items(make_batch(4, prefix="v")))
        found = store.batch_values(connection, "second", ["v-0", "v-1", "v-2", "v-3"])

    assert [(row.signal_id, row.value) for row in found] == [("v-2", 3.0), ("v-3", 4.0)]
