"""The gateway's ETags: a 304 revalidation against the full 200, and what the ETag costs a 200.

The gateway and the analytics service run in this process on free loopback ports, the
analytics service on a fresh SQLite database (or --database-url) holding generated signals.
`analytics.aggregate` grouped by name gives a ~100 KB answer (1000 groups) and a ~1 KB one
(10 groups). For each size, rounds alternate the two requests a client makes:

- full 200: a GET without If-None-Match; the client reads the body and decodes its JSON;
- 304: the same GET with the ETag of the last 200 in If-None-Match; the client keeps its copy.

The upstream row is the analytics endpoint called directly: the part of either request that the
gateway must redo to know whether the data changed. "ETag cost" is make_etag() on the exact
200 body, timed alone, and its share of the full 200's median.

    python benchmarks/etag.py [--requests 300] [--json] [--database-url URL]

Targets (issue 7), 100 KB: the 304 at least 2x faster than the 200; the ETag at most 5 % of it.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import sqlalchemy as sa

from perf_platform.db import make_engine
from perf_platform.servers import serve_asgi
from perf_platform.settings import Settings
from perf_platform.tables import signals
from services.analytics.app import create_app as create_analytics_app
from services.gateway.app import create_app as create_gateway_app
from services.gateway.etag import make_etag

SIZES = {"100 KB": 1000, "1 KB": 10}  # label -> groups in the answer
GROUPS = 1000
SIGNALS_PER_GROUP = 3
TARGET_SPEEDUP = 2.0
TARGET_ETAG_SHARE = 0.05


def seed(engine: sa.Engine, batch_id: str) -> None:
    """GROUPS distinct names, SIGNALS_PER_GROUP signals each, all with source `batch_id`."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    rows = [
        {
            "signal_id": f"{batch_id}-{index}",
            "batch_id": batch_id,
            "source": batch_id,
            "name": f"benchmark.metric.{index % GROUPS:04d}",
            "value": round(index * 0.37, 2),
            "ts": start + timedelta(seconds=index),
        }
        for index in range(GROUPS * SIGNALS_PER_GROUP)
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(signals), rows)


def time_ms(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def measure_size(
    client: httpx.Client, urls: tuple[str, str], source: str, groups: int, requests: int
) -> dict[str, Any]:
    gateway_url, analytics_url = urls
    params = {"group_by": "name", "source": source, "limit": groups}
    url = f"{gateway_url}/trpc/analytics.aggregate?input={quote(json.dumps(params))}"

    first = client.get(url)
    first.raise_for_status()
    etag = first.headers["etag"]
    body = first.content

    def full_200() -> None:
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"expected 200, got {response.status_code}")
        response.json()

    def revalidate_304() -> None:
        response = client.get(url, headers={"If-None-Match": etag})
        if response.status_code != 304:
            raise RuntimeError(f"expected 304, got {response.status_code}")

    def upstream() -> None:
        client.get(f"{analytics_url}/aggregate", params=params).raise_for_status()

    for call in (full_200, revalidate_304, upstream):
        for _ in range(10):
            call()

    samples: dict[str, list[float]] = {"full 200": [], "304": [], "upstream": []}
    for _ in range(requests):
        samples["full 200"].append(time_ms(full_200))
        samples["304"].append(time_ms(revalidate_304))
        samples["upstream"].append(time_ms(upstream))

    etag_ms = etag_cost_ms(body)
    p50 = {name: statistics.median(values) for name, values in samples.items()}
    return {
        "body_bytes": len(body),
        "requests": requests,
        "p50_ms": p50,
        "p95_ms": {name: percentile(values, 0.95) for name, values in samples.items()},
        "etag_ms": etag_ms,
        "speedup_304": p50["full 200"] / p50["304"],
        "etag_share_of_200": etag_ms / p50["full 200"],
    }


def etag_cost_ms(body: bytes, repeats: int = 2000) -> float:
    """Median of several timed batches of make_etag(body), per call."""
    batches = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(repeats):
            make_etag(body)
        batches.append((time.perf_counter() - start) * 1000 / repeats)
    return statistics.median(batches)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(requests: int, database_url: str | None) -> dict[str, Any]:
    batch_id = f"etag-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="etag-bench-") as folder:
        url = database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        engine = make_engine(url)
        seed(engine, batch_id)
        try:
            analytics = create_analytics_app(Settings(database_url=url))
            with serve_asgi(analytics) as analytics_url:
                gateway = create_gateway_app(Settings(gateway_analytics_url=analytics_url))
                with serve_asgi(gateway) as gateway_url, httpx.Client(timeout=30) as client:
                    urls = (gateway_url, analytics_url)
                    results = {
                        label: measure_size(client, urls, batch_id, groups, requests)
                        for label, groups in SIZES.items()
                    }
        finally:
            # A database that outlives the run gets its rows back out.
            with engine.begin() as connection:
                connection.execute(sa.delete(signals).where(signals.c.batch_id == batch_id))
            engine.dispose()

    big = results["100 KB"]
    return {
        "benchmark": "gateway:etag",
        "database": "sqlite (temporary)" if database_url is None else "given",
        "sizes": results,
        "targets": {
            "speedup_304_100kb": {
                "target": TARGET_SPEEDUP,
                "measured": big["speedup_304"],
                "met": big["speedup_304"] >= TARGET_SPEEDUP,
            },
            "etag_share_100kb": {
                "target": TARGET_ETAG_SHARE,
                "measured": big["etag_share_of_200"],
                "met": big["etag_share_of_200"] <= TARGET_ETAG_SHARE,
            },
        },
    }


def print_table(report: dict[str, Any]) -> None:
    header = (
        f"{'response':<9} {'bytes':>7} {'200 p50':>9} {'304 p50':>9} {'upstream':>9} "
        f"{'304 x':>6} {'ETag us':>8} {'ETag %':>7}"
    )
    print(header)
    print("-" * len(header))
    for label, size in report["sizes"].items():
        p50 = size["p50_ms"]
        print(
            f"{label:<9} {size['body_bytes']:>7} {p50['full 200']:>7.2f}ms {p50['304']:>7.2f}ms "
            f"{p50['upstream']:>7.2f}ms {size['speedup_304']:>5.2f}x "
            f"{size['etag_ms'] * 1000:>8.1f} {size['etag_share_of_200'] * 100:>6.2f}%"
        )
    print()
    for name, target in report["targets"].items():
        verdict = "met" if target["met"] else "NOT met"
        print(f"{name}: measured {target['measured']:.3f}, target {target['target']} -> {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="timed rounds per size")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--database-url", help="analytics database (default: a temporary SQLite)")
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be at least 1")

    report = run(args.requests, args.database_url)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
