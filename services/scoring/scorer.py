"""Scorer: a score from the cache when it has one, from the model otherwise, counted either way.

With a near tier (`near`, this process's memory in front of the shared `cache`), a score is looked
for near first, then in the shared cache, and every score found or computed is kept near: for the
full TTL when it was just computed, for what the shared cache has left of it when read from there,
so no score outlives its TTL.
"""

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Literal

import anyio.to_thread

from services.scoring.cache import CacheUnavailable, MemoryScoreCache, ScoreCache, cache_key
from services.scoring.counters import hit_counters, request_counters, score_model_computations
from services.scoring.model import compute_score
from services.scoring.singleflight import SingleFlight

CacheResult = Literal["hit", "miss", "bypass", "error"]


@dataclass(frozen=True, slots=True)
class Scored:
    score: float
    # What the cache did: "error" means it did not answer and the score was computed.
    cache_result: CacheResult

    @property
    def x_cache(self) -> str:
        """The X-Cache header: a score the cache did not serve is a miss, whatever the reason."""
        return "miss" if self.cache_result == "error" else self.cache_result


class Scorer:
    """Scores inputs under one model; `cache` None means every score is computed, `near` None
    that there is no near tier in front of `cache`."""

    def __init__(
        self,
        cache: ScoreCache | None,
        *,
        model_version: str,
        iterations: int,
        ttl_seconds: int,
        key_prefix: str,
        near: MemoryScoreCache | None = None,
    ) -> None:
        if near is not None and cache is None:
            raise ValueError("a near tier needs a cache behind it")
        self.cache = cache
        self.near = near
        self.model_version = model_version
        self.iterations = iterations
        self.ttl_seconds = ttl_seconds
        self.key_prefix = key_prefix
        # The iterations change the score, so they are part of the model's identity.
        self.model_id = f"{model_version}:i{iterations}"
        self._flights: SingleFlight[Scored] = SingleFlight()

    def key(self, features: Mapping[str, float]) -> str:
        return cache_key(features, model_id=self.model_id, prefix=self.key_prefix)

    async def score(self, features: Mapping[str, float], *, fresh: bool = False) -> Scored:
        """The score of `features`; `fresh` computes it even when the cache has it (and stores
        the result)."""
        key = self.key(features)
        if fresh:
            scored = Scored(await self._compute_and_store(key, features), "bypass")
        elif self.near is not None and (near_score := self.near.lookup(key)) is not None:
            # Before the single flight: a near hit needs neither a future nor an await.
            hit_counters["near"].inc()
            scored = Scored(near_score, "hit")
        else:
            scored = await self._flights.run(key, partial(self._lookup, key, features))

        request_counters[scored.cache_result].inc()
        return scored

    async def _lookup(self, key: str, features: Mapping[str, float]) -> Scored:
        if self.cache is None:
            return Scored(await self._compute(features), "miss")

        try:
            if self.near is None:
                cached = await self.cache.get(key)
            else:
                cached = await _read_into_near(self.cache, self.near, key, self.ttl_seconds)
        except CacheUnavailable:
            score = await self._compute(features)
            if self.near is not None:
                # The shared cache is not written while it is down, but this process remembers.
                self.near.store(key, score, self.ttl_seconds)
            return Scored(score, "error")
        if cached is not None:
            hit_counters[self.cache.tier].inc()
            return Scored(cached, "hit")

        return Scored(await self._compute_and_store(key, features), "miss")

    async def _compute_and_store(self, key: str, features: Mapping[str, float]) -> float:
        score = await self._compute(features)
        if self.near is not None:
            self.near.store(key, score, self.ttl_seconds)
        if self.cache is not None:
            # A failed write is counted and logged by the cache; the score is still good.
            with contextlib.suppress(CacheUnavailable):
                await self.cache.set(key, score, self.ttl_seconds)
        return score

    async def _compute(self, features: Mapping[str, float]) -> float:
        score_model_computations.inc()
        # In a worker thread, so the event loop keeps answering cache hits meanwhile.
        return await anyio.to_thread.run_sync(
            partial(compute_score, features, iterations=self.iterations)
        )


async def _read_into_near(
    cache: ScoreCache, near: MemoryScoreCache, key: str, ttl_seconds: int
) -> float | None:
    """A score from the shared cache, kept near until the shared cache's copy expires."""
    # Counted from before the question: the near copy expires no later than the far one.
    asked_at = near.clock()
    found = await cache.get_with_ttl(key)
    if found is None:
        return None

    score, remaining_seconds = found
    # A far entry without an expiry was not written by this cache; its age is unknown.
    if remaining_seconds is not None:
        near.store_until(key, score, asked_at + min(remaining_seconds, ttl_seconds))
    return score
