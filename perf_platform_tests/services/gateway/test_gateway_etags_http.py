"""ETag and 304 Not Modified on the live gateway, over HTTP, with its real upstreams."""

import re

import httpx
from sqlalchemy.engine import Engine

from perf_platform.etag import make_etag
from perf_platform_tests.services.gateway.trpc_urls import SCORE_INPUT, SUMMARY, batch, query


def test_a_query_answers_200_with_a_strong_etag_of_its_exact_body(
    trpc_url: str, signals_db: Engine
) -> None:
    response = httpx.get(query(trpc_url, SUMMARY))

    assert response.status_code == 200
    assert response.json()["result"]["data"]["count"] == 3
    assert response.json()["result"]["data"]["sum"] == 6.0
    assert response.headers["etag"] == make_etag(response.content)
    assert not response.headers["etag"].startswith("W/")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["vary"] == "trpc-accept"


def test_the_same_data_gets_the_same_etag_from_another_gateway(
    trpc_url: str, start_gateway, signals_db: Engine
) -> None:
    first = httpx.get(query(trpc_url, SUMMARY))
    with start_gateway() as other_url:
        second = httpx.get(query(other_url, SUMMARY))

    assert second.headers["etag"] == first.headers["etag"]


def test_a_matching_if_none_match_gets_304_with_no_body_and_the_200s_headers(
    trpc_url: str, signals_db: Engine
) -> None:
    first = httpx.get(query(trpc_url, SUMMARY))

    again = httpx.get(query(trpc_url, SUMMARY), headers={"If-None-Match": first.headers["etag"]})

    assert again.status_code == 304
    assert again.content == b""
    assert "content-type" not in again.headers
    for name in ("etag", "cache-control", "vary"):
        assert again.headers[name] == first.headers[name]


def test_a_matching_tag_inside_a_list_gets_304(trpc_url: str, signals_db: Engine) -> None:
    etag = httpx.get(query(trpc_url, SUMMARY)).headers["etag"]

    response = httpx.get(
        query(trpc_url, SUMMARY), headers={"If-None-Match": f'"old-1", W/"old-2", {etag}'}
    )

    assert response.status_code == 304


def test_the_list_may_come_in_several_header_lines(trpc_url: str, signals_db: Engine) -> None:
    etag = httpx.get(query(trpc_url, SUMMARY)).headers["etag"]

    response = httpx.get(
        query(trpc_url, SUMMARY), headers=[("If-None-Match", '"old"'), ("If-None-Match", etag)]
    )

    assert response.status_code == 304


def test_a_weak_form_of_the_tag_gets_304(trpc_url: str, signals_db: Engine) -> None:
    etag = httpx.get(query(trpc_url, SUMMARY)).headers["etag"]

    response = httpx.get(query(trpc_url, SUMMARY), headers={"If-None-Match": f"W/{etag}"})

    assert response.status_code == 304


def test_star_gets_304_for_a_successful_query(trpc_url: str, signals_db: Engine) -> None:
    response = httpx.get(query(trpc_url, SUMMARY), headers={"If-None-Match": "*"})

    assert response.status_code == 304
    assert response.headers["etag"]


def test_a_stale_tag_gets_200_with_the_body(trpc_url: str, signals_db: Engine) -> None:
    response = httpx.get(query(trpc_url, SUMMARY), headers={"If-None-Match": '"stale"'})

    assert response.status_code == 200
    assert response.json()["result"]["data"]["count"] == 3


def test_changed_data_gets_200_and_a_new_etag(
    trpc_url: str, signals_db: Engine, add_signals
) -> None:
    before = httpx.get(query(trpc_url, SUMMARY))
    add_signals(signals_db, [("sensor-c", "temp", 10.0)])

    after = httpx.get(query(trpc_url, SUMMARY), headers={"If-None-Match": before.headers["etag"]})

    assert after.status_code == 200
    assert after.json()["result"]["data"]["count"] == 4
    assert after.headers["etag"] != before.headers["etag"]
    assert after.headers["etag"] == make_etag(after.content)


