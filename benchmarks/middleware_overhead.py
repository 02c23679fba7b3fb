"""Per-request cost of add_profiling against the instrumentation libraries, without HTTP.

Each variant is the same small app (one JSON route with a path parameter) with one kind of
instrumentation; the benchmark calls the ASGI or WSGI app directly, many times, in one process,
and subtracts the bare app's time. Variants run in a shuffled order in every round; a variant's
overhead is its fastest round minus the bare app's fastest round (the paired median is shown too).
The clock is this process's CPU time by default (all its threads: add_profiling's request-log
writer thread is counted, and its pending lines are written inside its own timed window), which
other processes on a shared machine disturb less than the wall clock; `--clock wall` for that.

    python benchmarks/middleware_overhead.py [--requests 1000] [--rounds 30] [--clock cpu] [--json]

Target (issue 5): add_profiling's overhead at most a third of the best library's, per framework.

Timings on a busy machine move by microseconds; instruction counts do not. `--only VARIANT` runs
one variant `--requests` times (after 200 warm-up requests) and measures nothing itself, for
valgrind: instructions per request = (I(--requests 2500) - I(--requests 500)) / 2000, with I the
"summary" line of `valgrind --tool=callgrind python benchmarks/middleware_overhead.py
--framework flask --only add_profiling --requests N`.
"""

import argparse
import asyncio
import json
import logging
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perf_platform.profiling import add_profiling
from perf_platform.request_log import flush_request_logs

OURS = "add_profiling"
BARE = "bare"
TARGET_RATIO = 1 / 3
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
Clock = Callable[[], float]


# ---- FastAPI ------------------------------------------------------------------------------


def fastapi_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    return app


def fastapi_variants(log_dir: Path) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry
    from prometheus_fastapi_instrumentator import Instrumentator
    from starlette_exporter import PrometheusMiddleware

    instrumentator_app = fastapi_app()
    # Its default metric names include ours, so it gets a registry of its own.
    Instrumentator(registry=CollectorRegistry()).instrument(instrumentator_app)

    exporter_app = fastapi_app()
    exporter_app.add_middleware(PrometheusMiddleware, app_name="bench", group_paths=True)

    logging_app = fastapi_app()
    logging_app.add_middleware(_PerRequestLogging, path=log_dir / "per-request-logging.log")

    return {
        BARE: fastapi_app(),
        OURS: add_profiling(fastapi_app(), service="bench-fastapi", request_log_dir=log_dir),
        "prometheus-fastapi-instrumentator": instrumentator_app,
        "starlette-exporter": exporter_app,
        "logging call per request": logging_app,
    }


class _PerRequestLogging:
    """For reference: perf_counter plus one `logging` call to a file per request, nothing else."""

    def __init__(self, app: Any, path: Path) -> None:
        self.app = app
        self.log = logging.getLogger("bench.per_request")
        self.log.propagate = False
        self.log.setLevel(logging.INFO)
        if not self.log.handlers:
            handler = logging.FileHandler(path)
            handler.setFormatter(logging.Formatter("ts=%(asctime)s %(message)s"))
            self.log.addHandler(handler)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.log.info(
                "method=%s path=%s duration_ms=%.3f",
                scope.get("method"),
                scope.get("path"),
                (time.perf_counter() - start) * 1000,
            )


def drive_asgi(app: Any, requests: int, clock: Clock = time.perf_counter) -> float:
    """Seconds to serve `requests` GET /items/42 through the ASGI app."""
    headers = [(b"host", b"bench"), (b"user-agent", b"bench"), (b"accept", b"*/*")]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"the benchmark route answered {message['status']}")

    async def run() -> float:
        start = clock()
        for _ in range(requests):
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": "/items/42",
                "raw_path": b"/items/42",
                "root_path": "",
                "query_string": b"",
                "headers": headers,
                "server": ("bench", 80),
                "client": ("127.0.0.1", 5000),
            }
            await app(scope, receive, send)
        flush_request_logs()
        return clock() - start

    return asyncio.run(run())


# ---- Flask --------------------------------------------------------------------------------


def flask_app() -> Any:
    from flask import Flask

    app = Flask("bench")

    @app.get("/items/<int:item_id>")
    def read_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    return app


def flask_variants(log_dir: Path) -> dict[str, Any]:
    from prometheus_flask_exporter import PrometheusMetrics

    exporter_app = flask_app()
    PrometheusMetrics(exporter_app, group_by="url_rule")

    return {
        BARE: flask_app(),
        OURS: add_profiling(flask_app(), service="bench-flask", request_log_dir=log_dir),
        "prometheus-flask-exporter": exporter_app,
    }


