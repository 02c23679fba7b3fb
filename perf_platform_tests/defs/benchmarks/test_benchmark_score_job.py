"""benchmark_score_job end to end: the real scoring service, the real database."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from perf_platform.definitions import defs
from perf_platform.defs.benchmarks.assets import score_benchmarks
from perf_platform.defs.resources import BenchmarkStoreResource
from perf_platform.tables import score_benchmarks as table
from perf_platform_tests.servers import free_port

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
SMALL_RUN = {"ops": {"score_benchmark_run": {"config": {"runs": 20, "warmup": 2}}}}


def url_of(engine_or_url) -> str:
    url = getattr(engine_or_url, "url", engine_or_url)
    return url.render_as_string(hide_password=False) if hasattr(url, "render_as_string") else url


def stored_rows(url: str) -> list[sa.Row]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(table).order_by(table.c.id)).all()
    engine.dispose()
    return rows


def run_job(store: BenchmarkStoreResource) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("benchmark_score_job")
    return job.execute_in_process(
        run_config=SMALL_RUN,
        instance=dg.DagsterInstance.ephemeral(),
        resources={"benchmark_store": store},
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_job_writes_one_row_per_phase(backend, sqlite_url, clean_postgres):
    url = sqlite_url if backend == "sqlite" else url_of(clean_postgres)

    result = run_job(BenchmarkStoreResource(database_url=url))

    assert result.success
    rows = stored_rows(url)
    assert [row.phase for row in rows] == ["uncached", "cached"]
    for row in rows:
        assert row.run_id == result.run_id
        assert row.benchmark == "score"
        assert row.runs == 20
        assert row.errors == 0
        assert 0 < row.p50_ms <= row.p95_ms <= row.p99_ms
        assert row.total_seconds > 0
        assert row.host and row.config_hash
        assert row.cache_backend in {"memory", "redis", "redis+near"}
        assert row.config["runs"] == 20
        # No history yet: the run is not judged (a busy machine may also make it noisy).
        assert row.verdict in {"insufficient_history", "noisy"}
        assert row.details["speedup"] > 1


def test_the_materialization_carries_the_numbers_as_floats(sqlite_url):
    result = run_job(BenchmarkStoreResource(database_url=sqlite_url))

    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("score_benchmark_run")
    ]
    metadata = event.materialization.metadata
    for name in ("uncached_p50_ms", "cached_p50_ms", "cached_p99_ms", "speedup", "floor_p50_ms"):
        assert isinstance(metadata[name], dg.FloatMetadataValue), name
        assert metadata[name].value > 0
    summary = metadata["summary"].value.splitlines()
    assert summary[0].startswith("Uncached: ") and summary[0].endswith(" for 20 runs")
    assert summary[1].startswith("Cached:   ") and summary[1].endswith(" for 20 runs")


def test_writing_the_same_run_again_adds_nothing(sqlite_url):
    store = BenchmarkStoreResource(database_url=sqlite_url)
    run_job(store)
    rows = stored_rows(sqlite_url)
    again = [
        {column: getattr(row, column) for column in row._fields if column != "id"} for row in rows
    ]

    result = score_benchmarks(
        context=dg.build_asset_context(), score_benchmark_run=again, benchmark_store=store
    )

    assert result.metadata["rows_inserted"].value == 0
    assert len(stored_rows(sqlite_url)) == 2


class DroppingStore(BenchmarkStoreResource):
    """Kills its own database connection once, right after the INSERT and before the commit."""

    def engine(self) -> sa.Engine:
        engine = super().engine()
        if not getattr(engine, "_drops_once", False):
            engine._drops_once = True  # type: ignore[attr-defined]
            dropped: list[int] = []

            @sa.event.listens_for(engine, "after_cursor_execute")
            def drop(conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
                if statement.startswith("INSERT INTO score_benchmarks") and not dropped:
                    pid = conn.connection.dbapi_connection.info.backend_pid
                    dropped.append(pid)
                    admin = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
                    with admin.connect() as killer:
                        killer.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                    admin.dispose()

        return engine


def test_a_dropped_connection_during_the_write_leaves_no_partial_rows(clean_postgres):
    url = url_of(clean_postgres)

    result = run_job(DroppingStore(database_url=url))

    # The first attempt lost its connection before the commit and wrote nothing; the retry
    # policy ran the write again and the run's two rows landed exactly once.
    assert result.success
    assert result.retry_attempts_for_node("score_benchmarks") == 1
    rows = stored_rows(url)
    assert [(row.run_id, row.phase) for row in rows] == [
        (result.run_id, "uncached"),
        (result.run_id, "cached"),
    ]


def _env(tmp_path: Path, database_url: str) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PERF_PLATFORM_DATABASE_URL": database_url,
    }


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_dagster_asset_materialize_of_everything_succeeds(
    backend, tmp_path, sqlite_url, clean_postgres
):
    url = sqlite_url if backend == "sqlite" else url_of(clean_postgres)

    completed = subprocess.run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "perf_platform.definitions",
            "--select",
            "*",
        ],
        cwd=ROOT,
        env=_env(tmp_path, url),
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert completed.returncode == 0, completed.stderr[-4000:]
    phases = [row.phase for row in stored_rows(url) if row.benchmark == "score"]
    assert phases == ["uncached", "cached"]


@pytest.mark.slow
def test_make_run_prints_the_founding_lines(tmp_path, sqlite_url):
    completed = subprocess.run(
        [str(BIN / "perf-platform"), "run"],
        cwd=ROOT,
        env=_env(tmp_path, sqlite_url),
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    lines = completed.stdout.splitlines()
    uncached = next(i for i, line in enumerate(lines) if line.startswith("Uncached: "))
    assert lines[uncached].endswith(" for 100 runs")
    assert lines[uncached + 1].startswith("Cached:   ")
    assert "check score_regression_check on score_benchmarks passed" in completed.stdout
    assert " succeeded in " in lines[-1]


GRAPH_QUERY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    name jobs { name } schedules { name cronSchedule executionTimezone }
    assetNodes { assetKey { path } }
} } } }
"""


@pytest.mark.slow
def test_dagster_dev_serves_the_graph_the_job_and_the_schedule(tmp_path, sqlite_url):
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=_env(tmp_path, sqlite_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        nodes = _query_when_up(f"http://127.0.0.1:{port}/graphql", GRAPH_QUERY, process)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    [repository] = nodes
    assert "benchmark_score_job" in {job["name"] for job in repository["jobs"]}
    [schedule] = [s for s in repository["schedules"] if s["name"] == "benchmark_score_schedule"]
    assert (schedule["cronSchedule"], schedule["executionTimezone"]) == ("0 2 * * *", "UTC")
    assets = {"/".join(node["assetKey"]["path"]) for node in repository["assetNodes"]}
    assert {"score_benchmark_run", "score_benchmarks"} <= assets


def _query_when_up(url: str, query: str, process: subprocess.Popen) -> list[dict]:
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        assert process.poll() is None, "dagster dev exited early"
        try:
            response = httpx.post(url, json={"query": query}, timeout=5)
            data = response.json()["data"]["repositoriesOrError"]
            if data.get("nodes"):
                return data["nodes"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass
        time.sleep(1)
    raise AssertionError("dagster dev did not serve the code location within 150 s")
