"""scripts/benchmark_score.py against the real service: its report, its JSON, its honesty."""

import dataclasses
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from perf_platform.servers import serve_asgi
from perf_platform.settings import Settings, get_settings
from perf_platform_tests.servers import free_port
from scripts.benchmark_score import (
    BenchmarkError,
    BenchmarkResult,
    PhaseCheckError,
    PhaseStats,
    main,
    percentile,
    verify_phase,
)
from services.scoring.app import create_app
from services.scoring.model import MODEL_VERSION

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--runs", "5", "--warmup", "1"]
ITERATIONS = "20"


@pytest.fixture
def bench_env(monkeypatch, redis_url, redis_prefix):
    """The environment the in-process service reads: the test Redis under keys of our own."""
    env = {
        "REDIS_URL": redis_url,
        "SCORE_CACHE_PREFIX": f"{redis_prefix}bench:{uuid.uuid4().hex[:8]}:",
        "SCORE_MODEL_ITERATIONS": ITERATIONS,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


def test_the_json_has_every_promised_field(bench_env, capsys):
    result = main([*SMALL, "--json"])

    printed = json.loads(capsys.readouterr().out)
    assert printed == result.to_dict()
    assert set(printed) == {field.name for field in dataclasses.fields(BenchmarkResult)}
    for phase in ("uncached", "cached"):
        assert set(printed[phase]) == {field.name for field in dataclasses.fields(PhaseStats)}
        assert printed[phase]["phase"] == phase
        assert printed[phase]["runs"] == 5
        assert printed[phase]["errors"] == 0
        assert 0 < printed[phase]["p50_ms"] <= printed[phase]["p95_ms"] <= printed[phase]["p99_ms"]
        assert printed[phase]["total_seconds"] > 0
    assert printed["floor_p50_ms"] > 0
    assert printed["speedup"] == pytest.approx(
        printed["uncached"]["total_seconds"] / printed["cached"]["total_seconds"]
    )
    assert printed["speedup_p50"] == pytest.approx(
        printed["uncached"]["p50_ms"] / printed["cached"]["p50_ms"]
    )
    assert printed["cache_backend"] == "redis+near"
    assert printed["cached_hits_by_tier"] == {"near": 5, "far": 0}
    assert printed["model_version"] == MODEL_VERSION
    assert printed["base_url"].startswith("http://127.0.0.1:")
    assert printed["config"]["runs"] == 5
    assert printed["config"]["warmup"] == 1
    assert printed["config"]["model_iterations"] == int(ITERATIONS)
    assert printed["config"]["near_cache_entries"] == 10_000
    assert printed["config"]["target"] == "in-process"
    assert "base_url" not in printed["config"]


def test_the_report_begins_with_the_founding_lines(bench_env, capsys):
    result = main(SMALL)

    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"Uncached: \d+\.\d\ds for 5 runs", lines[0])
    assert re.fullmatch(r"Cached:   \d+\.\d\ds for 5 runs", lines[1])
    assert lines[0] == f"Uncached: {result.uncached.total_seconds:.2f}s for 5 runs"
    report = "\n".join(lines)
    for words in ("p50 ms", "p95 ms", "p99 ms", "floor", "speedup:", "x at p50"):
        assert words in report
    assert (
        "cache backend:  redis+near (near tier of 10000 entries; cached phase hits: far 0, near 5)"
        in lines
    )


def test_with_the_near_tier_off_the_cached_phase_measures_redis(bench_env, monkeypatch, capsys):
    monkeypatch.setenv("SCORE_NEAR_CACHE_ENTRIES", "0")
    get_settings.cache_clear()

    result = main(SMALL)

    assert result.cache_backend == "redis"
    assert result.config["near_cache_entries"] == 0
    assert result.cached_hits_by_tier == {"near": 0, "far": 5}
    assert "cache backend:  redis (cached phase hits: far 5, near 0)" in capsys.readouterr().out


def test_without_redis_url_the_in_process_service_uses_the_memory_cache(
    bench_env, monkeypatch, capsys
):
    monkeypatch.delenv("REDIS_URL")
    get_settings.cache_clear()

    result = main(SMALL)

    assert result.cache_backend == "memory"
    assert result.config["near_cache_entries"] == 0
    assert result.cached_hits_by_tier == {"near": 5, "far": 0}
    assert "cache backend:  memory (cached phase hits: far 0, near 5)" in capsys.readouterr().out


