"""Scores cached in the process (the whole cache without REDIS_URL, the near tier with it): each
until its expiry, the least recently used first out when full, and the log says so."""

import asyncio
import logging

import pytest

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


def test_reading_an_entry_makes_it_the_most_recently_used():
    cache = MemoryScoreCache(max_entries=2)

    cache.store("a", 1.0, ttl_seconds=60)
    cache.store("b", 2.0, ttl_seconds=60)
    assert cache.lookup("a") == 1.0
    cache.store("c", 3.0, ttl_seconds=60)  # evicts b: a was read after it was written

    assert [cache.lookup(key) for key in ("a", "b", "c")] == [1.0, None, 3.0]
    assert len(cache) == 2


def test_entries_expire_each_at_its_own_time():
    clock = Clock()
    cache = MemoryScoreCache(clock=clock)

    cache.store("long", 1.0, ttl_seconds=10)
    cache.store_until("short", 2.0, expires_at=clock.now + 2)
    clock.now += 5

    assert (cache.lookup("long"), cache.lookup("short")) == (1.0, None)
    assert cache.expires_at("long") == clock.now + 5


def test_an_entry_already_expired_is_not_stored():
    clock = Clock()
    cache = MemoryScoreCache(clock=clock)
    cache.store("k", 1.0, ttl_seconds=10)

    cache.store_until("k", 1.0, expires_at=clock.now)

    assert cache.lookup("k") is None
    assert len(cache) == 0


def test_get_with_ttl_tells_how_long_an_entry_still_lives():
    clock = Clock()
    cache = MemoryScoreCache(clock=clock)

    async def scenario() -> list:
        await cache.set("k", 0.5, ttl_seconds=10)
        clock.now += 4
        return [await cache.get_with_ttl("k"), await cache.get_with_ttl("other")]

    assert asyncio.run(scenario()) == [(0.5, 6.0), None]


def test_the_cache_holds_at_least_one_entry():
    with pytest.raises(ValueError, match="at least 1"):
        MemoryScoreCache(max_entries=0)
