"""Measure what the score cache buys: POST /score uncached, then cached, against a floor.

    python scripts/benchmark_score.py [--url URL] [--runs N] [--warmup N] [--features N] [--json]

Without --url the scoring service is started in this process on a free loopback port (with the
settings of the environment: REDIS_URL, SCORE_MODEL_ITERATIONS, ...) and stopped at the end.

The uncached phase sends N inputs no one has sent before (each carries this run's random nonce),
so every answer must be X-Cache: miss; the cached phase sends the same N inputs again, so every
answer must be X-Cache: hit with the same score. A phase that is not what it claims raises
PhaseCheckError (exit status 1): it is an error, not a result. The floor is GET /ping of the same
service with the same client, one request before each cached one, so both see the same machine.

The client is one kept-alive HTTP/1.1 connection of the standard library's http.client: about
0.3 ms less per request here than httpx, so the numbers are more the service's than the client's.

The cache backend is the service's own word for it (GET /info): "redis+near" is Redis with a near
tier in each process in front of it, and the cached phase's hits are then near hits (the inputs
were computed by the same process); SCORE_NEAR_CACHE_ENTRIES=0 measures Redis alone. Which tier
served the cached phase is read from the service's /metrics (score_cache_hits_total{tier}).
"""

import argparse
import http.client
import json
import math
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from prometheus_client.parser import text_string_to_metric_families

JSON_HEADERS = {"content-type": "application/json"}
REQUEST_TIMEOUT_SECONDS = 30.0
# What a request can fail with: refused, reset or timed out (OSError), or not HTTP.
REQUEST_ERRORS = (OSError, http.client.HTTPException)


class BenchmarkError(Exception):
    """The benchmark could not measure: the service is unreachable or every request failed."""


class PhaseCheckError(BenchmarkError):
    """A phase was not what it claims: a miss among cached requests, a hit among uncached ones,
    or a cached score that differs from the computed one."""


@dataclass(frozen=True)
class Answer:
    """One HTTP response, read whole."""

    status_code: int
    headers: http.client.HTTPMessage  # names compared without regard to case
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise http.client.HTTPException(f"HTTP {self.status_code}")


