"""Profile a Python module run as __main__ and print its costliest functions.

    python scripts/capture_profile.py MODULE --output run.prof [--sort cumulative] [--limit 20]
                                      [-- ARGS...]

MODULE runs as `python -m MODULE ARGS...` would (sys.argv set, SystemExit caught), under
cProfile. The profile is written to --output in cProfile's format (pstats and snakeviz read it)
and the top --limit functions by --sort are printed. A module that does not exist or fails to
import: one line on stderr, exit status 2, nothing written. A module that raises: its traceback
on stderr, the profile still written, exit status 1.
"""

import argparse
import cProfile
import os
import pstats
import runpy
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.util import find_spec
from pathlib import Path

# pstats tuples are (primitive calls, calls, own time, cumulative time, callers).
SORT_KEYS = {
    "cumulative": lambda row: (-row[3], -row[2]),
    "tottime": lambda row: (-row[2], -row[3]),
    "ncalls": lambda row: (-row[1], -row[3]),
    "pcalls": lambda row: (-row[0], -row[3]),
}
DEFAULT_LIMIT = 20

# Frames that are the harness, not the workload: runpy's own and this module's.
# (CPython 3.11 reports runpy's frames as "<frozen runpy>".)
_HARNESS_FILES = {"<frozen runpy>", os.path.abspath(runpy.__file__), os.path.abspath(__file__)}


class ModuleNotRunnable(Exception):
    """The module does not exist or fails to import; nothing was profiled or written."""


@dataclass(frozen=True)
class FunctionStats:
    """One row of a profile: a function and what it cost."""

    function: str
    ncalls: int
    primitive_calls: int
    tottime_s: float
    cumtime_s: float

    def as_row(self) -> dict[str, object]:
        """The row as stored in score_benchmarks details: {function, ncalls, tottime_s, ...}."""
        return asdict(self)


@dataclass(frozen=True)
class ProfileCapture:
    module: str
    output: Path
    seconds: float
    exit_code: int
    top: list[FunctionStats]
    error: str | None = None


def capture_profile(
    module: str,
    output: Path | str,
    args: Sequence[str] = (),
    *,
    sort: str = "cumulative",
    limit: int = DEFAULT_LIMIT,
) -> ProfileCapture:
    """Run `module` as __main__ with `args` under cProfile and write the profile to `output`.

    Raises ModuleNotRunnable (writing nothing) when the module cannot be found or imported.
    A SystemExit ends the run normally (its code is kept); another exception is kept as the
    capture's `error` and the profile is written all the same.
    """
    if sort not in SORT_KEYS:
        raise ValueError(f"sort must be one of {sorted(SORT_KEYS)}, not {sort!r}")
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    _check_importable(module)

    output = Path(output)
    profiler = cProfile.Profile()
    exit_code, error = 0, None
    saved_argv = sys.argv
    sys.argv = [module, *args]
    started = time.perf_counter()
    try:
        profiler.enable()
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        finally:
            profiler.disable()
    except SystemExit as exc:
        exit_code = _exit_code(exc)
    except (ImportError, SyntaxError) as exc:
        raise ModuleNotRunnable(f"cannot import {module}: {_one_line(exc)}") from exc
    except Exception as exc:
        exit_code, error = 1, "".join(traceback.format_exception(exc)).rstrip()
    finally:
        sys.argv = saved_argv
    seconds = time.perf_counter() - started

    _write_atomically(profiler, output)
    stats = pstats.Stats(str(output))
    return ProfileCapture(
        module=module,
        output=output,
        seconds=seconds,
        exit_code=exit_code,
        top=top_functions(stats, sort=sort, limit=limit),
        error=error,
    )


