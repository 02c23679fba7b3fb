import subprocess
import sys

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from perf_platform import tables
from perf_platform.db import (
    DatabaseError,
    alembic_config,
    current_revision,
    ensure_schema,
    make_engine,
)

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def _table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_migrations_create_both_tables_on_sqlite(sqlite_url):
    engine = make_engine(sqlite_url)

    assert {"score_benchmarks", "signals", "alembic_version"} <= _table_names(engine)
    assert current_revision(engine) == HEAD


def test_migrations_create_both_tables_on_postgres(postgres_engine):
    assert {"score_benchmarks", "signals", "alembic_version"} <= _table_names(postgres_engine)
    indexes = {ix["name"] for ix in sa.inspect(postgres_engine).get_indexes("score_benchmarks")}
    assert "ix_score_benchmarks_history" in indexes


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_second_migration_run_changes_nothing(backend, sqlite_url, postgres_url):
    url = sqlite_url if backend == "sqlite" else postgres_url
    engine = make_engine(url)
    before = sa.inspect(engine).get_indexes("signals"), _table_names(engine)

    from perf_platform import db

    db._migrated.clear()
    ensure_schema(make_engine(url, migrate=False))

    after = sa.inspect(engine).get_indexes("signals"), _table_names(engine)
    assert after == before
    assert current_revision(engine) == HEAD


def test_the_migrations_match_the_table_definitions(postgres_engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with postgres_engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), tables.metadata)

    assert diff == []


def test_pool_size_comes_from_db_pool_size(postgres_url, monkeypatch):
    from perf_platform.settings import get_settings

    monkeypatch.setenv("DB_POOL_SIZE", "7")
    get_settings.cache_clear()
    try:
        engine = make_engine(postgres_url)
        assert engine.pool.size() == 7
    finally:
        get_settings.cache_clear()


def test_unreachable_database_gives_one_line_with_the_password_hidden():
    url = "postgresql://scorer:s3cret@127.0.0.1:1/nowhere"

    with pytest.raises(DatabaseError) as raised:
        make_engine(url)

    message = str(raised.value)
    assert "s3cret" not in message
    assert "scorer:***@127.0.0.1:1/nowhere" in message
    assert "\n" not in message


def test_cli_reports_a_wrong_database_url_without_a_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "perf_platform.cli", "migrate"],
        env={"PERF_PLATFORM_DATABASE_URL": "postgresql://u:hunter2@127.0.0.1:1/x", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr
    assert "cannot connect to database postgresql+psycopg://u:***@127.0.0.1:1/x" in result.stderr


def test_cli_rejects_a_url_that_is_not_a_url():
    result = subprocess.run(
        [sys.executable, "-m", "perf_platform.cli", "migrate", "--database-url", "nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert result.stderr.strip() == "perf-platform: not a database URL: 'nonsense'"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("nonsense://", "Can't load plugin: sqlalchemy.dialects:nonsense"),
        ("mysql://u:hunter2@127.0.0.1/x", "No module named 'MySQLdb'"),
    ],
)
def test_cli_names_a_database_it_has_no_driver_for(url, reason):
    result = subprocess.run(
        [sys.executable, "-m", "perf_platform.cli", "migrate", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("perf-platform: cannot use database URL ")
    assert reason in line
    assert "hunter2" not in line


def test_cli_run_stops_at_an_unreachable_store_before_any_asset_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "perf_platform.cli", "run"],
        env={
            "PERF_PLATFORM_DATABASE_URL": "postgresql://u:hunter2@127.0.0.1:1/x",
            "DAGSTER_HOME": str(tmp_path),
            "PATH": "",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(
        "perf-platform: cannot connect to database postgresql+psycopg://u:***@127.0.0.1:1/x: "
    )
    assert line.endswith("Connection refused")
    assert "hunter2" not in line
    assert list(tmp_path.iterdir()) == []


def test_cli_migrate_prints_the_revision(sqlite_url):
    result = subprocess.run(
        [sys.executable, "-m", "perf_platform.cli", "migrate", "--database-url", sqlite_url],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"schema at revision {HEAD} on sqlite:///")