def drive_wsgi(app: Any, requests: int, clock: Clock = time.perf_counter) -> float:
    """Seconds to serve `requests` GET /items/42 through the WSGI app, bodies read and closed."""
    from werkzeug.test import EnvironBuilder

    base = EnvironBuilder(path="/items/42", headers={"User-Agent": "bench"}).get_environ()
    statuses: list[str] = []

    def start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
        statuses.append(status)
        return lambda data: None

    start = clock()
    for _ in range(requests):
        body = app(dict(base), start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    flush_request_logs()
    elapsed = clock() - start

    if any(not status.startswith("200") for status in statuses):
        raise RuntimeError(f"the benchmark route answered {set(statuses)}")
    return elapsed


# ---- measuring ----------------------------------------------------------------------------


def measure(
    variants: dict[str, Any],
    drive: Callable[[Any, int, Clock], float],
    requests: int,
    rounds: int,
    clock: Clock,
) -> dict[str, list[float]]:
    """Microseconds per request of each variant, one value per round."""
    for app in variants.values():
        drive(app, min(500, requests), clock)  # builds middleware stacks, fills caches

    per_request_us: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for _ in range(rounds):
        random.shuffle(order)
        for name in order:
            per_request_us[name].append(drive(variants[name], requests, clock) / requests * 1e6)
    return per_request_us


def summarize(
    framework: str, clock_name: str, samples: dict[str, list[float]], libraries: list[str]
) -> dict:
    """Overheads by two estimators; the verdict uses the best-round one.

    best round: each variant's fastest round minus the bare app's fastest round (the rounds the
    rest of the machine disturbed least, as timeit advises); paired median: the median over
    rounds of a variant's time minus the bare app's time in the same round.
    """
    best = {name: min(values) for name, values in samples.items()}
    overheads = {name: best[name] - best[BARE] for name in samples}
    paired = {
        name: statistics.median(
            value - bare for value, bare in zip(values, samples[BARE], strict=True)
        )
        for name, values in samples.items()
    }
    best_library = min(libraries, key=lambda name: overheads[name])
    ratio = overheads[OURS] / overheads[best_library] if overheads[best_library] > 0 else None
    return {
        "framework": framework,
        "clock": clock_name,
        "variants": {
            name: {
                "best_us": round(best[name], 2),
                "median_us": round(statistics.median(samples[name]), 2),
                "overhead_us": round(overheads[name], 2),
                "paired_median_overhead_us": round(paired[name], 2),
                "rounds_us": [round(value, 2) for value in samples[name]],
            }
            for name in samples
        },
        "best_library": best_library,
        "ratio_to_best_library": round(ratio, 3) if ratio is not None else None,
        "target_ratio": round(TARGET_RATIO, 3),
        "target_met": ratio is not None and ratio <= TARGET_RATIO,
    }


def print_table(result: dict, requests: int, rounds: int) -> None:
    print(
        f"{result['framework']}: {requests} requests x {rounds} rounds, {result['clock']} clock, "
        "microseconds per request"
    )
    print(f"  {'variant':<34} {'best':>8} {'median':>8} {'overhead':>9} {'paired median':>14}")
    for name, numbers in result["variants"].items():
        overhead = "-" if name == BARE else f"{numbers['overhead_us']:.2f}"
        paired = "-" if name == BARE else f"{numbers['paired_median_overhead_us']:.2f}"
        print(
            f"  {name:<34} {numbers['best_us']:>8.2f} {numbers['median_us']:>8.2f} "
            f"{overhead:>9} {paired:>14}"
        )
    ratio = result["ratio_to_best_library"]
    verdict = "met" if result["target_met"] else "NOT met"
    print(
        f"  {OURS} overhead / {result['best_library']} overhead = "
        f"{ratio if ratio is not None else 'n/a'} (target <= {TARGET_RATIO:.3f}: {verdict})"
    )
    print()


def run_only(framework: str, name: str, requests: int, parser: argparse.ArgumentParser) -> int:
    with tempfile.TemporaryDirectory(prefix="middleware-overhead-") as folder:
        build, drive = (
            (fastapi_variants, drive_asgi)
            if framework == "fastapi"
            else (flask_variants, drive_wsgi)
        )
        variants = build(Path(folder))
        if name not in variants:
            parser.error(f"--only must be one of {sorted(variants)} for {framework}")
        drive(variants[name], 200)
        drive(variants[name], requests)
    print(f"ran {requests} requests through {framework} {name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per variant and round")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    parser.add_argument("--framework", choices=["fastapi", "flask", "both"], default="both")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--only", metavar="VARIANT", help="run one variant, untimed (valgrind)")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.rounds < 1:
        parser.error("--requests and --rounds must be at least 1")
    if args.only:
        if args.framework == "both":
            parser.error("--only needs --framework fastapi or --framework flask")
        return run_only(args.framework, args.only, args.requests, parser)

    clock = CLOCKS[args.clock]
    results = []
    with tempfile.TemporaryDirectory(prefix="middleware-overhead-") as folder:
        log_dir = Path(folder)
        if args.framework in ("fastapi", "both"):
            variants = fastapi_variants(log_dir)
            samples = measure(variants, drive_asgi, args.requests, args.rounds, clock)
            libraries = ["prometheus-fastapi-instrumentator", "starlette-exporter"]
            results.append(summarize("fastapi", args.clock, samples, libraries))
        if args.framework in ("flask", "both"):
            samples = measure(
                flask_variants(log_dir), drive_wsgi, args.requests, args.rounds, clock
            )
            results.append(summarize("flask", args.clock, samples, ["prometheus-flask-exporter"]))
        lines_logged = sum(
            1 for path in log_dir.glob("bench-*.jsonl") for _ in path.open(encoding="utf-8")
        )

    report = {
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "request_log_lines_written": lines_logged,
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for result in results:
            print_table(result, args.requests, args.rounds)
        print(f"request log lines written by add_profiling: {lines_logged}")
    return 0 if all(result["target_met"] for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