def _check_importable(module: str) -> None:
    try:
        spec = find_spec(module)
    except (ImportError, ValueError) as exc:
        # find_spec imports the parent packages, which may themselves be missing or broken.
        raise ModuleNotRunnable(f"cannot import {module}: {_one_line(exc)}") from exc
    if spec is None:
        raise ModuleNotRunnable(f"no module named {module!r}")


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _write_atomically(profiler: cProfile.Profile, output: Path) -> None:
    # A reader (snakeviz, a Dagster asset) never sees half a profile.
    output.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    os.close(descriptor)
    try:
        profiler.dump_stats(temporary)
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def top_functions(
    stats: pstats.Stats, *, sort: str = "cumulative", limit: int = DEFAULT_LIMIT
) -> list[FunctionStats]:
    """The `limit` costliest functions of a profile by `sort`, the harness's frames left out."""
    rows = [
        (key, value)
        for key, value in stats.stats.items()  # type: ignore[attr-defined]
        if not _is_harness(key)
    ]
    rows.sort(key=lambda item: SORT_KEYS[sort](item[1]))
    return [
        FunctionStats(
            function=function_label(key),
            ncalls=value[1],
            primitive_calls=value[0],
            tottime_s=value[2],
            cumtime_s=value[3],
        )
        for key, value in rows[:limit]
    ]


def _is_harness(key: tuple[str, int, str]) -> bool:
    filename, _line, name = key
    if filename == "~":
        return "_lsprof.Profiler" in name
    return filename in _HARNESS_FILES or os.path.abspath(filename) in _HARNESS_FILES


def function_label(key: tuple[str, int, str]) -> str:
    """`package/module.py:42(name)`, or pstats' `{built-in ...}` form for C functions."""
    filename, line, name = key
    if filename == "~":
        return name
    return f"{_short_path(filename)}:{line}({name})"


def _short_path(filename: str) -> str:
    # Site-packages and the current directory say nothing; the package path says where.
    marker = f"site-packages{os.sep}"
    if marker in filename:
        return filename.split(marker, 1)[1]
    cwd = os.getcwd() + os.sep
    if filename.startswith(cwd):
        return filename[len(cwd) :]
    return filename


def format_table(top: Sequence[FunctionStats]) -> str:
    """The rows as a fixed-width text table, like pstats prints them."""
    lines = [
        f"{'ncalls':>12} {'tottime':>9} {'percall':>9} {'cumtime':>9} {'percall':>9}  function"
    ]
    for row in top:
        calls = (
            str(row.ncalls)
            if row.ncalls == row.primitive_calls
            else f"{row.ncalls}/{row.primitive_calls}"
        )
        lines.append(
            f"{calls:>12} {row.tottime_s:>9.4f} {row.tottime_s / max(row.ncalls, 1):>9.6f} "
            f"{row.cumtime_s:>9.4f} {row.cumtime_s / max(row.primitive_calls, 1):>9.6f}  "
            f"{row.function}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    module_args: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, module_args = argv[:split], argv[split + 1 :]

    parser = argparse.ArgumentParser(
        prog="capture_profile.py",
        description="Profile MODULE run as __main__; write cProfile data; print the top functions.",
        epilog="Arguments after -- are passed to MODULE as its sys.argv[1:].",
    )
    parser.add_argument("module", help="a module name, as for python -m")
    parser.add_argument("--output", "-o", required=True, type=Path, help="the .prof file to write")
    parser.add_argument("--sort", choices=sorted(SORT_KEYS), default="cumulative")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="rows to print")
    options = parser.parse_args(argv)
    if options.limit < 1:
        parser.error("--limit must be at least 1")

    try:
        capture = capture_profile(
            options.module,
            options.output,
            module_args,
            sort=options.sort,
            limit=options.limit,
        )
    except ModuleNotRunnable as exc:
        print(f"capture_profile: {exc}", file=sys.stderr)
        return 2

    if capture.error:
        print(capture.error, file=sys.stderr)
    print(
        f"profiled {capture.module} in {capture.seconds:.3f}s (exit status {capture.exit_code}); "
        f"wrote {capture.output}"
    )
    print(f"top {len(capture.top)} functions by {options.sort}:")
    print(format_table(capture.top))
    return 1 if capture.error else capture.exit_code


if __name__ == "__main__":
    sys.exit(main())
