"""POST /score over HTTP with the real Redis: hits, misses, bypasses, expiry and the key."""

import time

import pytest
import redis

from perf_platform_tests.services.scoring.harness import TEST_ITERATIONS, counter, post_score
from services.scoring import model

FEATURES = {"orders": 17, "age_days": 412.5, "returns": 2}


def test_the_first_request_misses_and_the_second_hits_with_the_same_score(scoring):
    first = post_score(scoring, FEATURES)
    second = post_score(scoring, FEATURES)

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit"
    assert first.json() == second.json()
    assert first.json()["entity_id"] == "e-1"
    assert first.json()["model_version"] == model.MODEL_VERSION
    assert first.json()["score"] == model.compute_score(FEATURES, iterations=TEST_ITERATIONS)


def test_the_answer_is_the_documented_json_and_nothing_more(scoring):
    response = post_score(scoring, FEATURES, entity_id="customer-42")

    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"entity_id", "score", "model_version"}
    assert response.json()["entity_id"] == "customer-42"


def test_the_key_ignores_feature_order_and_number_formatting(scoring):
    post_score(scoring, {"a": 1, "b": 2.5})

    response = post_score(scoring, {"b": 2.5, "a": 1.0})

    assert response.headers["x-cache"] == "hit"


def test_the_entity_id_is_not_part_of_the_key(scoring):
    post_score(scoring, FEATURES, entity_id="first")

    response = post_score(scoring, FEATURES, entity_id="second")

    assert response.headers["x-cache"] == "hit"
    assert response.json()["entity_id"] == "second"


def test_no_cache_computes_afresh_and_refreshes_the_entry(scoring, redis_url, key_prefix):
    post_score(scoring, FEATURES)
    client = redis.Redis.from_url(redis_url)
    [key] = client.keys(f"{key_prefix}*")
    client.set(key, "0.123")  # what a corrupted or stale entry would look like

    fresh = post_score(scoring, FEATURES, cache_control="no-cache")
    after = post_score(scoring, FEATURES)

    assert fresh.headers["x-cache"] == "bypass"
    assert fresh.json()["score"] == model.compute_score(FEATURES, iterations=TEST_ITERATIONS)
    assert after.headers["x-cache"] == "hit"
    assert after.json()["score"] == fresh.json()["score"]
    client.close()


@pytest.mark.parametrize("header", ["No-Cache", "max-age=0, no-cache", 'no-cache="x-foo"'])
def test_no_cache_is_recognised_among_other_directives(scoring, header):
    post_score(scoring, FEATURES)

    assert post_score(scoring, FEATURES, cache_control=header).headers["x-cache"] == "bypass"


def test_other_cache_control_directives_do_not_bypass(scoring):
    post_score(scoring, FEATURES)

    assert post_score(scoring, FEATURES, cache_control="max-age=60").headers["x-cache"] == "hit"


@pytest.mark.parametrize("near_entries", [10_000, 0], ids=["redis+near", "redis"])
def test_entries_are_stored_with_the_configured_ttl_and_expire(
    start_scoring, redis_url, key_prefix, near_entries
):
    with start_scoring(score_cache_ttl=1, score_near_cache_entries=near_entries) as client:
        post_score(client, FEATURES)
        redis_client = redis.Redis.from_url(redis_url)
        [key] = redis_client.keys(f"{key_prefix}*")
        assert 0 < redis_client.pttl(key) <= 1000
        assert post_score(client, FEATURES).headers["x-cache"] == "hit"

        time.sleep(1.1)

        assert post_score(client, FEATURES).headers["x-cache"] == "miss"
        redis_client.close()


def test_a_new_model_version_misses_what_the_old_one_stored(start_scoring, monkeypatch):
    with start_scoring() as old:
        post_score(old, FEATURES)
        assert post_score(old, FEATURES).headers["x-cache"] == "hit"

    monkeypatch.setattr(model, "MODEL_VERSION", "recurrent-16-next")
    with start_scoring() as new:
        response = post_score(new, FEATURES)

    assert response.headers["x-cache"] == "miss"
    assert response.json()["model_version"] == "recurrent-16-next"


def test_a_different_model_cost_misses_as_it_changes_the_score(start_scoring):
    with start_scoring(score_model_iterations=5) as cheap:
        post_score(cheap, FEATURES)
    with start_scoring(score_model_iterations=6) as costlier:
        response = post_score(costlier, FEATURES)

    assert response.headers["x-cache"] == "miss"


def test_the_cache_switched_off_computes_every_request(start_scoring):
    with start_scoring(score_cache_enabled=False) as client:
        before = counter(client, "score_model_computations_total")
        answers = [post_score(client, FEATURES).headers["x-cache"] for _ in range(3)]

        assert answers == ["miss", "miss", "miss"]
        assert counter(client, "score_model_computations_total") - before == 3
        assert client.get("/info").json()["cache_backend"] == "none"


def test_requests_are_counted_by_cache_result(scoring):
    def counts():
        return {
            result: counter(scoring, "score_cache_requests_total", result=result)
            for result in ("hit", "miss", "bypass", "error")
        }

    before = counts()
    post_score(scoring, FEATURES)
    post_score(scoring, FEATURES)
    post_score(scoring, FEATURES)
    post_score(scoring, FEATURES, cache_control="no-cache")
    after = counts()

    delta = {result: after[result] - before[result] for result in after}
    assert delta == {"hit": 2, "miss": 1, "bypass": 1, "error": 0}


def test_the_service_answers_health_ping_and_info(scoring):
    assert scoring.get("/healthz").json() == {"status": "ok"}
    assert scoring.get("/ping").status_code == 200
    info = scoring.get("/info").json()
    assert info["cache_backend"] == "redis+near"
    assert info["near_cache_entries"] == 10_000
    assert info["model_version"] == model.MODEL_VERSION
    assert info["model_iterations"] == TEST_ITERATIONS


def test_the_openapi_document_describes_score(scoring):
    operation = scoring.get("/openapi.json").json()["paths"]["/score"]["post"]

    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"entity_id", "features"}
    assert "X-Cache" in operation["responses"]["200"]["headers"]