def test_url_measures_a_running_instance(redis_url, redis_prefix, capsys):
    settings = Settings(
        redis_url=redis_url,
        score_cache_prefix=f"{redis_prefix}bench-url:",
        score_model_iterations=7,
    )
    with serve_asgi(create_app(settings)) as base_url:
        result = main(["--url", base_url + "/", *SMALL])

    assert result.base_url == base_url
    assert result.config["target"] == "url"
    assert result.config["model_iterations"] == 7
    assert result.cached.errors == result.uncached.errors == 0


def test_the_phase_check_fails_when_the_cache_is_switched_off(bench_env, monkeypatch):
    monkeypatch.setenv("SCORE_CACHE_ENABLED", "false")
    get_settings.cache_clear()

    with pytest.raises(PhaseCheckError, match=r"cached phase .* 5 of 5 .*\(X-Cache: miss x5\)"):
        main(SMALL)


def test_a_url_that_is_not_a_scoring_service_is_an_error_not_a_result():
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(BenchmarkError, match="does not answer GET /info") as caught:
        main(["--url", url, *SMALL])

    assert not isinstance(caught.value, PhaseCheckError)


def test_a_hit_in_the_uncached_phase_fails_the_check():
    with pytest.raises(PhaseCheckError, match=r"uncached phase .* 1 of 3 .*\(X-Cache: hit x1\)"):
        verify_phase("uncached", "miss", ["miss", "hit", "miss"])


def test_a_missing_x_cache_fails_the_check():
    with pytest.raises(PhaseCheckError, match="X-Cache: None x2"):
        verify_phase("cached", "hit", [None, None])


def test_honest_phases_pass_the_check():
    verify_phase("uncached", "miss", ["miss"] * 4)
    verify_phase("cached", "hit", ["hit"] * 4)


@pytest.mark.parametrize(
    "argv",
    [
        ["--runs", "0"],
        ["--runs", "many"],
        ["--warmup", "-1"],
        ["--unknown"],
        ["--url", "127.0.0.1:8000"],
        ["--url", "ftp://127.0.0.1/"],
        ["--url", "http://127.0.0.1:port/"],
    ],
)
def test_bad_arguments_exit_2_with_the_usage(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        main(argv)

    assert caught.value.code == 2
    assert "usage: benchmark_score.py" in capsys.readouterr().err


def test_percentiles_interpolate_between_neighbours():
    values = [float(n) for n in range(1, 101)]

    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([3.0], 99) == 3.0


def run_script(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "entry", [["scripts/benchmark_score.py"], ["-m", "scripts.benchmark_score"]]
)
def test_run_as_a_script_a_dishonest_phase_exits_1_with_one_line(entry, bench_env):
    completed = run_script([*entry, *SMALL], {**bench_env, "SCORE_CACHE_ENABLED": "false"})

    assert completed.returncode == 1
    assert completed.stdout == ""
    [line] = [line for line in completed.stderr.splitlines() if line.startswith("benchmark_score:")]
    assert line.startswith("benchmark_score: phase check failed: cached phase is not honest")


@pytest.mark.slow
def test_run_as_a_script_it_measures_and_exits_0(bench_env):
    completed = run_script(["scripts/benchmark_score.py", *SMALL, "--json"], bench_env)

    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["cached"]["runs"] == 5


@pytest.mark.slow
def test_run_as_a_script_bad_arguments_exit_2_with_the_usage():
    completed = run_script(["-m", "scripts.benchmark_score", "--runs", "0"], {})

    assert completed.returncode == 2
    assert completed.stderr.startswith("usage: benchmark_score.py")
    assert "--runs: must be at least 1" in completed.stderr


def test_quiet_prints_nothing_and_still_returns_the_result(bench_env, capsys):
    result = main([*SMALL, "--quiet"])

    assert capsys.readouterr().out == ""
    assert result.uncached.runs == result.cached.runs == int(SMALL[SMALL.index("--runs") + 1])
