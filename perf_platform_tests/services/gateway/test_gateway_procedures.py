"""The gateway's procedures and error envelopes, and what it does when an upstream fails."""

import json
import time
from urllib.parse import quote

import httpx
from sqlalchemy.engine import Engine

from perf_platform_tests.servers import free_port
from perf_platform_tests.services.gateway.trpc_urls import SCORE_INPUT, query


def test_score_get_returns_the_scoring_services_answer(trpc_url: str, scoring_url: str) -> None:
    direct = httpx.post(f"{scoring_url}/score", json=SCORE_INPUT).json()

    response = httpx.get(query(trpc_url, "score.get", SCORE_INPUT))

    assert response.status_code == 200
    assert response.json() == {"result": {"data": direct}}
    assert response.json()["result"]["data"]["entity_id"] == "e-1"


def test_score_compute_is_a_post_mutation_with_the_same_score(trpc_url: str) -> None:
    via_query = httpx.get(query(trpc_url, "score.get", SCORE_INPUT)).json()

    response = httpx.post(f"{trpc_url}/score.compute", json=SCORE_INPUT)

    assert response.status_code == 200
    assert response.json()["result"]["data"]["score"] == via_query["result"]["data"]["score"]


def test_analytics_aggregate_passes_filters_and_paging(trpc_url: str, signals_db: Engine) -> None:
    data = {"group_by": "name", "source": "sensor-a", "limit": 1}

    response = httpx.get(query(trpc_url, "analytics.aggregate", data))

    page = response.json()["result"]["data"]
    assert page["group_by"] == "name"
    assert page["rows"] == [
        {"key": "temp", "count": 2, "sum": 3.0, "avg": 1.5, "min": 1.0, "max": 2.0}
    ]
    assert (page["limit"], page["offset"], page["next_offset"]) == (1, 0, None)


def test_analytics_summary_takes_a_time_range(trpc_url: str, signals_db: Engine) -> None:
    data = {"start": "2025-01-06T00:01:00Z", "end": "2025-01-06T00:03:00Z"}

    response = httpx.get(query(trpc_url, "analytics.summary", data))

    assert response.json()["result"]["data"]["count"] == 2
    assert response.json()["result"]["data"]["sum"] == 5.0


def test_an_upstream_422_becomes_bad_request_with_its_reason(trpc_url: str) -> None:
    response = httpx.get(query(trpc_url, "analytics.summary", {"start": "last tuesday"}))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32600
    assert error["data"] == {"code": "BAD_REQUEST", "httpStatus": 400, "path": "analytics.summary"}
    assert "ISO 8601" in error["message"]


def test_bad_input_is_bad_request_naming_the_field(trpc_url: str) -> None:
    response = httpx.get(query(trpc_url, "score.get", {"entity_id": "e-1"}))

    assert response.status_code == 400
    assert response.json()["error"]["data"]["code"] == "BAD_REQUEST"
    assert "features" in response.json()["error"]["message"]


def test_input_that_is_not_json_is_a_parse_error(trpc_url: str) -> None:
    response = httpx.get(f"{trpc_url}/analytics.summary?input=%7Bnope")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700
    assert response.json()["error"]["data"]["code"] == "PARSE_ERROR"


def test_an_unknown_procedure_is_not_found(trpc_url: str) -> None:
    response = httpx.get(f"{trpc_url}/nothing.here")

    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "message": 'No procedure found on path "nothing.here"',
            "code": -32004,
            "data": {"code": "NOT_FOUND", "httpStatus": 404, "path": "nothing.here"},
        }
    }


def test_a_query_sent_as_post_is_method_not_supported(trpc_url: str) -> None:
    response = httpx.post(f"{trpc_url}/analytics.summary", json={})

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert response.json()["error"]["data"]["code"] == "METHOD_NOT_SUPPORTED"


def test_a_mutation_sent_as_get_is_method_not_supported(trpc_url: str) -> None:
    response = httpx.get(query(trpc_url, "score.compute", SCORE_INPUT))

    assert response.status_code == 405
    assert "etag" not in response.headers


