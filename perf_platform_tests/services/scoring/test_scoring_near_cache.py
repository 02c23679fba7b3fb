"""The near tier: recent scores kept in each process in front of Redis, never past their TTL."""

import logging
import time
from contextlib import asynccontextmanager

import pytest
import redis

from perf_platform_tests.services.scoring.harness import TEST_ITERATIONS, counter, post_score
from services.scoring import model
from services.scoring.cache import MemoryScoreCache, RedisScoreCache
from services.scoring.scorer import Scorer

FEATURES = {"orders": 9.0, "returns": 1.0}
SCORE = model.compute_score(FEATURES, iterations=TEST_ITERATIONS)


def hits(client, tier: str) -> float:
    return counter(client, "score_cache_hits_total", tier=tier)


def errors(client) -> float:
    return counter(client, "score_cache_requests_total", result="error")


def the_only_key(redis_client: redis.Redis, key_prefix: str) -> bytes:
    [key] = redis_client.keys(f"{key_prefix}*")
    return key


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_a_near_hit_needs_no_redis(start_scoring, private_redis, caplog):
    caplog.set_level(logging.INFO, logger="services.scoring")

    with start_scoring(redis_url=private_redis.url) as client:
        assert post_score(client, FEATURES).headers["x-cache"] == "miss"
        errors_before, near_before = errors(client), hits(client, "near")

        private_redis.stop()
        response = post_score(client, FEATURES)

        assert response.status_code == 200
        assert response.headers["x-cache"] == "hit"
        assert response.json()["score"] == SCORE
        assert hits(client, "near") - near_before == 1
        assert errors(client) == errors_before
    assert not [r for r in caplog.records if "event=score_cache_down" in r.getMessage()]


def test_with_redis_down_a_computed_score_is_kept_near(start_scoring, private_redis):
    private_redis.stop()

    with start_scoring(redis_url=private_redis.url) as client:
        computations_before = counter(client, "score_model_computations_total")
        errors_before = errors(client)
        answers = [post_score(client, FEATURES) for _ in range(3)]

        assert [answer.headers["x-cache"] for answer in answers] == ["miss", "hit", "hit"]
        assert {answer.json()["score"] for answer in answers} == {SCORE}
        assert counter(client, "score_model_computations_total") - computations_before == 1
        # Only the miss asked Redis (and found it down); the near hits did not.
        assert errors(client) - errors_before == 1


def test_a_score_another_replica_computed_is_read_from_redis_once_then_kept_near(start_scoring):
    with start_scoring() as replica_a, start_scoring() as replica_b:
        assert post_score(replica_a, FEATURES).headers["x-cache"] == "miss"
        far_before, near_before = hits(replica_b, "far"), hits(replica_b, "near")

        first = post_score(replica_b, FEATURES)
        far_after_first = hits(replica_b, "far")
        second = post_score(replica_b, FEATURES)

        assert (first.headers["x-cache"], second.headers["x-cache"]) == ("hit", "hit")
        assert first.json()["score"] == second.json()["score"] == SCORE
        assert far_after_first - far_before == 1
        assert hits(replica_b, "far") == far_after_first
        assert hits(replica_b, "near") - near_before == 1


def test_a_score_read_from_redis_leaves_the_near_tier_when_redis_drops_it(
    start_scoring, redis_client, key_prefix
):
    with start_scoring(score_cache_ttl=2) as replica_a, start_scoring() as replica_b:
        post_score(replica_a, FEATURES)
        key = the_only_key(redis_client, key_prefix)
        time.sleep(1.0)  # half the TTL is gone: replica B must not keep it for a full TTL
        assert post_score(replica_b, FEATURES).headers["x-cache"] == "hit"  # from Redis
        near_before = hits(replica_b, "near")
        assert post_score(replica_b, FEATURES).headers["x-cache"] == "hit"
        assert hits(replica_b, "near") - near_before == 1

        deadline = time.monotonic() + 10
        while redis_client.exists(key) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not redis_client.exists(key)

        assert post_score(replica_b, FEATURES).headers["x-cache"] == "miss"


def test_when_full_the_least_recently_used_score_goes_first(start_scoring, private_redis):
    features = {name: {"n": float(n)} for n, name in enumerate("abc")}

    with start_scoring(redis_url=private_redis.url, score_near_cache_entries=2) as client:
        post_score(client, features["a"])
        post_score(client, features["b"])
        post_score(client, features["a"])  # a near hit: now b is the least recently used
        post_score(client, features["c"])  # a third score: b leaves the near tier

        private_redis.stop()
        answers = {name: post_score(client, features[name]).headers["x-cache"] for name in "acb"}

    assert answers == {"a": "hit", "c": "hit", "b": "miss"}


def test_zero_entries_turns_the_near_tier_off(start_scoring):
    with start_scoring(score_near_cache_entries=0) as client:
        info = client.get("/info").json()
        post_score(client, FEATURES)
        far_before, near_before = hits(client, "far"), hits(client, "near")
        answers = [post_score(client, FEATURES).headers["x-cache"] for _ in range(2)]

        assert (info["cache_backend"], info["near_cache_entries"]) == ("redis", 0)
        assert answers == ["hit", "hit"]
        assert hits(client, "far") - far_before == 2
        assert hits(client, "near") == near_before


