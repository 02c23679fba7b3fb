"""The scoring service's Prometheus counters, served on /metrics with everything else."""

from prometheus_client import Counter

CACHE_RESULTS = ("hit", "miss", "bypass", "error")

score_cache_requests = Counter(
    "score_cache_requests",
    "Score requests by what the cache did: hit, miss, bypass (Cache-Control: no-cache) or "
    "error (the cache did not answer; the score was computed).",
    ["result"],
)
score_cache_errors = Counter(
    "score_cache_errors",
    "Score cache operations that failed (Redis down, slow or refusing), by operation.",
    ["operation"],
)
score_cache_hits = Counter(
    "score_cache_hits",
    "Score cache hits by the tier that served them: near (this process's memory, the whole "
    "cache without REDIS_URL) or far (Redis, shared by the replicas). They add up to "
    'score_cache_requests{result="hit"}.',
    ["tier"],
)
score_model_computations = Counter(
    "score_model_computations",
    "Scores computed by the model; concurrent requests for one input share a computation.",
)

# Bound once: the hot path increments without looking labels up.
request_counters = {result: score_cache_requests.labels(result=result) for result in CACHE_RESULTS}
hit_counters = {tier: score_cache_hits.labels(tier=tier) for tier in ("near", "far")}
error_counters = {
    operation: score_cache_errors.labels(operation=operation)
    for operation in ("get", "set", "ping")
}
