"""Bodies /score refuses, each with the code and the field at fault, and nothing cached for them."""

import json

import httpx
import pytest

from perf_platform.servers import serve_asgi
from perf_platform.settings import Settings
from perf_platform_tests.services.scoring.harness import TEST_ITERATIONS, counter
from services.scoring.app import MAX_BODY_BYTES, create_app

GOOD = {"entity_id": "e-1", "features": {"x": 1.0}}


@pytest.fixture(scope="module")
def scoring(redis_url, redis_prefix):
    """One service for the module: refused bodies leave nothing behind for the next test."""
    settings = Settings(
        redis_url=redis_url,
        score_cache_prefix=f"{redis_prefix}scoring-bad-input:",
        score_model_iterations=TEST_ITERATIONS,
    )
    with serve_asgi(create_app(settings)) as base_url, httpx.Client(base_url=base_url) as client:
        yield client


def post_raw(client, body: bytes, content_type: str = "application/json"):
    return client.post("/score", content=body, headers={"content-type": content_type})


FEATURES_X = ["body", "features", "x"]


@pytest.mark.parametrize(
    ("body", "loc", "error_type"),
    [
        (b'{"entity_id": "e-1", "features": {"x": NaN}}', FEATURES_X, "finite_number"),
        (b'{"entity_id": "e-1", "features": {"x": Infinity}}', FEATURES_X, "finite_number"),
        (b'{"entity_id": "e-1", "features": {"x": -Infinity}}', FEATURES_X, "finite_number"),
        (b'{"entity_id": "e-1", "features": {"x": 1e999}}', FEATURES_X, "finite_number"),
        (b'{"entity_id": "e-1", "features": {"x": "1.5"}}', FEATURES_X, "float_type"),
        (b'{"entity_id": "e-1", "features": {"x": true}}', FEATURES_X, "float_type"),
        (b'{"entity_id": "e-1", "features": {"x": null}}', FEATURES_X, "float_type"),
        (b'{"entity_id": "e-1", "features": {}}', ["body", "features"], "too_short"),
        (b'{"entity_id": "e-1", "features": [1.0]}', ["body", "features"], "dict_type"),
        (b'{"entity_id": "e-1"}', ["body", "features"], "missing"),
        (b'{"features": {"x": 1.0}}', ["body", "entity_id"], "missing"),
        (b'{"entity_id": 7, "features": {"x": 1.0}}', ["body", "entity_id"], "string_type"),
        (b'{"entity_id": "", "features": {"x": 1.0}}', ["body", "entity_id"], "string_too_short"),
        (
            b'{"entity_id": "e", "features": {"x": 1}, "extra": 1}',
            ["body", "extra"],
            "extra_forbidden",
        ),
        (b'{"entity_id": "e-1", "features": {"x": 1.0}', ["body"], "json_invalid"),
        (b"", ["body"], "json_invalid"),
        (b"[1, 2]", ["body"], "model_type"),
    ],
)
def test_a_bad_body_gets_422_naming_the_field(scoring, body, loc, error_type):
    response = post_raw(scoring, body)

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == loc
    assert error["type"] == error_type
    assert error["msg"]


def test_an_empty_feature_name_is_refused(scoring):
    response = post_raw(scoring, b'{"entity_id": "e-1", "features": {"": 1.0}}')

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"][:3] == ["body", "features", ""]


def test_the_refusal_does_not_echo_the_input(scoring):
    response = post_raw(scoring, b'{"entity_id": "e-1", "features": {"x": "secret-ish"}}')

    assert "secret-ish" not in response.text


def test_a_refused_body_is_neither_scored_nor_counted(scoring):
    before = counter(scoring, "score_model_computations_total")

    post_raw(scoring, b'{"entity_id": "e-1", "features": {"x": NaN}}')

    assert counter(scoring, "score_model_computations_total") == before


def test_a_body_that_is_not_json_gets_415(scoring):
    response = post_raw(scoring, json.dumps(GOOD).encode(), content_type="text/plain")

    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]


def test_json_with_a_charset_is_json(scoring):
    response = post_raw(scoring, json.dumps(GOOD).encode(), "application/json; charset=utf-8")

    assert response.status_code == 200


def body_of_size(size: int) -> bytes:
    """A valid /score body padded with whitespace to exactly `size` bytes."""
    body = json.dumps(GOOD).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


def test_a_body_of_exactly_one_mebibyte_is_accepted(scoring):
    body = body_of_size(MAX_BODY_BYTES)
    assert len(body) == 1024 * 1024

    assert post_raw(scoring, body).status_code == 200


def test_a_body_over_one_mebibyte_gets_413_from_its_content_length(scoring):
    response = post_raw(scoring, body_of_size(MAX_BODY_BYTES + 1))

    assert response.status_code == 413
    assert "1048576" in response.json()["detail"]


def test_a_streamed_body_over_one_mebibyte_gets_413_without_a_content_length(scoring):
    chunk = b" " * 65536

    def chunks():
        yield b'{"entity_id": "e-1", "features": {"x": 1.0}'
        for _ in range(17):  # 17 x 64 KiB: past the limit
            yield chunk
        yield b"}"

    response = scoring.post(
        "/score", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 413


def test_a_streamed_body_under_the_limit_is_scored(scoring):
    def chunks():
        yield b'{"entity_id": "e-1", '
        yield b'"features": {"x": 1.0}}'

    response = scoring.post(
        "/score", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 200
    assert response.json()["entity_id"] == "e-1"