def test_no_cache_passes_the_near_tier_by_and_writes_both_tiers(
    start_scoring, redis_client, key_prefix
):
    with start_scoring() as replica_a:
        post_score(replica_a, FEATURES)
        redis_client.set(the_only_key(redis_client, key_prefix), "0.123", keepttl=True)
        computations_before = counter(replica_a, "score_model_computations_total")

        fresh = post_score(replica_a, FEATURES, cache_control="no-cache")

        assert fresh.headers["x-cache"] == "bypass"
        assert fresh.json()["score"] == SCORE
        assert counter(replica_a, "score_model_computations_total") - computations_before == 1
        assert post_score(replica_a, FEATURES).json()["score"] == SCORE

    with start_scoring() as replica_b:
        assert post_score(replica_b, FEATURES).json()["score"] == SCORE  # Redis was rewritten


def test_the_startup_log_and_info_say_redis_with_a_near_tier(start_scoring, caplog):
    caplog.set_level(logging.INFO, logger="services.scoring")

    with start_scoring(score_near_cache_entries=500) as client:
        info = client.get("/info").json()

    assert (info["cache_backend"], info["near_cache_entries"]) == ("redis+near", 500)
    [started] = [r for r in caplog.records if "event=scoring_started" in r.getMessage()]
    assert "cache_backend=redis+near near_cache_entries=500 " in started.getMessage()


def test_without_redis_the_near_setting_is_unused(start_scoring):
    with start_scoring(redis_url=None, score_near_cache_entries=500) as client:
        info = client.get("/info").json()

    assert (info["cache_backend"], info["near_cache_entries"]) == ("memory", 0)


# The Scorer itself, on the real Redis, with the near tier on a clock the test moves.


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def near_scorer(redis_url, key_prefix):
    """`async with near_scorer(ttl_seconds) as (scorer, clock):` Redis behind a near tier."""

    @asynccontextmanager
    async def make(ttl_seconds: int = 300):
        clock = Clock()
        far = RedisScoreCache(redis_url, timeout_seconds=1.0)
        scorer = Scorer(
            far,
            near=MemoryScoreCache(max_entries=100, clock=clock),
            model_version=model.MODEL_VERSION,
            iterations=TEST_ITERATIONS,
            ttl_seconds=ttl_seconds,
            key_prefix=key_prefix,
        )
        try:
            yield scorer, clock
        finally:
            await far.close()

    return make


@pytest.mark.anyio
async def test_a_far_hit_is_kept_near_for_what_redis_has_left_of_it(near_scorer, redis_client):
    async with near_scorer(ttl_seconds=300) as (scorer, clock):
        key = scorer.key(FEATURES)
        redis_client.set(key, repr(SCORE), px=1500)

        scored = await scorer.score(FEATURES)
        redis_left_ms = redis_client.pttl(key)

        assert (scored.score, scored.cache_result) == (SCORE, "hit")
        near_left = scorer.near.expires_at(key) - clock.now
        # Read in the same millisecond, the two are equal up to the float sum's rounding.
        assert redis_left_ms / 1000 - 1e-9 <= near_left <= 1.5


@pytest.mark.anyio
async def test_a_far_entry_that_outlives_the_ttl_is_kept_near_for_the_ttl(
    near_scorer, redis_client
):
    async with near_scorer(ttl_seconds=5) as (scorer, clock):
        key = scorer.key(FEATURES)
        redis_client.set(key, repr(SCORE), ex=3600)

        await scorer.score(FEATURES)

        assert scorer.near.expires_at(key) == clock.now + 5


@pytest.mark.anyio
async def test_a_far_entry_without_an_expiry_is_served_but_not_kept_near(near_scorer, redis_client):
    async with near_scorer() as (scorer, _clock):
        key = scorer.key(FEATURES)
        redis_client.set(key, repr(SCORE))

        scored = await scorer.score(FEATURES)

        assert (scored.score, scored.cache_result) == (SCORE, "hit")
        assert scorer.near.expires_at(key) is None


@pytest.mark.anyio
async def test_a_computed_score_is_kept_near_for_the_full_ttl_and_no_longer(near_scorer):
    async with near_scorer(ttl_seconds=60) as (scorer, clock):
        assert (await scorer.score(FEATURES)).cache_result == "miss"
        clock.now += 59.9
        assert (await scorer.score(FEATURES)).cache_result == "hit"
        assert scorer.near.lookup(scorer.key(FEATURES)) == SCORE

        clock.now += 0.1

        assert scorer.near.lookup(scorer.key(FEATURES)) is None


@pytest.mark.anyio
async def test_no_cache_renews_the_near_entry(near_scorer):
    async with near_scorer(ttl_seconds=60) as (scorer, clock):
        await scorer.score(FEATURES)
        clock.now += 50

        assert (await scorer.score(FEATURES, fresh=True)).cache_result == "bypass"

        assert scorer.near.expires_at(scorer.key(FEATURES)) == clock.now + 60
