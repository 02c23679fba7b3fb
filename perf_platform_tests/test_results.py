import pytest
import sqlalchemy as sa

from perf_platform.db import make_engine
from perf_platform.results import benchmark_row, config_hash, record_results, set_verdict
from perf_platform.tables import score_benchmarks


def _row(run_id: str, phase: str, p50: float = 1.0) -> dict:
    return benchmark_row(
        run_id=run_id, benchmark="score", phase=phase, runs=100, config={"runs": 100}, p50_ms=p50
    )


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_unknown_measures_are_refused():
    with pytest.raises(TypeError, match="p42_ms"):
        benchmark_row(run_id="r", benchmark="b", phase="p", runs=1, config={}, p42_ms=1.0)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_same_run_and_phase_is_written_once(backend, sqlite_url, clean_postgres):
    engine = make_engine(sqlite_url) if backend == "sqlite" else clean_postgres

    first = record_results(engine, [_row("run-1", "uncached"), _row("run-1", "cached")])
    second = record_results(engine, [_row("run-1", "uncached", p50=9.0), _row("run-2", "cached")])

    assert (first, second) == (2, 1)
    with engine.connect() as connection:
        stored = connection.execute(
            sa.select(
                score_benchmarks.c.run_id, score_benchmarks.c.phase, score_benchmarks.c.p50_ms
            ).order_by(score_benchmarks.c.id)
        ).all()
    assert [tuple(row) for row in stored] == [
        ("run-1", "uncached", 1.0),
        ("run-1", "cached", 1.0),
        ("run-2", "cached", 1.0),
    ]


def test_set_verdict_marks_every_row_of_the_run(clean_postgres):
    record_results(clean_postgres, [_row("run-1", "uncached"), _row("run-1", "cached")])

    set_verdict(clean_postgres, "run-1", "score", "regression")

    with clean_postgres.connect() as connection:
        verdicts = connection.execute(sa.select(score_benchmarks.c.verdict)).scalars().all()
    assert verdicts == ["regression", "regression"]
