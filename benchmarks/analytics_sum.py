"""The analytics service against its own SQL and against the in-memory way, on N signals.

    python benchmarks/analytics_sum.py --rows 1000000 [--json]

In one run, on a scratch PostgreSQL database created for it and dropped after:
  1. fills --small-rows signals (COPY), starts the service as its own uvicorn process, runs
     every catalogue request against it and notes its resident memory;
  2. fills up to --rows, runs the same requests again and notes the memory again;
  3. times `/aggregate?group_by=source` over HTTP against the bare query (the same statement,
     same driver, from this process), interleaved, and against reading the signals into pandas
     and grouping there, the way the service used to work.
Prints a table, or JSON with --json. Targets are reported, not asserted: endpoint at most 1.5x
the bare query, at least 15x faster than in memory, service memory growing at most 20 MB.
"""

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from perf_platform.db import make_engine, normalize_url
from perf_platform.defs.analytics.catalogue import QUERIES, sample_data
from perf_platform.defs.analytics.in_memory import aggregate_in_memory, read_signals
from perf_platform.defs.analytics.service_calls import fetch_answer
from perf_platform.defs.analytics.verify import differences
from perf_platform.settings import get_settings
from scripts.fill_signals import fill_signals

ROOT = Path(__file__).resolve().parent.parent
TARGET_QUERY = next(query for query in QUERIES if query.name == "by_source")
TARGETS = {"endpoint_over_bare": 1.5, "in_memory_over_endpoint": 15.0, "service_growth_mb": 20.0}


@contextmanager
def scratch_database(server_url: str, keep: bool) -> Iterator[str]:
    admin_url = normalize_url(server_url)
    name = f"perf_platform_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        if keep:
            print(f"kept scratch database {name}", file=sys.stderr)
        else:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def service_process(database_url: str) -> Iterator[tuple[str, int]]:
    """The analytics service under uvicorn in a process of its own: (base URL, pid)."""
    port = free_port()
    env = {**os.environ, "PERF_PLATFORM_DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "uvicorn", "--factory", "services.analytics.app:create_app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the analytics service did not start")
            time.sleep(0.1)
        yield base_url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def vacuum_analyze(database_url: str) -> None:
    engine = sa.create_engine(normalize_url(database_url), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text("VACUUM ANALYZE signals"))
    engine.dispose()


def exercise(client: httpx.Client, engine: sa.Engine, repeats: int) -> None:
    """Every catalogue request, `repeats` times: the workload whose memory we watch."""
    with engine.connect() as connection:
        sample = sample_data(connection)
    for query in QUERIES:
        params = query.params(sample)
        for _ in range(repeats):
            client.get(query.path, params=params).raise_for_status()


def time_target(
    client: httpx.Client, engine: sa.Engine, params: dict[str, str], runs: int
) -> dict[str, list[float]]:
    """Bare query and endpoint, alternating, so load on the machine hits both alike."""
    statement = TARGET_QUERY.statement(params, "postgresql")
    bare, endpoint = [], []
    with engine.connect() as connection:
        for _ in range(runs):
            started = time.perf_counter()
            connection.execute(statement).all()
            bare.append(time.perf_counter() - started)

            started = time.perf_counter()
            client.get(TARGET_QUERY.path, params=params).raise_for_status()
            endpoint.append(time.perf_counter() - started)
    return {"bare": bare, "endpoint": endpoint}


def time_in_memory(engine: sa.Engine, params: dict[str, str], runs: int) -> dict[str, Any]:
    before_mb = rss_mb(os.getpid())
    seconds, answer = [], {}
    for _ in range(runs):
        started = time.perf_counter()
        answer = aggregate_in_memory(read_signals(engine), params)
        seconds.append(time.perf_counter() - started)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "growth_mb": peak_mb - before_mb, "answer": answer}


def ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"rows": args.rows, "small_rows": args.small_rows, "runs": args.runs}
    with scratch_database(args.server_url, args.keep) as database_url:
        engine = make_engine(database_url, pool_size=2)
        small = fill_signals(engine, args.small_rows, seed=1)
        vacuum_analyze(database_url)

        with (
            service_process(database_url) as (base_url, pid),
            httpx.Client(base_url=base_url, timeout=300) as client,
        ):
            exercise(client, engine, args.warmup)
            report["service_rss_small_mb"] = rss_mb(pid)
            with engine.connect() as connection:
                params = TARGET_QUERY.params(sample_data(connection))
            report["small_endpoint_ms"] = ms(
                time_target(client, engine, params, args.runs)["endpoint"]
            )

            large = fill_signals(engine, args.rows - args.small_rows, seed=2)
            vacuum_analyze(database_url)
            report["fill_rows_per_s"] = (args.rows - args.small_rows) / large.seconds
            report["fill_seconds"] = small.seconds + large.seconds

            exercise(client, engine, args.warmup)
            report["service_rss_large_mb"] = rss_mb(pid)
            timed = time_target(client, engine, params, args.runs)
            served = fetch_answer(client, TARGET_QUERY.path, params)
            report["service_rss_after_timing_mb"] = rss_mb(pid)

        in_memory = time_in_memory(engine, params, args.in_memory_runs)
        engine.dispose()

    report["bare_ms"] = ms(timed["bare"])
    report["endpoint_ms"] = ms(timed["endpoint"])
    report["in_memory_ms"] = ms(in_memory["seconds"])
    report["in_memory_growth_mb"] = in_memory["growth_mb"]
    report["answers_agree"] = not differences(served, in_memory["answer"])
    report["endpoint_over_bare"] = report["endpoint_ms"] / report["bare_ms"]
    report["in_memory_over_endpoint"] = report["in_memory_ms"] / report["endpoint_ms"]
    report["service_growth_mb"] = (
        max(report["service_rss_large_mb"], report["service_rss_after_timing_mb"])
        - report["service_rss_small_mb"]
    )
    report["targets"] = {
        "endpoint_over_bare": report["endpoint_over_bare"] <= TARGETS["endpoint_over_bare"],
        "in_memory_over_endpoint": report["in_memory_over_endpoint"]
        >= TARGETS["in_memory_over_endpoint"],
        "service_growth_mb": report["service_growth_mb"] <= TARGETS["service_growth_mb"],
    }
    return report


def print_table(report: dict[str, Any]) -> None:
    met = {True: "met", False: "MISSED"}
    targets = report["targets"]
    print(f"analytics_sum on {report['rows']:,} signals (PostgreSQL), medians of {report['runs']}")
    print(f"{'measure':<44} {'value':>12}")
    rows = [
        ("fill (COPY), rows/s", f"{report['fill_rows_per_s']:,.0f}"),
        ("bare query GROUP BY source, ms", f"{report['bare_ms']:.1f}"),
        ("endpoint /aggregate?group_by=source, ms", f"{report['endpoint_ms']:.1f}"),
        (f"endpoint at {report['small_rows']:,} rows, ms", f"{report['small_endpoint_ms']:.1f}"),
        ("in memory (read into pandas, group), ms", f"{report['in_memory_ms']:.1f}"),
        ("in memory: this process grew, MB", f"{report['in_memory_growth_mb']:.1f}"),
        (
            f"service RSS at {report['small_rows']:,} rows, MB",
            f"{report['service_rss_small_mb']:.1f}",
        ),
        (f"service RSS at {report['rows']:,} rows, MB", f"{report['service_rss_large_mb']:.1f}"),
    ]
    for label, value in rows:
        print(f"{label:<44} {value:>12}")
    print()
    print(
        f"endpoint / bare query   {report['endpoint_over_bare']:6.2f}x  (target <= 1.5x: "
        f"{met[targets['endpoint_over_bare']]})"
    )
    print(
        f"in memory / endpoint    {report['in_memory_over_endpoint']:6.1f}x  (target >= 15x: "
        f"{met[targets['in_memory_over_endpoint']]})"
    )
    print(
        f"service memory growth   {report['service_growth_mb']:6.1f} MB (target <= 20 MB: "
        f"{met[targets['service_growth_mb']]})"
    )
    print(f"answers agree: {'yes' if report['answers_agree'] else 'NO'}")


def _rows(text: str) -> int:
    value = int(text.replace("_", "").replace(",", ""))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=_rows, default=1_000_000, help="signals at the end")
    parser.add_argument("--small-rows", type=_rows, default=10_000, help="signals at the start")
    parser.add_argument("--runs", type=_rows, default=15, help="timed requests and bare queries")
    parser.add_argument("--in-memory-runs", type=_rows, default=3)
    parser.add_argument("--warmup", type=_rows, default=5, help="repeats of every request")
    parser.add_argument(
        "--server-url",
        default=get_settings().test_postgres_url,
        help="a PostgreSQL server where a scratch database may be created (TEST_POSTGRES_URL)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.small_rows >= args.rows:
        parser.error(f"--small-rows ({args.small_rows}) must be below --rows ({args.rows})")

    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return report


if __name__ == "__main__":
    main()
