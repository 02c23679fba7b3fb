"""The gateway's ETags: a 304 revalidation against the full 200, and what the ETag costs a 200.

Two gateways and the analytics service run in this process on free loopback ports, the
analytics service on a fresh SQLite database (or --database-url) holding generated signals.
`analytics.aggregate` grouped by name gives a ~100 KB answer (1000 groups) and a ~1 KB one
(10 groups). For each size, rounds alternate the requests a client makes:

- full 200: a GET without If-None-Match; the client reads the body and decodes its JSON;
- 304: the same GET with the ETag of the last 200 in If-None-Match, to the gateway as it runs:
  it sends the upstream tag it kept back to analytics, which answers 304 from its data version
  without aggregating, and the gateway answers 304 (the client keeps its copy);
- 304 by body: the same, to a gateway that keeps no upstream tags
  (GATEWAY_REVALIDATION_ENTRIES=0): it fetches the answer, hashes it and compares, as every
  request did before the gateway revalidated upstream.

The upstream columns are the analytics endpoint called directly, in full and conditionally.
"ETag cost" is make_etag() on the exact 200 body, timed alone, and its share of the full 200's
median.

    python benchmarks/etag.py [--requests 300] [--json] [--database-url URL]

With --database-url, use a scratch database: the run deletes its signals at the end, and
signals is otherwise append-only, which the analytics ETags rely on.

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
from prometheus_client import REGISTRY

from perf_platform.db import make_engine
from perf_platform.etag import make_etag
from perf_platform.servers import serve_asgi
from perf_platform.settings import Settings
from perf_platform.tables import signals
from services.analytics.app import create_app as create_analytics_app
from services.gateway.app import create_app as create_gateway_app

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
    client: httpx.Client, urls: dict[str, str], source: str, groups: int, requests: int
) -> dict[str, Any]:
    params = {"group_by": "name", "source": source, "limit": groups}
    path = f"/trpc/analytics.aggregate?input={quote(json.dumps(params))}"
    url, url_by_body = urls["gateway"] + path, urls["gateway_by_body"] + path
    upstream_url = f"{urls['analytics']}/aggregate"

    first = client.get(url)
    first.raise_for_status()
    etag, body = first.headers["etag"], first.content
    upstream_etag = client.get(upstream_url, params=params).headers["etag"]

    def expect(status: int, response: httpx.Response) -> httpx.Response:
        if response.status_code != status:
            raise RuntimeError(f"expected {status}, got {response.status_code}")
        return response

    def full_200() -> None:
        expect(200, client.get(url)).json()

    def revalidated_304() -> None:
        expect(304, client.get(url, headers={"If-None-Match": etag}))

    def by_body_304() -> None:
        expect(304, client.get(url_by_body, headers={"If-None-Match": etag}))

    def upstream_200() -> None:
        expect(200, client.get(upstream_url, params=params))

    def upstream_304() -> None:
        expect(
            304, client.get(upstream_url, params=params, headers={"If-None-Match": upstream_etag})
        )

    calls = {
        "full 200": full_200,
        "304": revalidated_304,
        "304 by body": by_body_304,
        "upstream 200": upstream_200,
        "upstream 304": upstream_304,
    }
    for call in calls.values():
        for _ in range(10):
            call()

    revalidated_before = _revalidated_count()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(requests):
        for name, call in calls.items():
            samples[name].append(time_ms(call))
    # Each timed 304 must have been the upstream revalidation, not the hash comparison.
    if _revalidated_count() - revalidated_before != requests:
        raise RuntimeError("the gateway did not revalidate every 304 at the upstream")

    etag_ms = etag_cost_ms(body)
    p50 = {name: statistics.median(values) for name, values in samples.items()}
    return {
        "body_bytes": len(body),
        "requests": requests,
        "p50_ms": p50,
        "p95_ms": {name: percentile(values, 0.95) for name, values in samples.items()},
        "etag_ms": etag_ms,
        "speedup_304": p50["full 200"] / p50["304"],
        "speedup_304_by_body": p50["full 200"] / p50["304 by body"],
        "etag_share_of_200": etag_ms / p50["full 200"],
    }


def _revalidated_count() -> float:
    labels = {"procedure": "analytics.aggregate", "result": "not_modified"}
    return REGISTRY.get_sample_value("gateway_upstream_revalidations_total", labels) or 0.0


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
                by_body = create_gateway_app(
                    Settings(gateway_analytics_url=analytics_url, gateway_revalidation_entries=0)
                )
                with (
                    serve_asgi(gateway) as gateway_url,
                    serve_asgi(by_body) as by_body_url,
                    httpx.Client(timeout=30) as client,
                ):
                    urls = {
                        "gateway": gateway_url,
                        "gateway_by_body": by_body_url,
                        "analytics": analytics_url,
                    }
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
        "database": "sqlite (temporary)" if database_url is None else engine.dialect.name,
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
    print(f"database: {report['database']}; p50 of each request, end to end")
    columns = ("full 200", "304", "304 by body", "upstream 200", "upstream 304")
    header = (
        f"{'response':<9} {'bytes':>7} "
        + " ".join(f"{name:>12}" for name in columns)
        + f" {'304 x':>6} {'by body x':>9} {'ETag us':>8} {'ETag %':>7}"
    )
    print(header)
    print("-" * len(header))
    for label, size in report["sizes"].items():
        p50 = size["p50_ms"]
        print(
            f"{label:<9} {size['body_bytes']:>7} "
            + " ".join(f"{p50[name]:>10.2f}ms" for name in columns)
            + f" {size['speedup_304']:>5.2f}x {size['speedup_304_by_body']:>8.2f}x"
            f" {size['etag_ms'] * 1000:>8.1f} {size['etag_share_of_200'] * 100:>6.2f}%"
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
