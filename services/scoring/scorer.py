"""Scorer: a score from the cache when it has one, from the model otherwise, counted either way."""

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Literal

import anyio.to_thread

from services.scoring.cache import CacheUnavailable, ScoreCache, cache_key
from services.scoring.counters import request_counters, score_model_computations
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
    """Scores inputs under one model; `cache` None means every score is computed."""

    def __init__(
        self,
        cache: ScoreCache | None,
        *,
        model_version: str,
        iterations: int,
        ttl_seconds: int,
        key_prefix: str,
    ) -> None:
        self.cache = cache
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
        else:
            scored = await self._flights.run(key, partial(self._lookup, key, features))

        request_counters[scored.cache_result].inc()
        return scored

    async def _lookup(self, key: str, features: Mapping[str, float]) -> Scored:
        if self.cache is None:
            return Scored(await self._compute(features), "miss")

        try:
            cached = await self.cache.get(key)
        except CacheUnavailable:
            return Scored(await self._compute(features), "error")
        if cached is not None:
            return Scored(cached, "hit")

        return Scored(await self._compute_and_store(key, features), "miss")

    async def _compute_and_store(self, key: str, features: Mapping[str, float]) -> float:
        score = await self._compute(features)
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
