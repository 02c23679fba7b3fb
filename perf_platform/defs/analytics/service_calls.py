"""Asking the analytics service over HTTP: whole answers across pages, and timed requests."""

import time
from collections.abc import Mapping
from typing import Any

import httpx
import numpy as np

MEASURES = ("count", "sum", "avg", "min", "max")

# A kept-alive connection the server closed just as the next request went out: after an error
# uvicorn closes the connection its 500 went out on, and the client may already have sent the
# next request on it. A GET is idempotent, so it is sent once more (RFC 9110 section 9.2.2).
_STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def get(client: httpx.Client, path: str, params: Mapping[str, str]) -> httpx.Response:
    """GET `path`, once more on a fresh connection if the kept-alive one was already closed."""
    try:
        return client.get(path, params=dict(params))
    except _STALE_CONNECTION:
        return client.get(path, params=dict(params))


def fetch_answer(client: httpx.Client, path: str, params: Mapping[str, str]) -> dict[str, dict]:
    """{group key: measures} over every page; a /summary answer is the single key ""."""
    if path == "/summary":
        response = get(client, path, params)
        response.raise_for_status()
        return {"": {measure: response.json()[measure] for measure in MEASURES}}

    answer: dict[str, dict] = {}
    offset: int | None = 0
    while offset is not None:
        response = get(client, path, {**params, "offset": str(offset)})
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
        response = get(client, path, params)
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
