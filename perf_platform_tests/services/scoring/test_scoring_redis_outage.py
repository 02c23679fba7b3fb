"""Redis failing never fails a request: a private redis-server is killed, hung and restarted.

These services run without the near tier, so every request goes to Redis and the outage is seen
by each; test_scoring_near_cache.py has what the near tier changes in an outage.
"""

import logging
import signal
import time

import pytest

from perf_platform_tests.services.scoring.harness import TEST_ITERATIONS, counter, post_score
from services.scoring.model import compute_score

FEATURES = {"orders": 3.0, "returns": 1.0}
SCORE = compute_score(FEATURES, iterations=TEST_ITERATIONS)
REDIS_ONLY = {"score_near_cache_entries": 0}


def cache_events(caplog, event: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if f"event={event} " in record.getMessage()]


def wait_for_a_hit(client, features, timeout_seconds: float = 15.0) -> list[str]:
    """Send the same request until it is a hit; the X-Cache answers seen on the way."""
    seen = []
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        response = post_score(client, features)
        assert response.status_code == 200
        seen.append(response.headers["x-cache"])
        if seen[-1] == "hit":
            return seen
        time.sleep(0.1)
    raise AssertionError(f"no cache hit within {timeout_seconds}s after Redis came back: {seen}")


@pytest.fixture
def outage_log(caplog):
    caplog.set_level(logging.INFO, logger="services.scoring")
    return caplog


def test_redis_killed_mid_run_fails_no_request_and_hits_come_back(
    start_scoring, private_redis, outage_log
):
    with start_scoring(redis_url=private_redis.url, **REDIS_ONLY) as client:
        assert post_score(client, FEATURES).headers["x-cache"] == "miss"
        assert post_score(client, FEATURES).headers["x-cache"] == "hit"
        errors_before = counter(client, "score_cache_requests_total", result="error")

        private_redis.stop()
        during = [post_score(client, FEATURES) for _ in range(20)]

        assert [response.status_code for response in during] == [200] * 20
        assert {response.headers["x-cache"] for response in during} == {"miss"}
        assert {response.json()["score"] for response in during} == {SCORE}
        assert counter(client, "score_cache_requests_total", result="error") - errors_before == 20
        assert len(cache_events(outage_log, "score_cache_down")) == 1

        private_redis.start()
        seen = wait_for_a_hit(client, FEATURES)

        assert seen[-1] == "hit"
        assert len(cache_events(outage_log, "score_cache_down")) == 1
        assert len(cache_events(outage_log, "score_cache_up")) == 1


def test_a_hung_redis_costs_a_timeout_not_a_failed_request(start_scoring, private_redis):
    with start_scoring(
        redis_url=private_redis.url, score_cache_timeout_seconds=0.2, **REDIS_ONLY
    ) as client:
        post_score(client, FEATURES)
        private_redis.process.send_signal(signal.SIGSTOP)
        try:
            # The client gives up after 5 s: far longer than one 0.2 s Redis timeout, far
            # shorter than redis-py's defaults (5 s timeouts, retried).
            client.timeout = 5.0
            during = [post_score(client, FEATURES) for _ in range(5)]
        finally:
            private_redis.process.send_signal(signal.SIGCONT)

        assert [response.status_code for response in during] == [200] * 5
        assert {response.json()["score"] for response in during} == {SCORE}
        assert counter(client, "score_cache_errors_total", operation="get") >= 1

        assert wait_for_a_hit(client, FEATURES)[-1] == "hit"


def test_a_service_started_while_redis_is_down_serves_and_says_so(
    start_scoring, private_redis, outage_log
):
    private_redis.stop()

    with start_scoring(redis_url=private_redis.url, **REDIS_ONLY) as client:
        response = post_score(client, FEATURES)

        assert response.status_code == 200
        assert response.json()["score"] == SCORE
        assert len(cache_events(outage_log, "score_cache_down")) == 1

        private_redis.start()
        assert wait_for_a_hit(client, FEATURES)[-1] == "hit"
