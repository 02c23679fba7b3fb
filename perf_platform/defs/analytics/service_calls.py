"""Asking the analytics service over HTTP: whole answers across pages, and timed requests."""

import time
from collections.abc import Mapping
from typing import Any

import httpx
import numpy as np

MEASURES = ("count", "sum", "avg", "min", "max")


def fetch_answer(client: httpx.Client, path: str, params: Mapping[str, str]) -> dict[str, dict]:
    """{group key: measures} over every page; a /summary answer is the single key ""."""
    if path == "/summary":
        response = client.get(path, params=dict(params))
        response.raise_for_status()
        return {"": {measure: response.json()[measure] for measure in MEASURES}}

    answer: dict[str, dict] = {}
    offset: int | None = 0
    while offset is not None:
        response = client.get(path, params={**params, "offset": str(offset)})
        response.raise_for_status()
        page = response.json()
        for row in page["rows"]:
            answer[row["key"]] = {measure: row[measure] for measure in MEASURES}
        offset = page["next_offset"]
    return answer


def time_requests(
    client: httpx.Client, path: str, params: Mapping[str, str], runs: int
) -> list[float]:
    """Seconds each of `runs` identical requests took, body read included."""
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path, params=dict(params))
        response.raise_for_status()
        response.read()
        seconds.append(time.perf_counter() - started)
    return seconds


def latency_measures(seconds: list[float]) -> dict[str, Any]:
    """The score_benchmarks measures of a list of durations in seconds."""
    milliseconds = np.array(seconds) * 1000
    return {
        "total_seconds": float(np.sum(seconds)),
        "p50_ms": float(np.percentile(milliseconds, 50)),
        "p95_ms": float(np.percentile(milliseconds, 95)),
        "p99_ms": float(np.percentile(milliseconds, 99)),
        "mean_ms": float(np.mean(milliseconds)),
        "stddev_ms": float(np.std(milliseconds)),
    }
