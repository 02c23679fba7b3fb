import random

import pytest

from perf_platform.regression import RegressionRule, RunSample, Verdict, assess

RULE = RegressionRule()


def draw(
    rng: random.Random,
    *,
    uncached_factor: float = 1.0,
    cached_factor: float = 1.0,
    host_factor: float = 1.0,
) -> RunSample:
    """One run: a host-wide factor shared by both phases, and noise of each phase's own."""
    host = host_factor * rng.lognormvariate(0, 0.05)
    return RunSample(
        uncached_p50_ms=8.0 * uncached_factor * host * rng.lognormvariate(0, 0.03),
        cached_p50_ms=0.5 * cached_factor * host * rng.lognormvariate(0, 0.03),
        uncached_spread=0.2,
        cached_spread=0.4,
    )


@pytest.fixture
def history() -> list[RunSample]:
    rng = random.Random(20261203)
    return [draw(rng) for _ in range(20)]


def test_twenty_runs_from_the_same_distribution_raise_no_alarm(history):
    rng = random.Random(7)

    verdicts = [assess(draw(rng), history, RULE).verdict for _ in range(20)]

    assert verdicts == [Verdict.OK] * 20


def test_a_25_percent_slower_model_is_flagged(history):
    rng = random.Random(11)

    assessments = [assess(draw(rng, uncached_factor=1.25), history, RULE) for _ in range(20)]

    assert [a.verdict for a in assessments] == [Verdict.REGRESSION] * 20
    assert not assessments[0].passed
    assert "uncached_p50_ms" in assessments[0].reason


def test_a_25_percent_slower_cache_is_flagged(history):
    rng = random.Random(13)

    assessment = assess(draw(rng, cached_factor=1.25), history, RULE)

    assert assessment.verdict is Verdict.REGRESSION
    assert "cached_p50_ms" in assessment.reason


def test_a_host_slower_as_a_whole_is_drift_not_a_regression(history):
    rng = random.Random(17)

    assessment = assess(draw(rng, host_factor=1.3), history, RULE)

    assert assessment.verdict is Verdict.OK
    assert "host drift" in assessment.reason


def test_too_little_history_passes_and_says_so(history):
    assessment = assess(history[-1], history[:3], RULE)

    assert assessment.verdict is Verdict.INSUFFICIENT_HISTORY
    assert assessment.passed
    assert "3 earlier runs" in assessment.reason


def test_a_noisy_run_is_marked_noisy_even_when_slower(history):
    slow_and_noisy = RunSample(uncached_p50_ms=20.0, cached_p50_ms=0.5, uncached_spread=3.0)

    assessment = assess(slow_and_noisy, history, RULE)

    assert assessment.verdict is Verdict.NOISY
    assert assessment.passed


def test_only_the_window_of_recent_runs_counts():
    old_slow = [RunSample(16.0, 0.5) for _ in range(30)]
    recent_fast = [RunSample(8.0, 0.5) for _ in range(20)]

    assessment = assess(RunSample(10.0, 0.5), old_slow + recent_fast, RULE)

    assert assessment.history_size == 20
    assert assessment.changes["uncached_p50_ms"].median == 8.0
    assert assessment.verdict is Verdict.REGRESSION
