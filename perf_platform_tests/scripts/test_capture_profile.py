"""scripts/capture_profile.py: profiles a module run as __main__, writes pstats data."""

import json
import os
import pstats
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.capture_profile import ModuleNotRunnable, capture_profile

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "capture_profile.py"

# Thirty functions calling each other, so any top-20 table has twenty rows of the module's own.
WORKLOAD = """
import json
import sys

def leaf(n):
    return sum(i * i for i in range(n))

{functions}

def main():
    total = sum(globals()[f"step_{{i}}"](200) for i in range(30))
    with open(sys.argv[1], "w") as out:
        json.dump({{"argv": sys.argv, "name": __name__, "total": total}}, out)
    exit_code = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    if exit_code:
        sys.exit(exit_code)

if __name__ == "__main__":
    main()
""".format(functions="\n".join(f"def step_{i}(n):\n    return leaf(n + {i})\n" for i in range(30)))


@pytest.fixture
def workload(tmp_path, monkeypatch) -> str:
    """A module `tiny_workload` importable in this process and in subprocesses."""
    (tmp_path / "tiny_workload.py").write_text(WORKLOAD)
    (tmp_path / "broken_workload.py").write_text("import a_module_that_does_not_exist_42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "tiny_workload"


def run_script(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def table_rows(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    return lines[header + 1 :]


def test_the_profile_loads_in_pstats_and_twenty_rows_are_printed(tmp_path, workload):
    output = tmp_path / "run.prof"

    result = run_script(tmp_path, workload, "--output", str(output), "--", str(tmp_path / "o"))

    assert result.returncode == 0, result.stderr
    stats = pstats.Stats(str(output))
    profiled = {name for (_file, _line, name) in stats.stats}
    assert {"main", "leaf", "step_0", "step_29"} <= profiled
    rows = table_rows(result.stdout)
    assert len(rows) == 20
    assert "top 20 functions by cumulative" in result.stdout


def test_the_rows_are_sorted_by_cumulative_time(tmp_path, workload):
    result = run_script(tmp_path, workload, "-o", str(tmp_path / "r.prof"), "--", "out.json")

    cumulative = [float(row.split()[3]) for row in table_rows(result.stdout)]
    assert cumulative == sorted(cumulative, reverse=True)


def test_the_module_runs_as_main_with_the_arguments_after_the_separator(tmp_path, workload):
    report = tmp_path / "report.json"

    result = run_script(tmp_path, workload, "--output", "run.prof", "--", str(report))

    assert result.returncode == 0, result.stderr
    seen = json.loads(report.read_text())
    assert seen["name"] == "__main__"
    assert seen["argv"][0].endswith("tiny_workload.py")
    assert seen["argv"][1:] == [str(report)]


def test_sort_and_limit_change_the_table(tmp_path, workload):
    result = run_script(
        tmp_path, workload, "-o", "run.prof", "--sort", "tottime", "--limit", "5", "--", "o.json"
    )

    rows = table_rows(result.stdout)
    assert len(rows) == 5
    own_times = [float(row.split()[1]) for row in rows]
    assert own_times == sorted(own_times, reverse=True)


def test_a_system_exit_still_writes_the_profile(tmp_path, workload):
    output = tmp_path / "exited.prof"

    result = run_script(tmp_path, workload, "--output", str(output), "--", "o.json", "3")

    assert result.returncode == 3
    assert "leaf" in {name for (_file, _line, name) in pstats.Stats(str(output)).stats}


def test_a_missing_module_is_one_line_and_exit_2_and_nothing_written(tmp_path):
    output = tmp_path / "never.prof"

    result = run_script(tmp_path, "no_such_module_here", "--output", str(output))

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "capture_profile: no module named 'no_such_module_here'"
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_module_that_fails_to_import_is_one_line_and_exit_2(tmp_path, workload):
    output = tmp_path / "never.prof"

    result = run_script(tmp_path, "broken_workload", "--output", str(output))

    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("capture_profile: cannot import broken_workload:")
    assert "a_module_that_does_not_exist_42" in line
    assert not output.exists()


def test_a_limit_below_one_is_a_usage_error(tmp_path, workload):
    result = run_script(tmp_path, workload, "--output", "x.prof", "--limit", "0")

    assert result.returncode == 2
    assert "--limit must be at least 1" in result.stderr
    assert not (tmp_path / "x.prof").exists()


def test_it_can_be_called_as_a_function(tmp_path, workload):
    argv_before = list(sys.argv)

    capture = capture_profile(workload, tmp_path / "f.prof", [str(tmp_path / "o.json")], limit=7)

    assert capture.exit_code == 0
    assert capture.error is None
    assert len(capture.top) == 7
    assert capture.top[0].cumtime_s >= capture.top[-1].cumtime_s
    assert all(row.ncalls >= 1 for row in capture.top)
    assert sys.argv == argv_before


def test_the_function_raises_for_a_missing_module(tmp_path):
    with pytest.raises(ModuleNotRunnable, match="no module named"):
        capture_profile("no_such_module_here", tmp_path / "f.prof")
    assert not (tmp_path / "f.prof").exists()
