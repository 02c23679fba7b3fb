"""The score cache: the key of an input, and the two places a score can be kept.

RedisScoreCache is shared by every replica; MemoryScoreCache lives in one process and is what the
service uses when REDIS_URL is unset. Both raise CacheUnavailable when they cannot answer, and the
caller computes the score instead.
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


def canonical_features(features: Mapping[str, float]) -> bytes:
    """The features as bytes that depend neither on key order nor on how a number was written."""
    # float() makes 1 and 1.0 one value and + 0.0 makes -0.0 and 0.0 one; repr is exact.
    pairs = sorted((name, float(value) + 0.0) for name, value in features.items())
    return json.dumps(pairs, separators=(",", ":")).encode()


def cache_key(features: Mapping[str, float], *, model_id: str, prefix: str) -> str:
    """Where the score of these features under this model is kept."""
    digest = hashlib.blake2b(canonical_features(features), digest_size=16).hexdigest()
    return f"{prefix}{model_id}:{digest}"


class ScoreCache(Protocol):
    backend: str

    async def get(self, key: str) -> float | None: ...

    async def set(self, key: str, score: float, ttl_seconds: int) -> None: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...


class MemoryScoreCache:
    """Scores kept in this process, each for its TTL; the oldest go first when it is full."""

    backend = "memory"

    def __init__(
        self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max_entries
        self._clock = clock
        # Every entry has the same TTL, so write order is expiry order.
        self._entries: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def get(self, key: str) -> float | None:
        entry = self._entries.get(key)
        if entry is None:
            return None

        expires_at, score = entry
        if expires_at <= self._clock():
            del self._entries[key]
            return None
        return score

    async def set(self, key: str, score: float, ttl_seconds: int) -> None:
        self._entries[key] = (self._clock() + ttl_seconds, score)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

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

        if raw is None:
            return None
        try:
            return float(raw)
        except ValueError:
            log.warning("event=score_cache_bad_value key=%s value=%.40r", key, raw)
            return None

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
