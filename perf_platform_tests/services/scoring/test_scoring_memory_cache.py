"""Without REDIS_URL: scores cached in the process, each for its TTL, and the log says so."""

import asyncio
import logging

from perf_platform_tests.services.scoring.harness import post_score
from services.scoring.cache import MemoryScoreCache

FEATURES = {"orders": 4.0}


def test_without_redis_url_the_service_caches_in_process_and_says_so(start_scoring, caplog):
    caplog.set_level(logging.INFO, logger="services.scoring")

    with start_scoring(redis_url=None) as client:
        first = post_score(client, FEATURES)
        second = post_score(client, FEATURES)
        info = client.get("/info").json()

    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert first.json()["score"] == second.json()["score"]
    assert info["cache_backend"] == "memory"
    [started] = [r for r in caplog.records if "event=score_cache_started" in r.getMessage()]
    assert started.levelno == logging.WARNING
    assert "backend=memory" in started.getMessage()
    assert "REDIS_URL_unset" in started.getMessage()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_for_its_ttl():
    clock = Clock()
    cache = MemoryScoreCache(clock=clock)

    async def scenario() -> list[float | None]:
        await cache.set("k", 0.25, ttl_seconds=10)
        seen = [await cache.get("k")]
        clock.now += 9.9
        seen.append(await cache.get("k"))
        clock.now += 0.1
        seen.append(await cache.get("k"))
        return seen

    assert asyncio.run(scenario()) == [0.25, 0.25, None]


def test_when_full_the_oldest_entries_go_first():
    cache = MemoryScoreCache(max_entries=3)

    async def scenario() -> list[float | None]:
        for n in range(4):
            await cache.set(f"k{n}", float(n), ttl_seconds=60)
        return [await cache.get(f"k{n}") for n in range(4)]

    assert asyncio.run(scenario()) == [None, 1.0, 2.0, 3.0]


def test_writing_an_entry_again_renews_it():
    clock = Clock()
    cache = MemoryScoreCache(max_entries=2, clock=clock)

    async def scenario() -> list[float | None]:
        await cache.set("a", 1.0, ttl_seconds=10)
        await cache.set("b", 2.0, ttl_seconds=10)
        clock.now += 5
        await cache.set("a", 1.0, ttl_seconds=10)  # now the newest
        await cache.set("c", 3.0, ttl_seconds=10)  # evicts b, the oldest
        clock.now += 7
        return [await cache.get(key) for key in ("a", "b", "c")]

    assert asyncio.run(scenario()) == [1.0, None, 3.0]
