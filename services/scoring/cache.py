"""The score cache: the key of an input, and the two places a score can be kept.

RedisScoreCache is shared by every replica (the far tier); MemoryScoreCache lives in one process
(the near tier): it is the whole cache when REDIS_URL is unset, and a bounded copy of recent scores
in front of Redis otherwise. Both raise CacheUnavailable when they cannot answer, and the caller
computes the score instead.
"""

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Protocol

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from perf_platform.logs import redact_url
from services.scoring.counters import error_counters

log = logging.getLogger(__name__)


class CacheUnavailable(Exception):
    """The cache could not be read or written just now; the score must be computed."""


# What json.dumps(..., separators=(",", ":")) uses, built once: dumps builds one per call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def canonical_features(features: Mapping[str, float]) -> bytes:
    """The features as bytes that depend neither on key order nor on how a number was written."""
    # float() makes 1 and 1.0 one value and + 0.0 makes -0.0 and 0.0 one; repr is exact.
    pairs = sorted((name, float(value) + 0.0) for name, value in features.items())
    return _COMPACT_JSON.encode(pairs).encode()


def cache_key(features: Mapping[str, float], *, model_id: str, prefix: str) -> str:
    """Where the score of these features under this model is kept."""
    digest = hashlib.blake2b(canonical_features(features), digest_size=16).hexdigest()
    return f"{prefix}{model_id}:{digest}"


# GET and PTTL in one round trip, and atomically: the TTL is the one of the value read. Measured
# here (redis.asyncio, interleaved, p50): GET 130 us, this script 158 us, a redis-py pipeline of
# GET and PTTL 192 us. Only a near-tier miss pays for it; without the near tier a plain GET does.
_GET_WITH_PTTL = """
local value = redis.call('GET', KEYS[1])
if not value then return false end
return {value, redis.call('PTTL', KEYS[1])}
"""


def _parse_score(key: str, raw: bytes) -> float | None:
    try:
        return float(raw)
    except ValueError:
        log.warning("event=score_cache_bad_value key=%s value=%.40r", key, raw)
        return None


class ScoreCache(Protocol):
    backend: str
    # Where its hits come from, as counted: "near" (this process) or "far" (shared by replicas).
    tier: str

    async def get(self, key: str) -> float | None: ...

    async def get_with_ttl(self, key: str) -> tuple[float, float | None] | None:
        """The score and the seconds it still lives (None: it does not expire), or None."""
        ...

    async def set(self, key: str, score: float, ttl_seconds: int) -> None: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...


class MemoryScoreCache:
    """Scores kept in this process, each until its own expiry; when it is full, the least
    recently used go first. Lookups also exist without await, so a near hit costs no task switch.
    """

    backend = "memory"
    tier = "near"

    def __init__(
        self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        self.max_entries = max_entries
        self.clock = clock
        # key -> (expires_at, score), least recently used first; expired entries go when read.
        self._entries: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: str) -> float | None:
        """The score if it is here and has not expired; a found entry becomes the most recent."""
        entry = self._entries.get(key)
        if entry is None:
            return None

        expires_at, score = entry
        if expires_at <= self.clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return score

    def expires_at(self, key: str) -> float | None:
        """When the entry expires, on `clock`; None when it is missing or has expired."""
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self.clock():
            return None
        return entry[0]

    def store(self, key: str, score: float, ttl_seconds: float) -> None:
        """Keep the score for `ttl_seconds` from now."""
        self.store_until(key, score, self.clock() + ttl_seconds)

    def store_until(self, key: str, score: float, expires_at: float) -> None:
        """Keep the score until `expires_at` on `clock`; a time already past drops the entry."""
        if expires_at <= self.clock():
            self._entries.pop(key, None)
            return

        self._entries[key] = (expires_at, score)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def get(self, key: str) -> float | None:
        return self.lookup(key)

    async def get_with_ttl(self, key: str) -> tuple[float, float | None] | None:
        if self.lookup(key) is None:
            return None
        expires_at, score = self._entries[key]
        return score, expires_at - self.clock()

    async def set(self, key: str, score: float, ttl_seconds: int) -> None:
        self.store(key, score, ttl_seconds)

    async def open(self) -> None:
        log.warning(
            "event=score_cache_started backend=memory max_entries=%d "
            "reason=REDIS_URL_unset note=scores_are_cached_in_this_process_only",
            self.max_entries,
        )

    async def close(self) -> None:
        self._entries.clear()


class RedisScoreCache:
    """Scores in Redis, with short timeouts and no retries: a slow Redis costs one timeout.

    After a failure the cache stays out of the way for `retry_after_seconds` (requests get
    CacheUnavailable at once, without touching the network), then tries again; the outage is
    logged once when it starts and once when it ends.
    """

    backend = "redis"
    tier = "far"

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float,
        retry_after_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.retry_after_seconds = retry_after_seconds
        self._clock = clock
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),
        )
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._failures = 0

    @property
    def available(self) -> bool:
        return self._down_since is None

    async def get(self, key: str) -> float | None:
        self._refuse_while_down()
        try:
            raw = await self._client.get(key)
        except (RedisError, OSError) as exc:
            raise self._failed("get", exc) from exc
        self._answered()

        return None if raw is None else _parse_score(key, raw)

    async def get_with_ttl(self, key: str) -> tuple[float, float | None] | None:
        """The score and its remaining TTL, read in one command that sees both at one moment."""
        self._refuse_while_down()
        try:
            found = await self._client.eval(_GET_WITH_PTTL, 1, key)
        except (RedisError, OSError) as exc:
            raise self._failed("get", exc) from exc
        self._answered()

        if found is None:
            return None
        raw, pttl_ms = found
        score = _parse_score(key, raw)
        if score is None:
            return None
        # PTTL is -1 for a key without an expiry (written by something other than this cache).
        return score, (pttl_ms / 1000 if pttl_ms >= 0 else None)

    async def set(self, key: str, score: float, ttl_seconds: int) -> None:
        self._refuse_while_down()
        try:
            await self._client.set(key, repr(score), ex=ttl_seconds)
        except (RedisError, OSError) as exc:
            raise self._failed("set", exc) from exc
        self._answered()

    async def open(self) -> None:
        log.info("event=score_cache_started backend=redis url=%s", redact_url(self.url))
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            self._failed("ping", exc)
            return
        self._answered()

    async def close(self) -> None:
        await self._client.aclose()

    def _refuse_while_down(self) -> None:
        if self._down_since is not None and self._clock() < self._retry_at:
            raise CacheUnavailable("score cache is down; retrying it shortly")

    def _failed(self, operation: str, exc: BaseException) -> CacheUnavailable:
        error_counters[operation].inc()
        now = self._clock()
        self._retry_at = now + self.retry_after_seconds
        self._failures += 1
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "event=score_cache_down backend=redis url=%s operation=%s error=%r "
                "action=computing_scores_without_the_cache retry_after_seconds=%s",
                redact_url(self.url),
                operation,
                str(exc),
                self.retry_after_seconds,
            )
        return CacheUnavailable(f"score cache {operation} failed: {exc}")

    def _answered(self) -> None:
        if self._down_since is None:
            return

        log.warning(
            "event=score_cache_up backend=redis url=%s down_seconds=%.1f failed_operations=%d",
            redact_url(self.url),
            self._clock() - self._down_since,
            self._failures,
        )
        self._down_since = None
        self._failures = 0
