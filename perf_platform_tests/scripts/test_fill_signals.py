"""scripts/fill_signals.py: realistic signals, fast, on PostgreSQL (COPY) and SQLite."""

import os
import pty
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from perf_platform.db import make_engine
from perf_platform.tables import signals
from scripts.fill_signals import MEASUREMENTS, SOURCES, fill_signals, main

ROOT = Path(__file__).resolve().parents[2]
END = datetime(2024, 6, 1, tzinfo=UTC)


def stored(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as connection:
        return connection.execute(sa.select(signals).order_by(signals.c.id)).all()


def run_cli(*args: str, stderr: int = subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scripts.fill_signals", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        timeout=120,
    )


def test_copy_fills_postgres_with_realistic_signals(clean_postgres):
    result = fill_signals(clean_postgres, 5_000, seed=3, end=END, days=2, batch_size=1_000)

    rows = stored(clean_postgres)
    assert result.rows == len(rows) == 5_000
    assert len({row.signal_id for row in rows}) == 5_000
    assert all(row.signal_id.startswith("fill-") for row in rows)
    assert len({row.batch_id for row in rows}) == 5
    assert {row.source for row in rows} <= set(SOURCES)
    assert {row.name for row in rows} == set(MEASUREMENTS)
    assert all(row.value >= 0 for row in rows)
    assert all(END - timedelta(days=2) <= row.ts < END for row in rows)
    assert [row.ts for row in rows] == sorted(row.ts for row in rows)
    assert set(rows[0].attributes) == {"region", "rack"}


def test_the_fill_leaves_fresh_planner_statistics(clean_postgres):
    fill_signals(clean_postgres, 2_000, seed=1, end=END)

    with clean_postgres.connect() as connection:
        estimated = connection.execute(
            sa.text("SELECT reltuples FROM pg_class WHERE relname = 'signals'")
        ).scalar_one()
    assert estimated == 2_000


def test_a_seed_repeats_the_data_with_new_ids(clean_postgres):
    fill_signals(clean_postgres, 300, seed=11, end=END)
    fill_signals(clean_postgres, 300, seed=11, end=END)

    rows = stored(clean_postgres)
    first, second = rows[:300], rows[300:]
    assert [(r.source, r.name, r.value, r.ts) for r in first] == [
        (r.source, r.name, r.value, r.ts) for r in second
    ]
    assert not {r.signal_id for r in first} & {r.signal_id for r in second}


def test_sqlite_gets_the_same_rows_by_batched_inserts(sqlite_url, clean_postgres):
    sqlite_engine = make_engine(sqlite_url)

    fill_signals(sqlite_engine, 1_200, seed=5, end=END, batch_size=500)
    fill_signals(clean_postgres, 1_200, seed=5, end=END, batch_size=500)

    on_sqlite, on_postgres = stored(sqlite_engine), stored(clean_postgres)
    assert [(r.source, r.name, r.value) for r in on_sqlite] == [
        (r.source, r.name, r.value) for r in on_postgres
    ]
    assert [r.ts.replace(tzinfo=UTC) for r in on_sqlite] == [r.ts for r in on_postgres]
    assert on_sqlite[0].attributes == on_postgres[0].attributes


def test_progress_reports_every_batch(clean_postgres):
    seen: list[int] = []

    fill_signals(clean_postgres, 2_500, seed=2, batch_size=1_000, progress=seen.append)

    assert seen == [1_000, 2_000, 2_500]


def test_the_command_prints_one_result_line_and_no_progress_off_a_terminal(postgres_url):
    url = postgres_url.render_as_string(hide_password=False)

    result = run_cli("--rows", "1500", "--database-url", url, "--seed", "4")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("filled 1,500 signals into postgresql+psycopg://")
    assert "rows/s" in result.stdout
    assert "filling signals" not in result.stderr


def test_the_command_shows_progress_on_a_terminal(postgres_url):
    url = postgres_url.render_as_string(hide_password=False)
    controller, terminal = pty.openpty()
    try:
        result = run_cli(
            "--rows", "3000", "--database-url", url, "--batch-size", "1000", stderr=terminal
        )
        shown = os.read(controller, 65536).decode()
    finally:
        os.close(controller)
        os.close(terminal)

    assert result.returncode == 0
    assert "filling signals: 3,000/3,000 rows (100.0%" in shown


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ([], "the following arguments are required: --rows"),
        (["--rows", "0"], "argument --rows: must be at least 1, not 0"),
        (["--rows", "many"], "argument --rows: not a whole number: 'many'"),
        (["--rows", "10", "--days", "-1"], "argument --days: must be positive, not -1"),
        (["--rows", "10", "--end", "soon"], "argument --end: not an ISO 8601 time: 'soon'"),
        (["--rows", "10", "--end", "0001-01-01T00:00+01:00"], "argument --end: out of range"),
    ],
)
def test_bad_arguments_exit_2_with_the_usage(args, complaint, capsys):
    with pytest.raises(SystemExit) as exited:
        main(args)

    assert exited.value.code == 2
    printed = capsys.readouterr()
    assert printed.err.startswith("usage: python -m scripts.fill_signals")
    assert complaint in printed.err
    assert printed.out == ""


def test_an_unreachable_database_is_one_line_without_the_password():
    result = run_cli("--rows", "10", "--database-url", "postgresql://u:hunter2@127.0.0.1:1/x")

    assert result.returncode == 1
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("fill_signals: cannot connect to database")
