"""The regression check, fed a stored history in PostgreSQL."""

import random
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from perf_platform.defs.benchmarks.checks import score_regression_check
from perf_platform.defs.resources import BenchmarkStoreResource
from perf_platform.results import benchmark_row, record_results
from perf_platform.tables import score_benchmarks

CONFIG = {"runs": 100, "warmup": 10, "cache_backend": "redis"}
START = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


class Nightly:
    """Writes one scoring benchmark run a night, with numbers drawn from one noise model."""

    def __init__(self, engine: sa.Engine, seed: int) -> None:
        self.engine = engine
        self.rng = random.Random(seed)
        self.night = 0

    def run(self, *, uncached_factor: float = 1.0, spread: float = 0.2) -> str:
        host = self.rng.lognormvariate(0, 0.05)
        p50 = {
            "uncached": 8.0 * uncached_factor * host * self.rng.lognormvariate(0, 0.03),
            "cached": 0.5 * host * self.rng.lognormvariate(0, 0.03),
        }
        run_id = f"run-{self.night:03d}"
        at = START + timedelta(days=self.night)
        self.night += 1
        record_results(
            self.engine,
            [
                benchmark_row(
                    run_id=run_id,
                    benchmark="score",
                    phase=phase,
                    runs=100,
                    config=CONFIG,
                    created_at=at,
                    p50_ms=value,
                    p95_ms=value * (1 + spread),
                )
                for phase, value in p50.items()
            ],
        )
        return run_id


def check(engine: sa.Engine) -> dg.AssetCheckResult:
    url = engine.url.render_as_string(hide_password=False)
    return score_regression_check(benchmark_store=BenchmarkStoreResource(database_url=url))


def verdicts(engine: sa.Engine, run_id: str) -> set[str | None]:
    with engine.connect() as connection:
        query = sa.select(score_benchmarks.c.verdict).where(score_benchmarks.c.run_id == run_id)
        return set(connection.execute(query).scalars())


@pytest.fixture
def nightly(clean_postgres) -> Nightly:
    return Nightly(clean_postgres, seed=42)


def test_too_little_history_passes_with_a_note(nightly):
    for _ in range(3):
        nightly.run()

    result = check(nightly.engine)

    assert result.passed
    assert result.description.startswith("insufficient_history: 2 earlier runs")
    assert verdicts(nightly.engine, "run-002") == {"insufficient_history"}


def test_a_first_run_has_no_history_even_when_its_rows_differ_in_time(clean_postgres):
    # Rows written without a shared timestamp: the cached row is a moment newer than the
    # uncached one, and the run must still not count as its own history.
    record_results(
        clean_postgres,
        [
            benchmark_row(
                run_id="only",
                benchmark="score",
                phase=phase,
                runs=100,
                config=CONFIG,
                p50_ms=p50,
                p95_ms=p50 * 1.2,
            )
            for phase, p50 in (("uncached", 8.0), ("cached", 0.5))
        ],
    )

    result = check(clean_postgres)

    assert result.description.startswith("insufficient_history: 0 earlier runs")


def test_twenty_nights_from_the_same_distribution_raise_no_alarm(nightly):
    for _ in range(10):
        nightly.run()

    results = []
    for _ in range(20):
        nightly.run()
        results.append(check(nightly.engine))

    assert [r.passed for r in results] == [True] * 20
    assert {r.metadata["verdict"].value for r in results} == {"ok"}


def test_an_injected_25_percent_slowdown_fails_with_severity_error(nightly):
    for _ in range(15):
        nightly.run()
    slow_run = nightly.run(uncached_factor=1.25)

    result = check(nightly.engine)

    assert not result.passed
    assert result.severity is dg.AssetCheckSeverity.ERROR
    assert result.description.startswith("regression: uncached_p50_ms")
    assert result.metadata["run_id"].value == slow_run
    assert result.metadata["history_runs"].value == 15
    assert 15 < result.metadata["uncached_p50_ms_change_pct"].value < 40
    assert verdicts(nightly.engine, slow_run) == {"regression"}


def test_a_noisy_run_is_marked_noisy_and_left_out_of_later_history(nightly):
    for _ in range(10):
        nightly.run()
    noisy_run = nightly.run(uncached_factor=1.25, spread=4.0)

    noisy = check(nightly.engine)
    nightly.run()
    following = check(nightly.engine)

    assert noisy.passed
    assert noisy.metadata["verdict"].value == "noisy"
    assert verdicts(nightly.engine, noisy_run) == {"noisy"}
    assert following.metadata["history_runs"].value == 10
