"""score_uncached_profile: a cProfile capture of the scoring model, kept and summarized."""

import pstats
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from perf_platform.defs.profiling.assets import PROFILE_BENCHMARK, score_uncached_profile
from perf_platform.defs.resources import BenchmarkStoreResource
from perf_platform.settings import get_settings
from perf_platform.tables import score_benchmarks as table

SMALL = {"scores": 4, "features": 8, "iterations": 5}


@pytest.fixture
def profile_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PROFILE_DIR", str(tmp_path / "profiles"))
    get_settings.cache_clear()
    yield tmp_path / "profiles"
    get_settings.cache_clear()


@pytest.fixture
def captured(profile_dir, clean_postgres) -> dg.ExecuteInProcessResult:
    url = clean_postgres.url.render_as_string(hide_password=False)
    result = dg.materialize(
        [score_uncached_profile],
        resources={"benchmark_store": BenchmarkStoreResource(database_url=url)},
        run_config={"ops": {"score_uncached_profile": {"config": SMALL}}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    return result


def test_the_prof_file_is_kept_and_loads_in_pstats(captured, profile_dir):
    [prof] = profile_dir.glob("*.prof")

    assert prof.name == f"score_uncached-{captured.run_id}.prof"
    functions = {name for (_file, _line, name) in pstats.Stats(str(prof)).stats}
    assert {"compute_score", "embed"} <= functions


def test_the_top_twenty_are_shown_as_a_table(captured):
    [materialization] = captured.asset_materializations_for_node("score_uncached_profile")
    table_md = materialization.metadata["top_functions"].value

    rows = table_md.splitlines()[2:]
    assert len(rows) == 20
    assert any("services/scoring/model.py" in row and "compute_score" in row for row in rows)
    assert "summary" in materialization.metadata


def test_the_summary_is_stored_in_score_benchmarks(captured, clean_postgres, profile_dir):
    with clean_postgres.connect() as connection:
        [row] = connection.execute(sa.select(table).where(table.c.run_id == captured.run_id)).all()

    assert (row.benchmark, row.phase, row.runs) == (PROFILE_BENCHMARK, "capture", 4)
    assert row.total_seconds > 0
    assert row.details["prof_path"] == str(profile_dir / f"score_uncached-{captured.run_id}.prof")
    top = row.details["top"]
    assert len(top) == 20
    assert set(top[0]) >= {"function", "ncalls", "tottime_s", "cumtime_s"}
    cumulative = [entry["cumtime_s"] for entry in top]
    assert cumulative == sorted(cumulative, reverse=True)
    assert row.config["iterations"] == 5