class Client:
    """One kept-alive connection to base_url; reopened after a failure or a `Connection: close`."""

    def __init__(self, base_url: str, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        try:
            parts = split_base_url(base_url)
        except ValueError as exc:
            raise BenchmarkError(f"--url {exc}") from None
        connection_class = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self._prefix = parts.path.rstrip("/")
        self._connection = connection_class(parts.hostname, parts.port, timeout=timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> Answer:
        try:
            self._connection.request(method, self._prefix + path, body, headers or {})
            response = self._connection.getresponse()
            answer = Answer(response.status, response.headers, response.read())
        except REQUEST_ERRORS:
            self._connection.close()
            raise
        if response.will_close:
            self._connection.close()
        return answer

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post(self, path: str, body: bytes) -> Answer:
        return self.request("POST", path, body, JSON_HEADERS)

    def close(self) -> None:
        self._connection.close()


@dataclass(frozen=True)
class PhaseStats:
    phase: str
    runs: int
    # The sum of the requests' latencies (the phase's wall time when nothing is interleaved).
    total_seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    stddev_ms: float
    errors: int

    @classmethod
    def of(cls, phase: str, latencies_seconds: Sequence[float], errors: int) -> "PhaseStats":
        ordered = sorted(seconds * 1000 for seconds in latencies_seconds)
        return cls(
            phase=phase,
            runs=len(ordered) + errors,
            total_seconds=math.fsum(latencies_seconds),
            p50_ms=percentile(ordered, 50),
            p95_ms=percentile(ordered, 95),
            p99_ms=percentile(ordered, 99),
            mean_ms=statistics.fmean(ordered),
            stddev_ms=statistics.stdev(ordered) if len(ordered) > 1 else 0.0,
            errors=errors,
        )


@dataclass(frozen=True)
class BenchmarkResult:
    uncached: PhaseStats
    cached: PhaseStats
    floor_p50_ms: float
    # uncached total / cached total
    speedup: float
    # uncached p50 / cached p50: what a typical request gains, less swayed by a few slow ones
    speedup_p50: float
    cache_backend: str
    # Hits the service counted during the cached phase by tier ("near", "far"), other clients'
    # included; None when its /metrics does not say.
    cached_hits_by_tier: dict[str, int] | None
    model_version: str
    base_url: str
    # Everything that makes two runs comparable; base_url is left out (its port changes).
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile of sorted values, interpolating linearly between neighbours."""
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def verify_phase(phase: str, expected: str, outcomes: Sequence[str | None]) -> None:
    """Raise PhaseCheckError unless every answered request of the phase had X-Cache `expected`."""
    wrong = Counter(outcome for outcome in outcomes if outcome != expected)
    if wrong:
        seen = ", ".join(f"X-Cache: {value} x{count}" for value, count in wrong.most_common())
        raise PhaseCheckError(
            f"{phase} phase is not honest: {sum(wrong.values())} of {len(outcomes)} answers were "
            f"not X-Cache: {expected} ({seen})"
        )


def main(argv: Sequence[str] | None = None) -> BenchmarkResult:
    """Run the benchmark, print its report (or JSON) to stdout and return the result."""
    args = _parser().parse_args(argv)

    with _service(args.url) as (base_url, target):
        result = run_benchmark(
            base_url, runs=args.runs, warmup=args.warmup, features=args.features, target=target
        )

    if not args.quiet:
        print(json.dumps(result.to_dict(), indent=2) if args.json else format_report(result))
    return result


def run_benchmark(
    base_url: str, *, runs: int, warmup: int, features: int, target: str = "url"
) -> BenchmarkResult:
    """Measure the service at base_url: warm-up, uncached phase, then cached phase with floor."""
    client = Client(base_url)
    try:
        info = _service_info(client, base_url)
        nonce = random.SystemRandom().getrandbits(48)

        warm_bodies = _bodies(nonce, "warmup", warmup, features)
        for body in warm_bodies:
            _post(client, body)
            _post(client, body)
            _get(client, "/ping")

        bodies = _bodies(nonce, "measured", runs, features)
        uncached = _Phase("uncached")
        for body in bodies:
            uncached.record(*_post(client, body))

        cached, floor = _Phase("cached"), _Phase("floor")
        hits_before = _hits_by_tier(client)
        for body in bodies:
            floor.record(*_get(client, "/ping"))
            cached.record(*_post(client, body))
        hits_after = _hits_by_tier(client)
    finally:
        client.close()

    for phase in (uncached, cached, floor):
        phase.require_answers()
    verify_phase("uncached", "miss", uncached.outcomes)
    verify_phase("cached", "hit", cached.outcomes)
    _verify_same_scores(uncached, cached)

    uncached_stats, cached_stats = uncached.stats(), cached.stats()
    return BenchmarkResult(
        uncached=uncached_stats,
        cached=cached_stats,
        floor_p50_ms=floor.stats().p50_ms,
        speedup=uncached_stats.total_seconds / cached_stats.total_seconds,
        speedup_p50=uncached_stats.p50_ms / cached_stats.p50_ms,
        cache_backend=info["cache_backend"],
        cached_hits_by_tier=_difference(hits_before, hits_after),
        model_version=info["model_version"],
        base_url=base_url,
        config={
            "runs": runs,
            "warmup": warmup,
            "features_per_request": features,
            "model_version": info["model_version"],
            "model_iterations": info["model_iterations"],
            "cache_ttl_seconds": info["cache_ttl_seconds"],
            "near_cache_entries": info["near_cache_entries"],
            "target": target,
            "client": "http.client, one kept-alive connection",
            "floor": "GET /ping, interleaved with the cached phase",
        },
    )


def format_report(result: BenchmarkResult) -> str:
    """The report: the two founding lines first, then the percentiles and the ratios."""
    uncached, cached = result.uncached, result.cached
    lines = [
        f"Uncached: {uncached.total_seconds:.2f}s for {uncached.runs} runs",
        f"Cached:   {cached.total_seconds:.2f}s for {cached.runs} runs",
        "",
        f"{'phase':<10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'errors':>8}",
    ]
    for phase in (uncached, cached):
        lines.append(
            f"{phase.phase:<10}{phase.p50_ms:>10.3f}{phase.p95_ms:>10.3f}{phase.p99_ms:>10.3f}"
            f"{phase.mean_ms:>10.3f}{phase.errors:>8}"
        )
    lines += [
        f"{'floor':<10}{result.floor_p50_ms:>10.3f}  (GET /ping, same client, same run)",
        "",
        f"speedup:        {result.speedup:.1f}x (uncached total / cached total), "
        f"{result.speedup_p50:.1f}x at p50",
        f"cached / floor: {cached.p50_ms / result.floor_p50_ms:.2f}x (p50)",
        f"cache backend:  {result.cache_backend}{_near_note(result)}",
        f"model:          {result.model_version}, {result.config['model_iterations']} iterations",
        f"service:        {result.base_url} ({result.config['target']})",
    ]
    return "\n".join(lines)


class _Phase:
    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies: list[float] = []
        self.outcomes: list[str | None] = []
        self.scores: list[float | None] = []
        self.errors = 0
        self.last_error = ""

    def record(self, seconds: float, response: Answer | None, error: str) -> None:
        if response is None or response.status_code != 200:
            self.errors += 1
            self.last_error = error or f"HTTP {response.status_code if response else '?'}"
            self.scores.append(None)
            return

        self.latencies.append(seconds)
        self.outcomes.append(response.headers.get("x-cache"))
        self.scores.append(_score_of(response))

    def require_answers(self) -> None:
        if not self.latencies:
            raise BenchmarkError(
                f"{self.name} phase: all {self.errors} requests failed (last: {self.last_error})"
            )

    def stats(self) -> PhaseStats:
        return PhaseStats.of(self.name, self.latencies, self.errors)


def _score_of(response: Answer) -> float | None:
    try:
        return float(response.json()["score"])
    except (ValueError, KeyError, TypeError):
        return None


def _verify_same_scores(uncached: _Phase, cached: _Phase) -> None:
    for index, (computed, served) in enumerate(zip(uncached.scores, cached.scores, strict=True)):
        if computed is not None and served is not None and computed != served:
            raise PhaseCheckError(
                f"cached phase is not honest: request {index} was scored {computed!r} "
                f"uncached but {served!r} from the cache"
            )


def _bodies(nonce: int, label: str, count: int, features: int) -> list[bytes]:
    # Encoded before timing: the client's JSON encoding is not the service's cost.
    rng = random.Random(f"{nonce}:{label}")
    bodies = []
    for index in range(count):
        values = {f"f{n:02d}": round(rng.uniform(-3, 3), 6) for n in range(features)}
        values["benchmark_run"] = float(nonce)
        values["benchmark_request"] = float(index) if label == "measured" else -1.0 - index
        body = {"entity_id": f"bench-{nonce:x}-{label}-{index}", "features": values}
        bodies.append(json.dumps(body).encode())
    return bodies


def _post(client: Client, body: bytes) -> tuple[float, Answer | None, str]:
    started = time.perf_counter()
    try:
        response = client.post("/score", body)
    except REQUEST_ERRORS as exc:
        return time.perf_counter() - started, None, f"{type(exc).__name__}: {exc}"
    return time.perf_counter() - started, response, ""


def _get(client: Client, path: str) -> tuple[float, Answer | None, str]:
    started = time.perf_counter()
    try:
        response = client.get(path)
    except REQUEST_ERRORS as exc:
        return time.perf_counter() - started, None, f"{type(exc).__name__}: {exc}"
    return time.perf_counter() - started, response, ""


def _near_note(result: BenchmarkResult) -> str:
    notes = []
    if result.config["near_cache_entries"]:
        notes.append(f"near tier of {result.config['near_cache_entries']} entries")
    if result.cached_hits_by_tier is not None:
        by_tier = ", ".join(f"{tier} {n}" for tier, n in sorted(result.cached_hits_by_tier.items()))
        notes.append(f"cached phase hits: {by_tier or 'none counted'}")
    return f" ({'; '.join(notes)})" if notes else ""


def _hits_by_tier(client: Client) -> dict[str, float] | None:
    """The service's score_cache_hits_total by tier, or None when /metrics does not have it."""
    try:
        response = client.get("/metrics")
        response.raise_for_status()
        families = list(text_string_to_metric_families(response.text))
    except (*REQUEST_ERRORS, ValueError):
        return None

    hits: dict[str, float] = {}
    for family in families:
        for sample in family.samples:
            if sample.name == "score_cache_hits_total" and "tier" in sample.labels:
                tier = sample.labels["tier"]
                hits[tier] = hits.get(tier, 0.0) + sample.value
    return hits or None


def _difference(
    before: dict[str, float] | None, after: dict[str, float] | None
) -> dict[str, int] | None:
    if before is None or after is None:
        return None
    return {tier: round(after[tier] - before.get(tier, 0.0)) for tier in after}


def _service_info(client: Client, base_url: str) -> dict[str, Any]:
    try:
        response = client.get("/info")
        response.raise_for_status()
        info = response.json()
        described = {
            name: info[name]
            for name in ("model_version", "model_iterations", "cache_backend", "cache_ttl_seconds")
        }
        # Older services had no near tier and do not say so.
        described["near_cache_entries"] = int(info.get("near_cache_entries", 0))
        return described
    except (*REQUEST_ERRORS, ValueError, KeyError, TypeError) as exc:
        raise BenchmarkError(
            f"{base_url} does not answer GET /info like the scoring service: {exc}"
        ) from exc


@contextmanager
def _service(url: str | None) -> Iterator[tuple[str, str]]:
    if url:
        yield url.rstrip("/"), "url"
        return

    # Imported here: measuring a running instance needs none of the service's code.
    from perf_platform.servers import serve_asgi
    from services.scoring.app import create_app

    with serve_asgi(create_app()) as base_url:
        yield base_url, "in-process"


def split_base_url(text: str) -> SplitResult:
    """The parts of an http(s) base URL; ValueError saying what is wrong with it."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL, not {text!r}")
    try:
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    return parts


def _base_url(text: str) -> str:
    try:
        split_base_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _positive(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _count(text: str) -> int:
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
    return value


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmark_score.py",
        description="Measure POST /score uncached and cached against a trivial endpoint.",
    )
    parser.add_argument(
        "--url",
        type=_base_url,
        help="base URL of a running scoring service (default: start one in-process)",
    )
    parser.add_argument(
        "--runs", type=_positive, default=100, help="requests in each phase (default 100)"
    )
    parser.add_argument(
        "--warmup",
        type=_count,
        default=10,
        help="uncounted misses, hits and pings before measuring (default 10)",
    )
    parser.add_argument(
        "--features", type=_positive, default=8, help="features in each request (default 8)"
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the result as JSON")
    output.add_argument(
        "--quiet", action="store_true", help="print nothing; for callers of main() that report"
    )
    return parser


def cli(argv: Sequence[str] | None = None) -> int:
    """The command line: 0 measured, 1 could not measure honestly, 2 bad arguments."""
    try:
        main(argv)
    except PhaseCheckError as exc:
        print(f"benchmark_score: phase check failed: {exc}", file=sys.stderr)
        return 1
    except BenchmarkError as exc:
        print(f"benchmark_score: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