def test_a_malformed_if_none_match_is_ignored(trpc_url: str, signals_db: Engine) -> None:
    etag = httpx.get(query(trpc_url, SUMMARY)).headers["etag"]

    for malformed in (etag.strip('"'), f"{etag} {etag}", f"*, {etag}", 'W/ "x"', ",,,"):
        response = httpx.get(query(trpc_url, SUMMARY), headers={"If-None-Match": malformed})
        assert response.status_code == 200, malformed
        assert response.json()["result"]["data"]["count"] == 3


def test_head_has_the_get_headers_and_no_body(trpc_url: str, signals_db: Engine) -> None:
    get = httpx.get(query(trpc_url, SUMMARY))

    head = httpx.head(query(trpc_url, SUMMARY))

    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == get.headers["etag"]
    assert head.headers["content-length"] == str(len(get.content))


def test_head_with_a_matching_tag_gets_304(trpc_url: str, signals_db: Engine) -> None:
    etag = httpx.get(query(trpc_url, SUMMARY)).headers["etag"]

    head = httpx.head(query(trpc_url, SUMMARY), headers={"If-None-Match": etag})

    assert head.status_code == 304
    assert head.headers["etag"] == etag


def test_an_error_has_no_etag_and_ignores_if_none_match(trpc_url: str) -> None:
    url = query(trpc_url, "analytics.aggregate", {"group_by": "planet"})

    response = httpx.get(url, headers={"If-None-Match": "*"})

    assert response.status_code == 400
    assert "etag" not in response.headers
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["error"]["data"]["code"] == "BAD_REQUEST"


def test_a_not_found_procedure_has_no_etag(trpc_url: str) -> None:
    response = httpx.get(query(trpc_url, "nothing.here"), headers={"If-None-Match": "*"})

    assert response.status_code == 404
    assert "etag" not in response.headers


def test_a_mutation_never_gets_an_etag_or_a_304(trpc_url: str) -> None:
    response = httpx.post(
        f"{trpc_url}/score.compute", json=SCORE_INPUT, headers={"If-None-Match": "*"}
    )

    assert response.status_code == 200
    assert isinstance(response.json()["result"]["data"]["score"], float)
    assert "etag" not in response.headers
    assert response.headers["cache-control"] == "no-store"


def test_a_batch_gets_one_etag_over_the_whole_array(trpc_url: str, signals_db: Engine) -> None:
    url = batch(trpc_url, [(SUMMARY, None), ("analytics.aggregate", {"group_by": "source"})])

    response = httpx.get(url)
    again = httpx.get(url, headers={"If-None-Match": response.headers["etag"]})

    assert response.status_code == 200
    summary, aggregate = response.json()
    assert summary["result"]["data"]["count"] == 3
    assert [row["key"] for row in aggregate["result"]["data"]["rows"]] == ["sensor-a", "sensor-b"]
    assert response.headers["etag"] == make_etag(response.content)
    assert again.status_code == 304


def test_a_batch_with_a_failed_call_is_207_without_etag(trpc_url: str, signals_db: Engine) -> None:
    url = batch(trpc_url, [(SUMMARY, None), ("analytics.aggregate", {"group_by": "planet"})])

    response = httpx.get(url, headers={"If-None-Match": "*"})

    assert response.status_code == 207
    assert "etag" not in response.headers
    good, bad = response.json()
    assert good["result"]["data"]["count"] == 3
    assert bad["error"]["data"] == {
        "code": "BAD_REQUEST",
        "httpStatus": 400,
        "path": "analytics.aggregate",
    }


def test_304s_are_counted_on_metrics(trpc_url: str, signals_db: Engine) -> None:
    base_url = trpc_url.removesuffix("/trpc")
    before = _not_modified_count(base_url, SUMMARY)
    etag = httpx.get(query(trpc_url, SUMMARY)).headers["etag"]

    for _ in range(3):
        httpx.get(query(trpc_url, SUMMARY), headers={"If-None-Match": etag})
    httpx.get(query(trpc_url, SUMMARY), headers={"If-None-Match": '"stale"'})

    assert _not_modified_count(base_url, SUMMARY) == before + 3


def _not_modified_count(base_url: str, procedure: str) -> float:
    text = httpx.get(f"{base_url}/metrics").text
    pattern = rf'^gateway_not_modified_total\{{procedure="{re.escape(procedure)}"\}} (\S+)$'
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0
