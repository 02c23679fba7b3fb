"""Latency per endpoint from the services' request logs: counts and p50/p95/p99."""

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# score_benchmarks.phase holds 64 characters.
PHASE_MAX_LENGTH = 64


@dataclass(frozen=True)
class EndpointLatency:
    """The requests of one endpoint of one service in the window, summarized."""

    service: str
    method: str
    route: str
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    server_errors: int
    status_counts: dict[str, int] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"{self.method} {self.route}"

    @property
    def phase(self) -> str:
        """The score_benchmarks phase: "<METHOD> <route>", shortened with a digest when long."""
        if len(self.endpoint) <= PHASE_MAX_LENGTH:
            return self.endpoint
        digest = hashlib.sha256(self.endpoint.encode()).hexdigest()[:8]
        return f"{self.endpoint[: PHASE_MAX_LENGTH - 9]}~{digest}"


@dataclass
class LatencyReport:
    endpoints: list[EndpointLatency]
    files: list[Path]
    requests: int
    skipped_lines: int
    outside_window: int


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with `fraction` of the values at or below."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(
    service: str, method: str, route: str, durations_ms: Iterable[float], statuses: Counter
) -> EndpointLatency:
    durations = sorted(durations_ms)
    return EndpointLatency(
        service=service,
        method=method,
        route=route,
        count=len(durations),
        p50_ms=percentile(durations, 0.50),
        p95_ms=percentile(durations, 0.95),
        p99_ms=percentile(durations, 0.99),
        mean_ms=sum(durations) / len(durations),
        max_ms=durations[-1],
        server_errors=sum(count for status, count in statuses.items() if 500 <= status < 600),
        status_counts={str(status): count for status, count in sorted(statuses.items())},
    )


def latency_report(log_files: Iterable[Path], *, since: datetime | None = None) -> LatencyReport:
    """Per service and endpoint, the requests logged in `log_files` at or after `since`.

    Lines that are not request-log entries (cut short by a crash, written by hand) are counted
    as skipped, not fatal.
    """
    durations: dict[tuple[str, str, str], list[float]] = {}
    statuses: dict[tuple[str, str, str], Counter] = {}
    files = sorted(log_files)
    skipped = outside = 0
    since_iso = _iso(since) if since else None

    for path in files:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                entry = _entry(line)
                if entry is None:
                    skipped += line.strip() != ""
                    continue
                # Stamps are ISO 8601 UTC of one fixed width: comparing strings compares times.
                if since_iso and entry["ts"] < since_iso:
                    outside += 1
                    continue
                key = (str(entry.get("service") or path.stem), entry["method"], entry["route"])
                durations.setdefault(key, []).append(float(entry["duration_ms"]))
                statuses.setdefault(key, Counter())[entry["status"]] += 1

    endpoints = [summarize(*key, durations[key], statuses[key]) for key in sorted(durations)]
    return LatencyReport(
        endpoints=endpoints,
        files=files,
        requests=sum(endpoint.count for endpoint in endpoints),
        skipped_lines=skipped,
        outside_window=outside,
    )


def _iso(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _entry(line: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    well_formed = (
        isinstance(entry, dict)
        and isinstance(entry.get("ts"), str)
        and isinstance(entry.get("method"), str)
        and isinstance(entry.get("route"), str)
        and isinstance(entry.get("status"), int)
        and isinstance(entry.get("duration_ms"), int | float)
        and entry["duration_ms"] >= 0
    )
    return entry if well_formed else None


def slow_endpoints(endpoints: Iterable[EndpointLatency], p95_threshold_ms: float) -> list:
    """The endpoints whose p95 is over the threshold, slowest first."""
    slow = [endpoint for endpoint in endpoints if endpoint.p95_ms > p95_threshold_ms]
    return sorted(slow, key=lambda endpoint: endpoint.p95_ms, reverse=True)


def markdown_table(endpoints: Sequence[EndpointLatency], p95_threshold_ms: float) -> str:
    lines = [
        f"| service | endpoint | requests | p50 ms | p95 ms | p99 ms | 5xx "
        f"| p95 over {p95_threshold_ms:g} ms |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for endpoint in endpoints:
        flag = "yes" if endpoint.p95_ms > p95_threshold_ms else "no"
        lines.append(
            f"| {endpoint.service} | `{endpoint.endpoint}` | {endpoint.count} "
            f"| {endpoint.p50_ms:.3f} | {endpoint.p95_ms:.3f} | {endpoint.p99_ms:.3f} "
            f"| {endpoint.server_errors} | {flag} |"
        )
    return "\n".join(lines)