def test_put_is_method_not_supported(trpc_url: str) -> None:
    response = httpx.put(f"{trpc_url}/score.compute", json=SCORE_INPUT)

    assert response.status_code == 405
    assert response.json()["error"]["code"] == -32005


def test_a_post_that_is_not_json_is_unsupported_media_type(trpc_url: str) -> None:
    response = httpx.post(f"{trpc_url}/score.compute", content=b"entity_id=e-1")

    assert response.status_code == 415
    assert response.json()["error"]["data"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_a_batch_may_not_mix_queries_and_mutations(trpc_url: str) -> None:
    response = httpx.post(
        f"{trpc_url}/analytics.summary,score.compute?batch=1", json={"1": SCORE_INPUT}
    )

    assert response.status_code == 400
    assert [item["error"]["data"]["path"] for item in response.json()] == [
        "analytics.summary",
        "score.compute",
    ]


def test_a_batch_of_mutations_answers_in_order(trpc_url: str) -> None:
    other = {"entity_id": "e-2", "features": {"clicks": 1.0}}

    response = httpx.post(
        f"{trpc_url}/score.compute,score.compute?batch=1", json={"0": SCORE_INPUT, "1": other}
    )

    assert response.status_code == 200
    assert [item["result"]["data"]["entity_id"] for item in response.json()] == ["e-1", "e-2"]
    assert "etag" not in response.headers


def test_a_batch_of_more_than_100_calls_is_refused(trpc_url: str) -> None:
    paths = ",".join(["analytics.summary"] * 101)

    response = httpx.get(f"{trpc_url}/{paths}?batch=1")

    assert response.status_code == 400
    assert len(response.json()) == 101
    assert "at most 100 calls" in response.json()[0]["error"]["message"]


def test_a_streaming_request_is_refused_with_the_reason(trpc_url: str) -> None:
    response = httpx.get(
        f"{trpc_url}/analytics.summary?batch=1&input=%7B%7D",
        headers={"trpc-accept": "application/jsonl"},
    )

    assert response.status_code == 400
    assert "httpBatchLink" in response.json()[0]["error"]["message"]


def test_an_upstream_that_is_down_is_bad_gateway(start_gateway) -> None:
    closed = f"http://127.0.0.1:{free_port()}"

    with start_gateway(gateway_analytics_url=closed) as trpc_url:
        response = httpx.get(f"{trpc_url}/analytics.summary")

    assert response.status_code == 502
    assert response.json()["error"]["data"]["code"] == "BAD_GATEWAY"
    assert response.json()["error"]["message"].startswith("analytics is unreachable")
    assert "etag" not in response.headers


def test_an_upstream_that_never_answers_is_a_gateway_timeout_not_a_hang(
    start_gateway, stalling_upstream: str
) -> None:
    with start_gateway(
        gateway_scoring_url=stalling_upstream, gateway_upstream_timeout_seconds=0.5
    ) as trpc_url:
        started = time.monotonic()
        response = httpx.get(query(trpc_url, "score.get", SCORE_INPUT), timeout=10)
        elapsed = time.monotonic() - started

    assert response.status_code == 504
    assert response.json()["error"]["data"]["code"] == "GATEWAY_TIMEOUT"
    assert response.json()["error"]["message"] == "scoring did not answer within 0.5 s"
    assert elapsed < 5


def test_one_failed_upstream_does_not_fail_the_rest_of_a_batch(
    start_gateway, signals_db: Engine
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    inputs = quote(json.dumps({"1": SCORE_INPUT}))

    with start_gateway(gateway_scoring_url=closed) as trpc_url:
        response = httpx.get(f"{trpc_url}/analytics.summary,score.get?batch=1&input={inputs}")

    assert response.status_code == 207
    summary, score = response.json()
    assert summary["result"]["data"]["count"] == 3
    assert score["error"]["data"]["code"] == "BAD_GATEWAY"


def test_the_gateway_serves_healthz_and_metrics(trpc_url: str) -> None:
    base_url = trpc_url.removesuffix("/trpc")

    assert httpx.get(f"{base_url}/healthz").json() == {"status": "ok"}
    assert "gateway_not_modified_total" in httpx.get(f"{base_url}/metrics").text
